package allocate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints one row per layout and the notes a reader needs to
// judge the numbers: what the minimal layout kept and what the search models.
func WriteTable(w io.Writer, comparisons []*Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// tabwriter buffers until Flush, which reports any write error.
	_, _ = fmt.Fprintln(tw, "case\tlayout\tnodes\tdevices\tclaims\tnodes/claim\tclaims/s\tp50\tp90\tp99\tmax\tgpudra/minimal\t")
	for _, c := range comparisons {
		for _, r := range []*Result{c.Minimal, c.Gpudra} {
			ratio := ""
			if r == c.Gpudra {
				ratio = fmt.Sprintf("%.2f", c.Ratio)
			}
			claims := fmt.Sprint(r.Claims)
			if r.ClusterFull {
				claims += " (full)"
			}
			l := r.Latency
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n",
				r.Case, r.Layout, r.Nodes, r.Devices, claims, r.NodesFilteredPerClaim, r.ClaimsPerSecond,
				micros(l.P50), micros(l.P90), micros(l.P99), micros(l.Max), ratio)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var keeps []string
	seen := map[string]bool{}
	for _, c := range comparisons {
		if !seen[c.Case] {
			seen[c.Case] = true
			keeps = append(keeps, fmt.Sprintf("%s: %s", c.Case, strings.Join(c.MinimalAttributes, ", ")))
		}
	}
	_, err := fmt.Fprintf(w, `
minimal layout: device names, memory capacity and only these attributes (%s).
latency is per claim: clone the allocated set, new allocator, Allocate on nodes
in turn until enough feasible nodes are found (nodes/claim), record the result.
Not modelled: scoring (first feasible node wins), the scheduler's parallel Filter,
other plugins, API writes. Target: gpudra/minimal >= %.2f.
`, strings.Join(keeps, "; "), TargetRatio)
	return err
}

// WriteJSON prints one object per row of the table, latencies in
// microseconds; ratio is set on the gpudra rows only.
func WriteJSON(w io.Writer, comparisons []*Comparison) error {
	type latency struct {
		Mean float64 `json:"mean"`
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		Max  float64 `json:"max"`
	}
	type row struct {
		Case                  string   `json:"case"`
		Layout                Layout   `json:"layout"`
		Nodes                 int      `json:"nodes"`
		Devices               int      `json:"devices"`
		Claims                int      `json:"claims"`
		ClusterFull           bool     `json:"clusterFull"`
		FeasibleNodes         int      `json:"feasibleNodes"`
		NodesFilteredPerClaim float64  `json:"nodesFilteredPerClaim"`
		ClaimsPerSecond       float64  `json:"claimsPerSecond"`
		LatencyMicroseconds   latency  `json:"latencyMicroseconds"`
		MinimalAttributes     []string `json:"minimalAttributes,omitempty"`
		Ratio                 *float64 `json:"gpudraOverMinimal,omitempty"`
	}
	var rows []row
	for _, c := range comparisons {
		for _, r := range []*Result{c.Minimal, c.Gpudra} {
			l := r.Latency
			out := row{
				Case: r.Case, Layout: r.Layout, Nodes: r.Nodes, Devices: r.Devices, Claims: r.Claims,
				ClusterFull: r.ClusterFull, FeasibleNodes: r.FeasibleNodes,
				NodesFilteredPerClaim: r.NodesFilteredPerClaim, ClaimsPerSecond: r.ClaimsPerSecond,
				LatencyMicroseconds: latency{Mean: us(l.Mean), P50: us(l.P50), P90: us(l.P90), P99: us(l.P99), Max: us(l.Max)},
			}
			if r == c.Minimal {
				out.MinimalAttributes = c.MinimalAttributes
			} else {
				out.Ratio = &c.Ratio
			}
			rows = append(rows, out)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func micros(d time.Duration) string { return fmt.Sprintf("%.0fµs", us(d)) }
