package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/bench/allocate"
	"github.com/gpudra/gpudra/internal/bench/pack"
)

func benchDynamicMIGCommand() *cobra.Command {
	opts := allocate.DynamicOptions{Nodes: 1000, Fills: []float64{0, 0.5, 0.9}, Claims: 200, MaxTime: 30 * time.Second, Workers: 2}
	var layouts []string
	for _, l := range allocate.DynamicLayouts() {
		layouts = append(layouts, l.Name)
	}
	output, jsonOut := "table", ""
	cmd := &cobra.Command{
		Use:   "dynamic-mig",
		Short: "Run the scheduler's allocator over dynamic-MIG nodes with a mixed MIG workload, per layout and fill",
		Long: `Builds N simulated DGX H100 nodes in MIG mode, holds a share of their compute
slices (the fill) with the mixed workload, then times claims of the workload (1g.10gb,
2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb and whole GPUs) with the scheduler's own allocator,
per layout: every placement published (upstream's layout), gpudra's dynamic layouts
(republished after each placement, as the plugin does), and whole GPUs as the reference.`,
		Example: `  gpudra bench allocate dynamic-mig
  gpudra bench allocate dynamic-mig --nodes=100 --fills=0,0.9 --layouts=whole-gpus,dynamic-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			opts.Layouts = nil
			for _, name := range layouts {
				l, err := allocate.DynamicLayoutByName(name)
				if err != nil {
					return fmt.Errorf("--layouts: %w", err)
				}
				opts.Layouts = append(opts.Layouts, l)
			}
			for _, f := range opts.Fills {
				if f < 0 || f >= 1 {
					return fmt.Errorf("--fills: %v is not a fraction in [0, 1)", f)
				}
			}
			start := time.Now()
			results, err := allocate.RunDynamic(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "bench allocate dynamic-mig: %d nodes done in %.1fs\n", opts.Nodes, time.Since(start).Seconds())
			if err := writeFileWith(jsonOut, func(w io.Writer) error { return allocate.WriteDynamicJSON(w, results) }); err != nil {
				return err
			}
			if output == "json" {
				return allocate.WriteDynamicJSON(cmd.OutOrStdout(), results)
			}
			return allocate.WriteDynamicTable(cmd.OutOrStdout(), results, opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Nodes, "nodes", opts.Nodes, "simulated DGX H100 nodes in MIG mode")
	f.Float64SliceVar(&opts.Fills, "fills", opts.Fills, "shares of the compute slices held before the timed claims")
	f.IntVar(&opts.Claims, "claims", opts.Claims, "claims timed per layout and fill, at most")
	f.DurationVar(&opts.MaxTime, "max-time", opts.MaxTime, "stop a layout's timed claims at one fill after this long (0: no limit)")
	f.IntVar(&opts.Workers, "workers", opts.Workers, "nodes filtered in parallel (kube-scheduler runs 16 goroutines; on 2 cores 2 run at once)")
	f.IntVar(&opts.FeasibleNodes, "feasible-nodes", 0, "feasible nodes each claim's search looks for; 0 is kube-scheduler's default rule")
	f.StringSliceVar(&layouts, "layouts", layouts, "layouts to run: "+strings.Join(layouts, ", "))
	f.StringVarP(&output, "output", "o", output, "output format: table or json")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	return cmd
}

func benchPackCommand() *cobra.Command {
	seeds := []uint{1, 2, 3, 4, 5}
	streamLen := 1000
	output, jsonOut := "table", ""
	cmd := &cobra.Command{
		Use:   "pack",
		Short: "How much of an 8 × H100 node a request stream fills: whole GPUs, static MIG mixes, dynamic MIG",
		Long: `Places a seeded stream of requests (25% whole GPU, 35% <= 10 GiB, 25% <= 20 GiB,
15% <= 40 GiB) on one simulated DGX H100 with the scheduler's own allocator, in arrival
order until the first that does not fit, for each layout, and divides by the
first-fit-decreasing bound of the same stream.`,
		Example: `  gpudra bench pack
  gpudra bench pack --seeds=1,2,3 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			var s []uint64
			for _, v := range seeds {
				s = append(s, uint64(v))
			}
			results, err := pack.Run(cmd.Context(), pack.Layouts(), s, streamLen)
			if err != nil {
				return err
			}
			if err := writeJSONFile(jsonOut, results); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), results)
			}
			return printPack(cmd.OutOrStdout(), results)
		},
	}
	f := cmd.Flags()
	f.UintSliceVar(&seeds, "seeds", seeds, "stream seeds")
	f.IntVar(&streamLen, "stream", streamLen, "requests per stream")
	f.StringVarP(&output, "output", "o", output, "output format: table or json")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	return cmd
}

