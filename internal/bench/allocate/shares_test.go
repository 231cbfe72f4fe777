package allocate

import (
	"context"
	"testing"
)

// On a small cluster the benchmark places shares until the GPUs' memory
// is used up, and no more: 4 nodes x 8 GPUs x 80 GiB hold 2,560 GiB.
func TestSharesFillTheMemoryAndNoMore(t *testing.T) {
	res, err := RunShares(context.Background(), SharesOptions{Nodes: 4, Fills: []float64{0}, Claims: 400})
	if err != nil {
		t.Fatal(err)
	}
	var shares *DynamicResult
	for _, r := range res {
		if r.Layout == "memory-shares" {
			shares = r
		}
	}
	if shares == nil {
		t.Fatal("no memory-shares result")
	}
	// The cycle's mean is 21.25 GiB, and an 80 GiB GPU fits whole cycles
	// of 10/20/40 only so far: count what first fit would place.
	var want int
	free := make([]int64, 4*8)
	for i := range free {
		free[i] = 80
	}
	for i := 0; i < 400; i++ {
		gib := ShareWorkload[i%len(ShareWorkload)]
		for j := range free {
			if free[j] >= gib {
				free[j] -= gib
				want++
				break
			}
		}
	}
	if shares.Placed != want || shares.Unschedulable != 400-want {
		t.Errorf("placed %d, unschedulable %d; want %d and %d (first fit over the GPUs' memory)", shares.Placed, shares.Unschedulable, want, 400-want)
	}
	for _, r := range res {
		if r.Layout == "whole-gpus" && r.Placed != 32 {
			t.Errorf("whole GPUs placed %d claims on 32 GPUs", r.Placed)
		}
	}
}
