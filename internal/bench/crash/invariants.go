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
)

// checkState compares what the plugin left on disk with what the kubelet
// knows, once every call the kubelet owed has succeeded:
//
//  1. every claim the kubelet thinks prepared has a PrepareCompleted record
//     and a spec that lists exactly the CDI IDs the plugin returned, for
//     the device the claim is allocated now;
//  2. no other claim has a record or a spec (nothing leaked);
//  3. no device is named by two claims' records or specs;
//  4. with final (everything unprepared): no temp file is left either.
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
