package nvcdi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nvcdilib "github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/gpu"
)

// The capability nodes checked are this instance's, from the driver's
// mig-minors table. Before, any two nodes under /dev/nvidia-caps passed,
// so edits carrying another instance's node were accepted.
func TestCheckDeviceNodesNeedsThisInstancesCapabilities(t *testing.T) {
	minors := filepath.Join(t.TempDir(), "mig-minors")
	if err := os.WriteFile(minors, []byte("config 1\nmonitor 2\ngpu3/gi1/access 12\ngpu3/gi1/ci0/access 13\ngpu3/gi2/access 21\ngpu3/gi2/ci0/access 22\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	dev := cdi.Device{Name: "gpu-3-mig-1g10gb-19-0", GPU: gpu.GPU{Minor: 3}, MIG: &gpu.MIGDevice{UUID: "MIG-x", GIID: 1, CIID: 0}}
	nodes := func(paths ...string) *cdispec.ContainerEdits {
		e := &cdispec.ContainerEdits{}
		for _, p := range paths {
			e.DeviceNodes = append(e.DeviceNodes, &cdispec.DeviceNode{Path: p})
		}
		return e
	}
	tests := []struct {
		name    string
		path    string
		edits   *cdispec.ContainerEdits
		wantErr []string
	}{
		{name: "this instance's nodes", path: minors, edits: nodes("/dev/nvidia3", "/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap13")},
		{
			name: "another instance's compute node", path: minors,
			edits:   nodes("/dev/nvidia3", "/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap22"),
			wantErr: []string{"/dev/nvidia-caps/nvidia-cap13", "GPU instance 1 / compute instance 0", "nvidia-cap22"},
		},
		{
			name: "no entry for the instance", path: minors,
			edits:   nodes("/dev/nvidia3", "/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap13"),
			wantErr: []string{"gpu3/gi1/access"},
		},
		{
			name: "table missing", path: filepath.Join(t.TempDir(), "absent"),
			edits:   nodes("/dev/nvidia3", "/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap13"),
			wantErr: []string{"MIG capability minors", "no such file"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &Editor{devRoot: "/", migMinorsPath: tc.path}
			d := dev
			if tc.name == "no entry for the instance" {
				mig := *dev.MIG
				mig.GIID = 7
				d.MIG = &mig
				tc.wantErr = []string{"gpu3/gi7/access", "gpu3/gi7/ci0/access"}
			}
			err := e.checkDeviceNodes(d, tc.edits)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseMIGMinors(t *testing.T) {
	got, err := parseMIGMinors([]byte("config 1\n\ngpu0/gi2/ci0/access 15\n"))
	if err != nil || got["config"] != 1 || got["gpu0/gi2/ci0/access"] != 15 || len(got) != 2 {
		t.Fatalf("parse: %v %v", got, err)
	}
	for _, bad := range []string{"gpu0/gi2/access", "gpu0/gi2/access x", "gpu0/gi2/access -1"} {
		if _, err := parseMIGMinors([]byte(bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

// countingToolkit counts the driver-level computations.
type countingToolkit struct {
	nvcdilib.Interface
	common int
}

func (c *countingToolkit) GetCommonEdits() (*cdilib.ContainerEdits, error) {
	c.common++
	return c.Interface.GetCommonEdits()
}

// The driver-level edits are cached per driver version: an upgrade while
// the plugin runs is picked up by the next claim. Before, they were cached
// forever.
func TestClaimEditsFollowDriverVersion(t *testing.T) {
	n := newFakeNode(t)
	opts := n.options(t)
	version, versionErr := "550.54.15", error(nil)
	opts.DriverVersion = func() (string, error) { return version, versionErr }
	e, err := NewEditor(opts)
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingToolkit{Interface: e.toolkit}
	e.toolkit = counter
	// Toolkits set up for a new driver version count into the same counter.
	var setUps int
	newToolkit := e.newToolkit
	e.newToolkit = func() (nvcdilib.Interface, error) {
		toolkit, err := newToolkit()
		setUps++
		counter.Interface = toolkit
		return counter, err
	}
	claim := func() {
		t.Helper()
		if _, err := e.ClaimEdits(nil); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		what       string
		version    string
		err        error
		wantTotal  int
		wantSetUps int
	}{
		{"first claim", "550.54.15", nil, 1, 0},
		{"same driver", "550.54.15", nil, 1, 0},
		{"driver upgraded: a toolkit for it", "560.35.03", nil, 2, 1},
		{"same again", "560.35.03", nil, 2, 1},
		{"version unreadable: computed, not cached", "", errors.New("no module"), 3, 1},
		{"still unreadable", "", errors.New("no module"), 4, 1},
		{"readable again: computed anew, same toolkit", "560.35.03", nil, 5, 1},
	}
	for _, s := range steps {
		version, versionErr = s.version, s.err
		claim()
		if counter.common != s.wantTotal || setUps != s.wantSetUps {
			t.Fatalf("%s: %d computations and %d toolkit set-ups, want %d and %d", s.what, counter.common, setUps, s.wantTotal, s.wantSetUps)
		}
	}
}
