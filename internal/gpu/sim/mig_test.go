package sim

import (
	"errors"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

// migNode returns a backend with two H100s in MIG mode (the second holding a
// 3g.40gb at placement 4), an H100 not in MIG mode, and an L4.
func migNode(t *testing.T) (*Backend, []string) {
	t.Helper()
	b := newFromConfig(t, &Config{GPUs: []GPUConfig{
		{Model: "h100-sxm5-80gb", MIGEnabled: true},
		{Model: "h100-sxm5-80gb", MIGEnabled: true, MIGDevices: []MIGDeviceConfig{{Profile: "3g.40gb", Placement: ptr(4)}}},
		{Model: "h100-sxm5-80gb"},
		{Model: "l4-pcie-24gb"},
	}})
	var ids []string
	for _, g := range inventory(t, b).GPUs {
		ids = append(ids, g.UUID)
	}
	return b, ids
}

func TestCreateAndDestroyMIGDevice(t *testing.T) {
	b, gpus := migNode(t)
	small, err := create(b, gpus[0], 19, 6)
	wantErr(t, err)
	big, err := create(b, gpus[0], 9, 0)
	wantErr(t, err)
	if big.Profile.Name != "3g.40gb" || big.Placement.Start != 0 || big.Placement.Size != 4 || big.GIID != 1 || big.CIID != 0 {
		t.Errorf("created %+v", big)
	}
	if !migUUIDPattern.MatchString(small.UUID) || small.GIID != 13 {
		t.Errorf("created %+v", small)
	}

	got := inventory(t, b).GPUs[0].MIGDevices
	if len(got) != 2 || got[0].UUID != big.UUID || got[1].UUID != small.UUID {
		t.Fatalf("inventory MIG devices %+v, want the 3g.40gb at 0 before the 1g.10gb at 6", got)
	}

	wantErr(t, destroy(b, gpus[0], small))
	err = destroy(b, gpus[0], small)
	wantErr(t, err, "destroy MIG device "+gpus[0]+" profile 19 at placement 6+1", "no GPU instance at this placement")
	if !errors.Is(err, gpu.ErrMIGNotFound) {
		t.Errorf("destroying twice: %v does not wrap ErrMIGNotFound", err)
	}
	if got := inventory(t, b).GPUs[0].MIGDevices; len(got) != 1 || got[0].UUID != big.UUID {
		t.Errorf("after destroy: %+v", got)
	}
	again, err := create(b, gpus[0], 19, 6)
	wantErr(t, err)
	if again.UUID == small.UUID || !migUUIDPattern.MatchString(again.UUID) {
		t.Errorf("re-created MIG device has UUID %s; a new device must get a new UUID (the old one was %s)", again.UUID, small.UUID)
	}
}

func TestCreateMIGDeviceRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(b *Backend, gpus []string) error
		gpu     int // index into the node's GPUs; -1 for an unknown UUID
		profile int
		start   int
		want    []string
	}{
		{name: "overlap", gpu: 1, profile: 14, start: 4, want: []string{"2g.20gb", "overlaps MIG-", "3g.40gb at placement 4"}},
		{name: "overlap with a larger device", gpu: 1, profile: 19, start: 6, want: []string{"overlaps"}},
		{name: "bad placement", gpu: 0, profile: 9, start: 2, want: []string{"not a placement of 3g.40gb", "valid starts: 0, 4"}},
		{name: "not in MIG mode", gpu: 2, profile: 19, start: 0, want: []string{"MIG mode is disabled"}},
		{name: "no MIG on L4", gpu: 3, profile: 19, start: 0, want: []string{"NVIDIA L4 does not support MIG"}},
		{name: "unknown profile", gpu: 0, profile: 3, start: 0, want: []string{"no GPU instance profile 3", "valid: 0, 5, 9, 14, 15, 19, 20"}},
		{name: "unknown GPU", gpu: -1, profile: 19, start: 0, want: []string{"GPU-missing: not a GPU of this node"}},
		{
			name: "instance count",
			setup: func(b *Backend, gpus []string) error {
				_, err := create(b, gpus[0], 20, 0)
				return err
			},
			gpu: 0, profile: 20, start: 1, want: []string{"1 of at most 1 1g.10gb+me instances exist"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, gpus := migNode(t)
			if tt.setup != nil {
				wantErr(t, tt.setup(b, gpus))
			}
			parent := "GPU-missing"
			if tt.gpu >= 0 {
				parent = gpus[tt.gpu]
			}
			before := inventory(t, b)
			_, err := create(b, parent, tt.profile, tt.start)
			wantErr(t, err, tt.want...)
			after := inventory(t, b)
			for i := range before.GPUs {
				if len(before.GPUs[i].MIGDevices) != len(after.GPUs[i].MIGDevices) {
					t.Errorf("refused create changed GPU %d's MIG devices", i)
				}
			}
		})
	}
}

func TestCreateMIGDeviceOnMIGUUIDNamesTheParent(t *testing.T) {
	b, gpus := migNode(t)
	mig := inventory(t, b).GPUs[1].MIGDevices[0].UUID
	_, err := create(b, mig, 19, 0)
	wantErr(t, err, mig+" is a MIG device of "+gpus[1])
}

func TestSetMIGMode(t *testing.T) {
	tests := []struct {
		name    string
		gpu     int
		enabled bool
		want    []string
	}{
		{name: "enable", gpu: 2, enabled: true},
		{name: "enable again is a no-op", gpu: 0, enabled: true},
		{name: "disable empty GPU", gpu: 0, enabled: false},
		{name: "disable with MIG devices", gpu: 1, enabled: false, want: []string{"1 MIG devices exist"}},
		{name: "enable on L4", gpu: 3, enabled: true, want: []string{"NVIDIA L4 does not support MIG"}},
		{name: "disable on L4", gpu: 3, enabled: false, want: []string{"does not support MIG"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, gpus := migNode(t)
			wantErr(t, b.SetMIGMode(gpus[tt.gpu], tt.enabled), tt.want...)
			if len(tt.want) == 0 && inventory(t, b).GPUs[tt.gpu].MIGEnabled != tt.enabled {
				t.Errorf("MIG mode not %v", tt.enabled)
			}
		})
	}
}

func TestDisableMIGAfterDestroyingDevices(t *testing.T) {
	b, gpus := migNode(t)
	for _, d := range inventory(t, b).GPUs[1].MIGDevices {
		wantErr(t, destroy(b, gpus[1], d))
	}
	wantErr(t, b.SetMIGMode(gpus[1], false))
	_, err := create(b, gpus[1], 19, 0)
	wantErr(t, err, "MIG mode is disabled")
}

func TestGIIDFollowsPlacement(t *testing.T) {
	tests := []struct {
		profile, start, want int
	}{
		{0, 0, 0},  // 7g: the whole GPU
		{5, 0, 1},  // 4g: first half
		{9, 4, 2},  // 3g: second half
		{14, 2, 4}, // 2g: second quarter
		{19, 0, 7}, // 1g: first eighth
		{19, 6, 13},
	}
	for _, tt := range tests {
		b, gpus := migNode(t)
		d, err := create(b, gpus[0], tt.profile, tt.start)
		wantErr(t, err)
		if d.GIID != tt.want {
			t.Errorf("profile %d at %d: GIID %d, want %d", tt.profile, tt.start, d.GIID, tt.want)
		}
	}
}
