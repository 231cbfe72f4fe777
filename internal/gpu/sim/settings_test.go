package sim

import (
	"path/filepath"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/contract"
)

const settingsConfig = `gpus:
- model: h100-sxm5-80gb
  migEnabled: true
- model: h100-sxm5-80gb
  count: 2
`

// TestSettingsContract runs the settings contract over a state directory:
// a reopened backend is a restarted plugin over the same hardware.json.
func TestSettingsContract(t *testing.T) {
	contract.RunSettings(t, func(t *testing.T) contract.SettingsNode {
		cfg, dir := writeNodeConfig(t, settingsConfig), filepath.Join(t.TempDir(), "sim")
		cur := openDir(t, cfg, dir)
		n := contract.SettingsNode{Backend: cur}
		n.Reopen = func(t *testing.T) contract.SettingsBackend {
			cur = openDir(t, cfg, dir)
			return cur
		}
		// The file is the hardware; Inventory must report what it holds.
		n.TimeSlice = func(t *testing.T, uuid string) gpu.TimeSlice {
			g := inventory(t, cur).FindGPU(uuid)
			if g == nil {
				t.Fatalf("no GPU %s in the inventory", uuid)
			}
			st, err := ReadHardware(dir)
			if err != nil || st == nil {
				t.Fatalf("read hardware: %v", err)
			}
			for _, hg := range st.GPUs {
				if hg.UUID == uuid {
					if hg.TimeSlice != g.TimeSlice {
						t.Fatalf("%s: hardware.json has time slice %s, Inventory %s", uuid, hg.TimeSlice, g.TimeSlice)
					}
					return hg.TimeSlice
				}
			}
			t.Fatalf("no GPU %s in hardware.json", uuid)
			return 0
		}
		return n
	})
}
