package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/bench/prepare"
	"github.com/gpudra/gpudra/internal/bench/startup"
	"github.com/gpudra/gpudra/internal/kubeclient"
)

func benchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks: prepare/unprepare latency, plugin startup, scheduler allocation over our slices",
	}
	cmd.AddCommand(benchPrepareCommand(), benchStartupCommand(), benchAllocateCommand(), benchPackCommand(), benchCrashCommand(), benchSoakCommand())
	return cmd
}

func benchPrepareCommand() *cobra.Command {
	opts := prepare.Options{DriverName: "gpu.nvidia.com", DeviceClass: "gpu.nvidia.com", DevicesPerClaim: 1, Claims: 200, Concurrency: 1, ClaimsPerCall: 1}
	var kubeconfig, output, jsonOut string
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Call NodePrepareResources/NodeUnprepareResources on a DRA plugin's socket, as the kubelet does, and report latency",
		Long: `Creates ResourceClaims in the API server, allocates them with the scheduler's own
allocator over the slices the plugin published for the node, and calls the plugin's
kubelet gRPC API for them, in rounds of as many claims as the node holds at once.
Works against any DRA kubelet plugin. Deletes every claim it created.`,
		Example: `  gpudra bench prepare --socket=/var/lib/kubelet/plugins/gpu.nvidia.com/dra.sock --node-name=node-a --concurrency=8 --plugin-pid=1234`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, err := kubeclient.New(kubeclient.Options{Kubeconfig: kubeconfig, QPS: 200, Burst: 400})
			if err != nil {
				return err
			}
			res, err := prepare.Run(cmd.Context(), client, opts)
			if err != nil {
				return err
			}
			if err := writeJSONFile(jsonOut, res); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			printPrepare(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	f.StringVar(&opts.DriverName, "driver-name", opts.DriverName, "DRA driver name")
	f.StringVar(&opts.Socket, "socket", "", "the plugin's DRA socket (required)")
	f.StringVar(&opts.NodeName, "node-name", "", "node whose slices to allocate from (required)")
	f.StringVar(&opts.DeviceClass, "device-class", opts.DeviceClass, "DeviceClass of each request")
	f.IntVar(&opts.DevicesPerClaim, "devices-per-claim", opts.DevicesPerClaim, "devices per claim")
	f.IntVar(&opts.Claims, "claims", opts.Claims, "number of claims in total")
	f.IntVar(&opts.Concurrency, "concurrency", opts.Concurrency, "calls in flight at once (parallel pods)")
	f.IntVar(&opts.ClaimsPerCall, "claims-per-call", opts.ClaimsPerCall, "claims per gRPC call (claims of one pod)")
	f.IntVar(&opts.PluginPID, "plugin-pid", 0, "PID of the plugin process, for peak RSS and CPU time")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	_ = cmd.MarkFlagRequired("socket")
	_ = cmd.MarkFlagRequired("node-name")
	return cmd
}

func printPrepare(w io.Writer, r *prepare.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "phase\tconcurrency\tclaims/call\tcalls\tmean\tp50\tp90\tp99\tmax\tclaims/s\t\n")
	for _, p := range []struct {
		name string
		ph   prepare.Phase
	}{{"prepare", r.Prepare}, {"unprepare", r.Unprepare}} {
		l := p.ph.Latency
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t\n", p.name, r.Options.Concurrency, r.Options.ClaimsPerCall, p.ph.Calls,
			ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), p.ph.ClaimsPerSecond)
	}
	_ = tw.Flush()
	if r.Plugin != nil {
		_, _ = fmt.Fprintf(w, "plugin: peak RSS %.1f MiB, RSS now %.1f MiB, CPU %.2f s\n",
			float64(r.Plugin.PeakRSSBytes)/(1<<20), float64(r.Plugin.RSSBytes)/(1<<20), r.Plugin.CPUSeconds)
	}
}

func benchStartupCommand() *cobra.Command {
	opts := startup.Options{DriverName: "gpu.nvidia.com", Runs: 10}
	var output, jsonOut string
	cmd := &cobra.Command{
		Use:   "startup -- PLUGIN-COMMAND...",
		Short: "Time from starting a kubelet plugin to its ResourceSlices being visible in the API server",
		Long: `Starts the plugin command --runs times, each time after deleting the node's slices,
and times exec -> first slice seen by a watch. {dir} in the command is replaced by a fresh
directory per run.`,
		Example: `  gpudra bench startup --node-name=bench --label=dgxh100 -- _output/bin/gpudra-kubelet-plugin \
      --sim-profile=dgxh100 --node-name=bench --kubeconfig=$KUBECONFIG \
      --plugin-dir={dir}/plugin --registrar-dir={dir}/registry --cdi-dir={dir}/cdi`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := kubeclient.New(kubeclient.Options{Kubeconfig: opts.Kubeconfig})
			if err != nil {
				return err
			}
			opts.Command = args
			if opts.Label == "" {
				opts.Label = strings.Join(args, " ")
			}
			res, err := startup.Run(cmd.Context(), client, opts)
			if err != nil {
				return err
			}
			if err := writeJSONFile(jsonOut, res); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			_, _ = fmt.Fprintf(tw, "node\truns\tmin\tp50\tp90\tmax\t\n")
			_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", res.Label, res.Runs, ms(res.Min), ms(res.Latency.P50), ms(res.Latency.P90), ms(res.Latency.Max))
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig (also passed to the plugin as $KUBECONFIG)")
	f.StringVar(&opts.DriverName, "driver-name", opts.DriverName, "DRA driver name")
	f.StringVar(&opts.NodeName, "node-name", "", "node the plugin publishes for (required)")
	f.IntVar(&opts.Runs, "runs", opts.Runs, "number of starts")
	f.StringVar(&opts.Label, "label", "", "name of the series in the output")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	_ = cmd.MarkFlagRequired("node-name")
	return cmd
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// writeJSONFile writes v as JSON to path, if path is set.
func writeJSONFile(path string, v any) error {
	return writeFileWith(path, func(w io.Writer) error { return writeJSON(w, v) })
}

// writeFileWith creates path and lets write fill it; nothing when path is
// empty (the --json-out flags are optional).
func writeFileWith(path string, write func(io.Writer) error) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
