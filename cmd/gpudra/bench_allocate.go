package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/bench/allocate"
)

// defaultAllocateClaims bounds each run so the default benchmark (two
// cluster sizes, three cases, two layouts) stays within a few minutes on
// a small machine; --claims=0 fills the cluster instead.
const defaultAllocateClaims = 500

func benchAllocateCommand() *cobra.Command {
	nodes := []int{100, 1000}
	cases := allocate.CaseNames()
	opts := allocate.Options{Claims: defaultAllocateClaims}
	output, jsonOut := "table", ""
	cmd := &cobra.Command{
		Use:   "allocate",
		Short: "Run the scheduler's DRA allocator over gpudra's ResourceSlices for simulated nodes, and over a minimal layout",
		Long: `Schedules claims one after another with the scheduler's own allocator
(k8s.io/dynamic-resource-allocation/structured) over the ResourceSlices that
gpudra publishes for N simulated nodes, then over a minimal layout of the same
GPUs (names, memory and only the attributes the claim needs), and reports claims
per second, per-claim latency and the ratio of the two throughputs.

Cases: gpu (one whole GPU), cel (one GPU selected by CEL on productName and
memory), mig (two 1g.10gb MIG devices on one parent GPU).`,
		Example: `  gpudra bench allocate
  gpudra bench allocate --nodes=100 --claims=0 --cases=mig -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			// Check every flag before the first run: a typo should not
			// cost minutes of benchmarking.
			var selected []allocate.Case
			for _, name := range cases {
				c, err := allocate.CaseByName(name)
				if err != nil {
					return fmt.Errorf("--cases: %w", err)
				}
				selected = append(selected, c)
			}
			for _, n := range nodes {
				if n < 1 {
					return fmt.Errorf("--nodes: %d is not a node count", n)
				}
			}
			if opts.Claims < 0 {
				return fmt.Errorf("--claims: %d: want 0 (fill the cluster) or more", opts.Claims)
			}
			var comparisons []*allocate.Comparison
			for _, n := range nodes {
				for _, c := range selected {
					run := opts
					run.Case, run.Nodes = c, n
					start := time.Now()
					comparison, err := allocate.Compare(cmd.Context(), run)
					if err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "bench allocate: case %s on %d nodes done in %.1fs\n", c.Name, n, time.Since(start).Seconds())
					comparisons = append(comparisons, comparison)
				}
			}
			if err := writeFileWith(jsonOut, func(w io.Writer) error { return allocate.WriteJSON(w, comparisons) }); err != nil {
				return err
			}
			if output == "json" {
				return allocate.WriteJSON(cmd.OutOrStdout(), comparisons)
			}
			return allocate.WriteTable(cmd.OutOrStdout(), comparisons)
		},
	}
	cmd.AddCommand(benchDynamicMIGCommand(), benchSharesCommand())
	cmd.Flags().IntSliceVar(&nodes, "nodes", nodes, "cluster sizes to run, in simulated nodes of 8 GPUs")
	cmd.Flags().IntVar(&opts.Claims, "claims", opts.Claims, "claims to place per run; 0 fills the cluster")
	cmd.Flags().StringSliceVar(&cases, "cases", cases, "cases to run: gpu, cel, mig")
	cmd.Flags().IntVar(&opts.FeasibleNodes, "feasible-nodes", 0, "feasible nodes each claim's search looks for before picking the first of them; 0 is kube-scheduler's default rule (all nodes below 100)")
	cmd.Flags().StringVarP(&output, "output", "o", output, "output format: table or json")
	cmd.Flags().StringVar(&jsonOut, "json-out", "", "also write the JSON result to this file")
	return cmd
}
