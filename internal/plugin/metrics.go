package plugin

import (
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/metrics"
)

// metricsState is what the node holds, for a scrape of /metrics: read from
// the checkpoint, the published devices and their owners.
func (d *Driver) metricsState() metrics.State {
	st := metrics.State{Devices: map[string]int{}}
	for _, rec := range d.cfg.Store.List() {
		if rec.State == checkpoint.PrepareCompleted {
			st.PreparedClaims++
		}
		st.MPSDaemons += len(rec.MPS)
		st.SettingsHeld += len(rec.Settings)
	}
	s := d.snapshot.Load()
	if s == nil {
		return st
	}
	for _, dev := range s.devices {
		_, gone := s.retained[dev.Name]
		_, held := d.owners.owner(dev.Name)
		switch {
		case gone:
			st.Devices["unavailable"]++
		case held:
			st.Devices["prepared"]++
		default:
			st.Devices["free"]++
		}
	}
	return st
}
