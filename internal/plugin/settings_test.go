package plugin

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

func timeSliced(interval string) resourceapi.DeviceAllocationConfiguration {
	return opaque([]string{"gpu"}, resourceapi.AllocationConfigSourceClaim,
		`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"`+interval+`"}}}`)
}

// settingsOf returns a sim GPU's time slice and compute mode.
func settingsOf(t *testing.T, b gpu.Backend, device string) (gpu.TimeSlice, gpu.ComputeMode) {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range inv.GPUs {
		if fmt.Sprintf("gpu-%d", inv.GPUs[i].Minor) == device {
			return inv.GPUs[i].TimeSlice, inv.GPUs[i].ComputeMode
		}
	}
	t.Fatalf("no GPU %s", device)
	return 0, ""
}

func uuidOf(t *testing.T, b gpu.Backend, minor int) string {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range inv.GPUs {
		if g.Minor == minor {
			return g.UUID
		}
	}
	t.Fatalf("no GPU with minor %d", minor)
	return ""
}

// A time-sliced claim sets the GPU's time slice (and the Default compute
// mode) at prepare, records what was there, and puts it back at unprepare.
func TestTimeSlicedClaimSetsAndRestoresTheGPU(t *testing.T) {
	ctx := context.Background()
	b := simBackend(t, "dgxh100").(*sim.Backend)
	gpu3 := uuidOf(t, b, 3)
	if err := b.SetTimeSlice(ctx, gpu3, gpu.TimeSliceMedium); err != nil {
		t.Fatal(err)
	}
	if err := b.SetComputeMode(ctx, gpu3, gpu.ComputeModeProhibited); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b)
	c := e.claim("ts", []alloc{{"gpu", "gpu-3", false}}, timeSliced("Long"))
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	if ts, cm := settingsOf(t, b, "gpu-3"); ts != gpu.TimeSliceLong || cm != gpu.ComputeModeDefault {
		t.Errorf("prepared: time slice %s, compute mode %s; want Long, Default", ts, cm)
	}
	rec, _ := e.store.Get(string(c.UID))
	want := []checkpoint.SettingHold{
		{GPU: gpu3, Kind: "timeSlice", Value: "Long", Previous: "Medium"},
		{GPU: gpu3, Kind: "computeMode", Value: "Default", Previous: "Prohibited"},
	}
	if rec.State != checkpoint.PrepareCompleted || !reflect.DeepEqual(rec.Settings, want) {
		t.Errorf("record %s with settings %+v, want completed with %+v", rec.State, rec.Settings, want)
	}
	if ts, _ := settingsOf(t, b, "gpu-4"); ts != gpu.TimeSliceDefault {
		t.Errorf("gpu-4 got time slice %s", ts)
	}
	if err := e.unprepare(c)[c.UID]; err != nil {
		t.Fatal(err)
	}
	if ts, cm := settingsOf(t, b, "gpu-3"); ts != gpu.TimeSliceMedium || cm != gpu.ComputeModeProhibited {
		t.Errorf("unprepared: time slice %s, compute mode %s; want Medium, Prohibited back", ts, cm)
	}
	if _, ok := e.store.Get(string(c.UID)); ok {
		t.Error("record left after unprepare")
	}
}

// Two claims on one GPU (the second with admin access) asking for other
// intervals: the second fails naming both, the first keeps running with
// its setting; one asking for the same interval shares, and the GPU is
// restored only when the last goes.
func TestSecondClaimWithAnotherIntervalFailsNamingBoth(t *testing.T) {
	b := simBackend(t, "dgxh100")
	e := newEnv(t, b)
	first := e.claim("first", []alloc{{"gpu", "gpu-2", false}}, timeSliced("Long"))
	if err := e.prepare(first)[first.UID].Err; err != nil {
		t.Fatal(err)
	}
	other := e.claim("other", []alloc{{"gpu", "gpu-2", true}}, timeSliced("Short"))
	err := e.prepare(other)[other.UID].Err
	if err == nil {
		t.Fatal("a claim with another interval was prepared on a GPU held at Long")
	}
	for _, w := range []string{"claim default/other asks for timeSlice Short", "claim default/first (uid uid-first)", "holds it at Long", uuidOf(t, b, 2)} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if _, ok := e.store.Get(string(other.UID)); ok {
		t.Error("the refused claim left a record")
	}
	if ts, _ := settingsOf(t, b, "gpu-2"); ts != gpu.TimeSliceLong {
		t.Errorf("after the refusal gpu-2 has %s, want Long", ts)
	}

	same := e.claim("same", []alloc{{"gpu", "gpu-2", true}}, timeSliced("Long"))
	if err := e.prepare(same)[same.UID].Err; err != nil {
		t.Fatal(err)
	}
	if err := e.unprepare(first)[first.UID]; err != nil {
		t.Fatal(err)
	}
	if ts, _ := settingsOf(t, b, "gpu-2"); ts != gpu.TimeSliceLong {
		t.Errorf("with one holder left gpu-2 has %s, want Long", ts)
	}
	if err := e.unprepare(same)[same.UID]; err != nil {
		t.Fatal(err)
	}
	if ts, _ := settingsOf(t, b, "gpu-2"); ts != gpu.TimeSliceDefault {
		t.Errorf("with no holder gpu-2 has %s, want Default back", ts)
	}
}

// A crash after the record and the change, before the spec: the claim is
// deleted while the plugin is down; the next start's cleanup undoes the
// setting and forgets the record. A GPU reset under a prepared claim gets
// its setting back when the plugin starts (and in every cleanup).
func TestCleanupUndoesHalfPreparedSettingsAndReappliesHeldOnes(t *testing.T) {
	ctx := context.Background()
	b := simBackend(t, "dgxh100").(*sim.Backend)
	e := newEnv(t, b)
	held := e.claim("held", []alloc{{"gpu", "gpu-1", false}}, timeSliced("Short"))
	if err := e.prepare(held)[held.UID].Err; err != nil {
		t.Fatal(err)
	}
	gpu6 := uuidOf(t, b, 6)
	half := checkpoint.Claim{
		UID: "uid-half", Namespace: "default", Name: "half", State: checkpoint.PrepareStarted, BootID: "boot-1", PreparedAt: time.Now(),
		Devices:  []checkpoint.Device{{Request: "gpu", Pool: nodeName, Device: "gpu-6", UUID: gpu6, Type: checkpoint.DeviceTypeGPU}},
		Settings: []checkpoint.SettingHold{{GPU: gpu6, Kind: "timeSlice", Value: "Long", Previous: "Default"}},
	}
	if err := e.store.Put(ctx, half); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTimeSlice(ctx, gpu6, gpu.TimeSliceLong); err != nil {
		t.Fatal(err)
	}
	// And gpu-1 lost its setting (a reset).
	if err := b.SetTimeSlice(ctx, uuidOf(t, b, 1), gpu.TimeSliceDefault); err != nil {
		t.Fatal(err)
	}
	e.restart("boot-1")
	if r := e.driver.CleanupOnce(ctx); r.StaleClaims != 1 {
		t.Fatalf("cleanup: %+v, want the half-prepared claim unprepared", r)
	}
	if ts, _ := settingsOf(t, b, "gpu-6"); ts != gpu.TimeSliceDefault {
		t.Errorf("gpu-6 has %s after cleanup, want Default back", ts)
	}
	if ts, _ := settingsOf(t, b, "gpu-1"); ts != gpu.TimeSliceShort {
		t.Errorf("gpu-1 has %s after cleanup, want Short again", ts)
	}
	if _, ok := e.store.Get("uid-half"); ok {
		t.Error("half-prepared record left")
	}
}