// printPack prints, per layout, the placed share of the bound on each seed
// and the mean and lowest share.
func printPack(w io.Writer, results []pack.Result) error {
	type agg struct {
		ratios []float64
		cells  []string
	}
	var order []string
	by := map[string]*agg{}
	for _, r := range results {
		a, ok := by[r.Layout]
		if !ok {
			a = &agg{}
			by[r.Layout] = a
			order = append(order, r.Layout)
		}
		a.ratios = append(a.ratios, r.Ratio)
		a.cells = append(a.cells, fmt.Sprintf("%d/%d", r.Placed, r.Bound))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "layout\tplaced/bound per seed\tmean\tlowest")
	for _, name := range order {
		a := by[name]
		sum, low := 0.0, a.ratios[0]
		for _, r := range a.ratios {
			sum += r
			low = min(low, r)
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f%%\t%.0f%%\n", name, strings.Join(a.cells, " "), 100*sum/float64(len(a.ratios)), 100*low)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nbound: the longest prefix of the stream that first-fit decreasing places on the node's MIG placements. Target: dynamic >= 95%.")
	return err
}

func benchSharesCommand() *cobra.Command {
	opts := allocate.SharesOptions{Nodes: 1000, Fills: []float64{0, 0.5, 0.9}, Claims: 200, MaxTime: 30 * time.Second, Workers: 2}
	output := "table"
	cmd := &cobra.Command{
		Use:   "shares",
		Short: "Run the scheduler's allocator over GPUs shared by memory (consumable capacity), per fill",
		Long: `Builds N simulated DGX H100 nodes whose GPUs are published shareable by memory
(--memory-shares), holds a share of the cluster's GPU memory (the fill) with claims of
10, 20 and 40 GiB, then times claims of the same sizes with the scheduler's own allocator; the
allocator's state holds every share, as kube-scheduler gathers it for every pod. The same
nodes with whole GPUs, every claim a whole GPU, are the reference.`,
		Example: `  gpudra bench allocate shares
  gpudra bench allocate shares --nodes=100 --fills=0,0.9`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			for _, f := range opts.Fills {
				if f < 0 || f >= 1 {
					return fmt.Errorf("--fills: %v is not a fraction in [0, 1)", f)
				}
			}
			start := time.Now()
			results, err := allocate.RunShares(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "bench allocate shares: %d nodes done in %.1fs\n", opts.Nodes, time.Since(start).Seconds())
			if output == "json" {
				return allocate.WriteDynamicJSON(cmd.OutOrStdout(), results)
			}
			return allocate.WriteSharesTable(cmd.OutOrStdout(), results, opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Nodes, "nodes", opts.Nodes, "simulated DGX H100 nodes")
	f.Float64SliceVar(&opts.Fills, "fills", opts.Fills, "shares of the GPU memory held before the timed claims")
	f.IntVar(&opts.Claims, "claims", opts.Claims, "claims timed per layout and fill, at most")
	f.DurationVar(&opts.MaxTime, "max-time", opts.MaxTime, "stop a layout's timed claims at one fill after this long (0: no limit)")
	f.IntVar(&opts.Workers, "workers", opts.Workers, "nodes filtered in parallel")
	f.IntVar(&opts.FeasibleNodes, "feasible-nodes", 0, "feasible nodes each claim's search looks for; 0 is kube-scheduler's default rule")
	f.StringVarP(&output, "output", "o", output, "output format: table or json")
	return cmd
}
