package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/bench/soak"
)

func benchSoakCommand() *cobra.Command {
	opts := soak.Options{Cycles: 10000, Warmup: 200, Samples: 6, NodeName: "soak-node"}
	var jsonOut string
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Prepare and unprepare claims on the node plugin many times and check that its memory, file descriptors and goroutines stay flat",
		Long: `Runs the plugin on a simulated DGX H100 against a real API server (etcd and kube-apiserver
on 127.0.0.1, started here unless --kubeconfig is given), prepares and unprepares one claim per
cycle over its socket as the kubelet does, and samples the process's VmRSS, open file
descriptors and goroutines (from --pprof-addr) after the warm-up, in between and at the end.
Flat means each ends within 10% of its value after the warm-up; the exit status is 1 otherwise.`,
		Example: `  gpudra bench soak --plugin=_output/bin/gpudra-kubelet-plugin --cycles=10000`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := soak.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if err := writeJSONFile(jsonOut, res); err != nil {
				return err
			}
			printSoak(cmd.OutOrStdout(), res)
			if !res.Flat {
				return fmt.Errorf("not flat: a measure grew by more than %.0f%%", soak.Tolerance*100)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Binary, "plugin", "", "gpudra-kubelet-plugin binary (required)")
	f.IntVar(&opts.Cycles, "cycles", opts.Cycles, "prepare/unprepare cycles after the warm-up")
	f.IntVar(&opts.Warmup, "warmup", opts.Warmup, "cycles before the first sample")
	f.IntVar(&opts.Samples, "samples", opts.Samples, "samples from the first to the last cycle")
	f.StringVar(&opts.NodeName, "node-name", opts.NodeName, "name of the simulated node")
	f.StringVar(&opts.Cluster.Kubeconfig, "kubeconfig", "", "use this API server instead of starting one")
	f.StringVar(&opts.Cluster.Repo, "repo", ".", "gpudra source tree, to build etcd and kube-apiserver (cached)")
	f.StringVar(&opts.WorkDir, "work-dir", os.TempDir(), "where the plugin's directories are made (and removed)")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	_ = cmd.MarkFlagRequired("plugin")
	return cmd
}

func printSoak(w io.Writer, r *soak.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "cycle\tVmRSS MiB\topen fds\tgoroutines\t\n")
	for _, s := range r.Samples {
		_, _ = fmt.Fprintf(tw, "%d\t%.1f\t%d\t%d\t\n", s.Cycle, float64(s.RSSBytes)/(1<<20), s.FDs, s.Goroutines)
	}
	_ = tw.Flush()
	first, last := r.Samples[0], r.Samples[len(r.Samples)-1]
	_, _ = fmt.Fprintf(w, "end/start: VmRSS %.2f, fds %.2f, goroutines %.2f; flat (within %.0f%%): %v; %d cycles in %.1fs\n",
		float64(last.RSSBytes)/float64(first.RSSBytes), float64(last.FDs)/float64(first.FDs),
		float64(last.Goroutines)/float64(first.Goroutines), r.Tolerance*100, r.Flat, r.Options.Cycles, r.Seconds)
}
