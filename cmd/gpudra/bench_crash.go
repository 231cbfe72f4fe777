package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/bench/crash"
)

func benchCrashCommand() *cobra.Command {
	opts := crash.Options{Runs: 50, Seed: 1, NodeName: "crash-node"}
	var jsonOut string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "crash",
		Short: "Kill the node plugin at random steps of prepare and unprepare, restart it, and check that no claim is lost and no device leaked",
		Long: `Runs the plugin (a binary built with -tags failpoints) on a simulated DGX H100 against a
real API server (etcd and kube-apiserver on 127.0.0.1, started here unless --kubeconfig is
given). Each run arms one failpoint (GPUDRA_FAILPOINT=<name>:<n>, chosen from those a clean
calibration run hits), replays random kubelet calls over the plugin's socket until the plugin
is killed there, restarts it without the failpoint, repeats the calls that did not succeed as
the kubelet would, and checks the checkpoint and CDI specs on disk: every claim the kubelet
holds has a completed record and a spec with exactly the IDs it was given, nothing else is
recorded, no device belongs to two claims, and after every claim is unprepared nothing (no
temp file either) is left. The last line is runs=<n> steps=<distinct failpoints crashed at>
violations=<n>; the exit status is 1 when there is a violation.`,
		Example: `  go build -tags failpoints -o /tmp/plugin-failpoints ./cmd/gpudra-kubelet-plugin
  gpudra bench crash --plugin=/tmp/plugin-failpoints --runs=1000`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			opts.Log = func(format string, args ...any) {
				if verbose {
					_, _ = fmt.Fprintf(out, format+"\n", args...)
				}
			}
			res, err := crash.Run(cmd.Context(), opts)
			if res != nil {
				for _, v := range res.Violations {
					_, _ = fmt.Fprintf(out, "violation: run %d seed %d failpoint %s: %s\n", v.Run, v.Seed, v.Failpoint, v.What)
				}
				for _, s := range res.SortedSteps() {
					_, _ = fmt.Fprintf(out, "crashed at %-32s %d runs (hit %d times in the calibration run)\n", s, res.Steps[s], res.Calibration[s])
				}
				if werr := writeJSONFile(jsonOut, res); werr != nil && err == nil {
					err = werr
				}
			}
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintln(out, res.Summary())
			if len(res.Violations) > 0 {
				return fmt.Errorf("%d violations", len(res.Violations))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Binary, "plugin", "", "gpudra-kubelet-plugin built with -tags failpoints (required)")
	f.IntVar(&opts.Runs, "runs", opts.Runs, "crash runs")
	f.Uint64Var(&opts.Seed, "seed", opts.Seed, "seed of the first run (run i uses seed+i)")
	f.StringVar(&opts.NodeName, "node-name", opts.NodeName, "name of the simulated node")
	f.BoolVar(&opts.DynamicMIG, "dynamic-mig", false, "run the plugin in dynamic MIG mode (dgxh100-mig): claims get MIG devices that prepare cuts, and the node's MIG devices are checked too")
	f.StringVar(&opts.SimMPS, "sharing", "", "sharing mode with this gpudra-sim-mps: claims are time-sliced or get MPS daemons, and the GPUs' settings and the daemons are checked too")
	f.StringVar(&opts.Cluster.Kubeconfig, "kubeconfig", "", "use this API server instead of starting one")
	f.StringVar(&opts.Cluster.Repo, "repo", ".", "gpudra source tree, to build etcd and kube-apiserver (cached)")
	f.StringVar(&opts.WorkDir, "work-dir", os.TempDir(), "where the runs' directories are made (and removed)")
	f.StringVar(&opts.FailedDir, "keep-failed", "", "copy the files of every violating run here")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	f.BoolVarP(&verbose, "verbose", "v", false, "one line per run")
	_ = cmd.MarkFlagRequired("plugin")
	return cmd
}
