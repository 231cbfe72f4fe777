package sharing

import (
	"fmt"
	"sort"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Kind is a GPU-wide setting.
type Kind string

// Settings a claim can hold.
const (
	// TimeSlice values are gpu.TimeSlice names (Default, Short, Medium, Long).
	TimeSlice Kind = "timeSlice"
	// ComputeMode values are gpu.ComputeMode names (Default,
	// Exclusive_Process, Prohibited).
	ComputeMode Kind = "computeMode"
)

// Setting is one value of one setting on one GPU.
type Setting struct {
	// GPU is the full GPU's UUID.
	GPU   string
	Kind  Kind
	Value string
}

func (s Setting) String() string { return fmt.Sprintf("%s %s on %s", s.Kind, s.Value, s.GPU) }

// key is what two holds must share to be holds of the same setting.
type key struct {
	GPU  string
	Kind Kind
}

func (s Setting) key() key { return key{s.GPU, s.Kind} }

// Hold is a claim's hold on a setting, as its checkpoint record keeps it.
type Hold struct {
	Setting
	// Claim names the holder for people ("ns/name"); ClaimUID identifies it.
	Claim    string
	ClaimUID string
	// Previous is the value before the first holder changed it; "" when
	// the backend could not read it (then Default is restored).
	Previous string
}

// Defaults are the values a setting is restored to when its previous
// value is unknown.
var defaults = map[Kind]string{
	TimeSlice:   gpu.TimeSliceDefault.String(),
	ComputeMode: string(gpu.ComputeModeDefault),
}

// Current reads a setting's value on a GPU now; "" when it cannot be read.
type Current func(gpuUUID string, kind Kind) (string, error)

// Plan works out the holds a claim takes for wants, given the holds of
// every other claim: each carries the GPU's value before the first holder
// (from an existing holder, else from current). A want that differs from
// what another claim holds on the same GPU is an error naming both claims;
// two wants of the claim for one setting must agree.
func Plan(claim, claimUID string, wants []Setting, others []Hold, current Current) ([]Hold, error) {
	held := map[key]Hold{}
	for _, h := range others {
		if _, ok := held[h.key()]; !ok {
			held[h.key()] = h
		}
	}
	mine := map[key]Hold{}
	var out []Hold
	for _, w := range wants {
		if h, ok := mine[w.key()]; ok {
			if h.Value != w.Value {
				return nil, fmt.Errorf("claim %s asks for %s %s and %s on GPU %s", claim, w.Kind, h.Value, w.Value, w.GPU)
			}
			continue
		}
		hold := Hold{Setting: w, Claim: claim, ClaimUID: claimUID}
		if other, ok := held[w.key()]; ok {
			if other.Value != w.Value {
				return nil, fmt.Errorf("claim %s asks for %s %s on GPU %s, but claim %s (uid %s), which shares the GPU, holds it at %s; claims on one GPU must ask for the same %s",
					claim, w.Kind, w.Value, w.GPU, other.Claim, other.ClaimUID, other.Value, w.Kind)
			}
			hold.Previous = other.Previous
		} else {
			prev, err := current(w.GPU, w.Kind)
			if err != nil {
				return nil, fmt.Errorf("claim %s: read %s of GPU %s: %w", claim, w.Kind, w.GPU, err)
			}
			hold.Previous = prev
		}
		mine[w.key()] = hold
		out = append(out, hold)
	}
	return out, nil
}

// Restores returns the settings to put back when the holds in mine are
// released while others remain: for each setting no other claim holds, its
// previous value (or the default where that is unknown).
func Restores(mine, others []Hold) []Setting {
	held := map[key]bool{}
	for _, h := range others {
		held[h.key()] = true
	}
	seen := map[key]bool{}
	var out []Setting
	for _, h := range mine {
		if held[h.key()] || seen[h.key()] {
			continue
		}
		seen[h.key()] = true
		v := h.Previous
		if v == "" {
			v = defaults[h.Kind]
		}
		out = append(out, Setting{GPU: h.GPU, Kind: h.Kind, Value: v})
	}
	return out
}

// Wanted returns, for every setting some hold holds, the value to apply,
// in a stable order. Holds of one setting that disagree (which Plan never
// records) are reported; the first is applied.
func Wanted(holds []Hold) ([]Setting, []error) {
	byKey := map[key]Hold{}
	var errs []error
	for _, h := range holds {
		first, ok := byKey[h.key()]
		switch {
		case !ok:
			byKey[h.key()] = h
		case first.Value != h.Value:
			errs = append(errs, fmt.Errorf("claims %s and %s hold %s on GPU %s at %s and %s; keeping %s",
				first.Claim, h.Claim, h.Kind, h.GPU, first.Value, h.Value, first.Value))
		}
	}
	out := make([]Setting, 0, len(byKey))
	for _, h := range byKey {
		out = append(out, h.Setting)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GPU != out[j].GPU {
			return out[i].GPU < out[j].GPU
		}
		return out[i].Kind < out[j].Kind
	})
	return out, errs
}
