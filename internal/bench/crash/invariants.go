package crash

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// checkState compares what the plugin left on disk with what the kubelet
// knows, once every call the kubelet owed has succeeded:
//
//  1. every claim the kubelet thinks prepared has a PrepareCompleted record
//     and a spec that lists exactly the CDI IDs the plugin returned, for
//     the device the claim is allocated now;
//  2. no other claim has a record or a spec (nothing leaked);
//  3. no device is named by two claims' records or specs;
//  4. with final (everything unprepared): no temp file is left either;
//  5. in dynamic MIG mode (see checkMIG): the simulated node holds exactly
//     the MIG devices of the records, complete, and with final none;
//  6. in sharing mode (see checkSharing): GPU settings and MPS daemons
//     match the records, none is left by a departed claim.
func checkState(opts PluginOptions, k *kubelet, final bool) []string {
	var v []string
	records, err := readRecords(opts.Checkpoint())
	if err != nil {
		return []string{fmt.Sprintf("checkpoint unreadable: %v", err)}
	}
	writer, err := cdi.NewWriter(opts.CDIDir(), cdi.DefaultVendor, cdi.DefaultClass, cdi.SimEditor{})
	if err != nil {
		return []string{err.Error()}
	}
	specUIDs, err := writer.ListClaimSpecs()
	if err != nil {
		return []string{fmt.Sprintf("CDI dir unreadable: %v", err)}
	}

	prepared := map[string]*claimState{}
	for _, c := range k.claims {
		if c.prepared {
			prepared[string(c.claim.UID)] = c
		}
	}
	for uid, c := range prepared {
		rec, ok := records[uid]
		switch {
		case !ok:
			v = append(v, fmt.Sprintf("claim %s: the kubelet holds IDs %v, but the checkpoint has no record", c.claim.Name, c.ids))
			continue
		case rec.State != checkpoint.PrepareCompleted:
			v = append(v, fmt.Sprintf("claim %s: record state %s, want %s", c.claim.Name, rec.State, checkpoint.PrepareCompleted))
		}
		want := []string{cdiID(uid, allocatedDevice(c.claim))}
		if !slices.Equal(c.ids, want) {
			v = append(v, fmt.Sprintf("claim %s: the plugin returned %v, the claim is allocated %s (%v)", c.claim.Name, c.ids, allocatedDevice(c.claim), want))
		}
		spec, err := writer.ReadClaimSpec(uid)
		if err != nil {
			v = append(v, fmt.Sprintf("claim %s: the kubelet holds IDs %v, but the spec: %v", c.claim.Name, c.ids, err))
			continue
		}
		var ids []string
		for _, d := range spec.Devices {
			ids = append(ids, d.CDIDeviceID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, c.ids) {
			v = append(v, fmt.Sprintf("claim %s: spec lists %v, the kubelet holds %v", c.claim.Name, ids, c.ids))
		}
	}
	for uid, rec := range records {
		if prepared[uid] == nil {
			v = append(v, fmt.Sprintf("claim %s/%s (%s): record %s left for a claim the kubelet does not hold", rec.Namespace, rec.Name, uid, rec.State))
		}
	}
	holder := map[string]string{}
	for _, uid := range specUIDs {
		if prepared[uid] == nil {
			v = append(v, fmt.Sprintf("claim %s: CDI spec left for a claim the kubelet does not hold", uid))
		}
		if spec, err := writer.ReadClaimSpec(uid); err == nil {
			for _, d := range spec.Devices {
				if other, taken := holder[d.Name]; taken && other != uid {
					v = append(v, fmt.Sprintf("device %s is in the specs of claims %s and %s", d.Name, other, uid))
				}
				holder[d.Name] = uid
			}
		}
	}
	holder = map[string]string{}
	for uid, rec := range records {
		for _, d := range rec.Devices {
			if other, taken := holder[d.Device]; taken && other != uid {
				v = append(v, fmt.Sprintf("device %s is in the records of claims %s and %s", d.Device, other, uid))
			}
			holder[d.Device] = uid
		}
	}
	if opts.DynamicMIG {
		v = append(v, checkMIG(opts, k, records, final)...)
	}
	if opts.SimMPS != "" {
		v = append(v, checkSharing(opts, k, records, final)...)
	}
	if final {
		for _, dir := range []string{opts.CDIDir(), opts.PluginDir()} {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					v = append(v, fmt.Sprintf("temp file left: %s", filepath.Join(dir, e.Name())))
				}
			}
		}
	}
	return v
}

