package allocate

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteDynamicTable prints one row per layout and fill, and what a reader
// needs to judge them.
func WriteDynamicTable(w io.Writer, results []*DynamicResult, opts DynamicOptions) error {
	if err := writeResultRows(w, results, true); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `
workload: the cycle %s; whole-gpus: every claim one whole GPU on the same nodes with MIG off.
fill: share of the cluster's compute slices held before the timed claims (placed untimed, round the nodes).
pods/s: placed claims over the time of all timed attempts (unschedulable ones included), %d filter worker(s);
republishing a node after a placement is the plugin's work and is not timed.
Targets: >= 200 pods/s empty and >= 100 at 90%% fill at 1,000 nodes.
`, workloadString(), max(opts.Workers, 1))
	return err
}

// writeResultRows prints one row per result, with its rate against the
// whole-gpus result of the same fill; devices adds the devices/node column.
func writeResultRows(w io.Writer, results []*DynamicResult, devices bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "layout\tnodes\tfill\t"
	if devices {
		header += "devices/node\t"
	}
	_, _ = fmt.Fprintln(tw, header+"placed\tunschedulable\tnodes/claim\tpods/s\tp50\tp99\tvs whole-gpus\t")
	whole := map[float64]float64{}
	for _, r := range results {
		if r.Layout == "whole-gpus" {
			whole[r.Fill] = r.PodsPerSecond
		}
	}
	for _, r := range results {
		ratio := ""
		if w, ok := whole[r.Fill]; ok && w > 0 && r.Layout != "whole-gpus" {
			ratio = fmt.Sprintf("%.2f", r.PodsPerSecond/w)
		}
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%.0f%%\t", r.Layout, r.Nodes, r.HeldFill*100)
		if devices {
			_, _ = fmt.Fprintf(tw, "%.1f\t", r.DevicesPerNode)
		}
		_, _ = fmt.Fprintf(tw, "%d/%d\t%d\t%.0f\t%.1f\t%s\t%s\t%s\t\n",
			r.Placed, r.Attempts, r.Unschedulable, r.NodesFiltered,
			r.PodsPerSecond, micros(r.Latency.P50), micros(r.Latency.P99), ratio)
	}
	return tw.Flush()
}

// WriteDynamicJSON prints the results, latencies in microseconds.
func WriteDynamicJSON(w io.Writer, results []*DynamicResult) error {
	type row struct {
		*DynamicResult
		P50 float64 `json:"p50Microseconds"`
		P99 float64 `json:"p99Microseconds"`
	}
	rows := make([]row, len(results))
	for i, r := range results {
		rows[i] = row{DynamicResult: r, P50: us(r.Latency.P50), P99: us(r.Latency.P99)}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

func workloadString() string {
	s := ""
	for i, k := range MixedMIGWorkload {
		if i > 0 {
			s += ", "
		}
		s += k.Name()
	}
	return s
}