// readRecords loads a copy of the checkpoint, so that opening it (which
// removes stale temp files) changes nothing the harness checks.
func readRecords(path string) (map[string]checkpoint.Claim, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]checkpoint.Claim{}, nil
	}
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gpudra-crash-checkpoint-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	copyPath := filepath.Join(dir, "checkpoint.json")
	if err := os.WriteFile(copyPath, data, 0o600); err != nil {
		return nil, err
	}
	store, report, err := checkpoint.Open(context.Background(), copyPath, "harness")
	if err != nil {
		return nil, err
	}
	if report.CorruptReason != nil {
		return nil, fmt.Errorf("corrupt: %w", report.CorruptReason)
	}
	out := map[string]checkpoint.Claim{}
	for _, c := range store.List() {
		out[c.UID] = c
	}
	return out, nil
}

func cdiID(uid, device string) string {
	return cdi.DefaultVendor + "/" + cdi.DefaultClass + "=" + uid + "-" + device
}

// checkMIG compares the simulated node's MIG devices with the records: no
// half-made device, no device no record holds (an orphan), every device a
// record names exists with its UUID at its slot (what the claim's spec
// gives the container), and with final no MIG device at all.
func checkMIG(opts PluginOptions, k *kubelet, records map[string]checkpoint.Claim, final bool) []string {
	st, err := sim.ReadHardware(opts.SimStateDir())
	if err != nil || st == nil {
		return []string{fmt.Sprintf("simulated hardware unreadable: %v", err)}
	}
	type slot struct {
		parent      string
		profile, at int
	}
	onNode := map[slot]sim.HardwareMIGDevice{}
	var v []string
	for _, g := range st.GPUs {
		for _, d := range g.MIGDevices {
			if d.Incomplete {
				v = append(v, fmt.Sprintf("GPU %s: a half-made %s (GPU instance without compute instance) at placement %d", g.UUID, d.Profile, d.PlacementStart))
				continue
			}
			onNode[slot{g.UUID, d.GIProfileID, d.PlacementStart}] = d
		}
	}
	held := map[slot]bool{}
	prepared := map[string]bool{}
	for _, c := range k.claims {
		prepared[string(c.claim.UID)] = c.prepared
	}
	for uid, rec := range records {
		for _, d := range rec.Devices {
			if d.MIG == nil {
				continue
			}
			s := slot{d.MIG.ParentUUID, d.MIG.GIProfileID, d.MIG.PlacementStart}
			held[s] = true
			got, ok := onNode[s]
			switch {
			case prepared[uid] && !ok:
				v = append(v, fmt.Sprintf("claim %s/%s: prepared with MIG device %s (%s), which the node does not have", rec.Namespace, rec.Name, d.UUID, d.Device))
			case prepared[uid] && got.UUID != d.UUID:
				v = append(v, fmt.Sprintf("claim %s/%s: record names MIG device %s, the node has %s at its slot", rec.Namespace, rec.Name, d.UUID, got.UUID))
			}
		}
	}
	for s, d := range onNode {
		if final || !held[s] {
			v = append(v, fmt.Sprintf("GPU %s: MIG device %s (%s at placement %d) that no record holds", s.parent, d.UUID, d.Profile, s.at))
		}
	}
	return v
}
