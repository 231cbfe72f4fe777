package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gpudra/gpudra/internal/fsutil"
)

const testBoot = "boot-now"

func openT(t *testing.T, path string) (*Store, OpenReport) {
	t.Helper()
	s, report, err := Open(context.Background(), path, testBoot)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s, report
}

func gpuClaim(uid string) Claim {
	return Claim{
		UID: uid, Namespace: "ns", Name: "claim-" + uid, State: PrepareCompleted,
		BootID:     testBoot,
		PreparedAt: time.Date(2026, 8, 1, 12, 0, 0, 123, time.FixedZone("CEST", 2*3600)),
		Devices: []Device{{
			Request: "gpu", Pool: "node-1", Device: "gpu-0", UUID: "GPU-0", Type: DeviceTypeGPU,
			CDIDeviceIDs: []string{"k8s.gpu.nvidia.com/claim=" + uid + "-gpu-0"},
		}},
	}
}

func migClaim(uid string) Claim {
	return Claim{
		UID: uid, Namespace: "ns", Name: "claim-" + uid, State: PrepareStarted, BootID: testBoot,
		Devices: []Device{{
			Request: "mig", Pool: "node-1", Device: "gpu-1-mig-1g10gb-19-0", UUID: "MIG-1",
			Type: DeviceTypeMIG, ParentUUID: "GPU-1", AdminAccess: true,
			CDIDeviceIDs: []string{"k8s.gpu.nvidia.com/claim=" + uid + "-gpu-1-mig-1g10gb-19-0"},
		}},
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "checkpoint.json")
	s, report := openT(t, path)
	if !reflect.DeepEqual(report, OpenReport{}) || len(s.List()) != 0 {
		t.Fatalf("missing file: report %+v, claims %v; want empty", report, s.List())
	}
	ctx := context.Background()
	want := []Claim{gpuClaim("a"), migClaim("b")}
	for _, c := range want {
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want {
		want[i] = want[i].normalized()
	}
	if got := s.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("List before reopen:\n got %+v\nwant %+v", got, want)
	}

	reopened, report := openT(t, path)
	if got := reopened.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("List after reopen:\n got %+v\nwant %+v", got, want)
	}
	if report.Version != 1 || report.CorruptReason != nil || len(report.PreviousBootClaims) != 0 {
		t.Errorf("report = %+v; want version 1, nothing else", report)
	}
	if got, ok := reopened.Get("b"); !ok || !reflect.DeepEqual(got, want[1]) {
		t.Errorf("Get(b) = %+v, %v; want %+v", got, ok, want[1])
	}
	if _, ok := reopened.Get("missing"); ok {
		t.Error("Get(missing) found a claim")
	}
}

func TestGetReturnsACopy(t *testing.T) {
	s, _ := openT(t, filepath.Join(t.TempDir(), "cp.json"))
	if err := s.Put(context.Background(), gpuClaim("a")); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Get("a")
	c.Devices[0].CDIDeviceIDs[0] = "changed"
	if again, _ := s.Get("a"); again.Devices[0].CDIDeviceIDs[0] == "changed" {
		t.Error("changing a claim returned by Get changed the store")
	}
}

func TestPutDefaultsBootIDAndRejectsInvalidClaims(t *testing.T) {
	s, _ := openT(t, filepath.Join(t.TempDir(), "cp.json"))
	ctx := context.Background()
	if err := s.Put(ctx, Claim{UID: "a", State: PrepareStarted}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get("a"); c.BootID != testBoot {
		t.Errorf("BootID = %q; want the store's %q", c.BootID, testBoot)
	}
	tests := []struct {
		name    string
		claim   Claim
		wantErr string
	}{
		{"no UID", Claim{Namespace: "ns", Name: "n", State: PrepareStarted}, "claim ns/n: empty UID"},
		{"unknown state", Claim{UID: "x", State: "Done"}, `claim x: unknown state "Done"`},
		{"unwritable time", Claim{UID: "y", State: PrepareStarted, PreparedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "claim y: preparedAt year 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Put(ctx, tt.claim)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Put error = %v; want one containing %q", err, tt.wantErr)
			}
			if _, ok := s.Get(tt.claim.UID); ok {
				t.Error("rejected claim is in the store")
			}
		})
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	ctx := context.Background()
	for _, uid := range []string{"a", "b"} {
		if err := s.Put(ctx, gpuClaim(uid)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := s.Delete(ctx, "a"); err != nil {
			t.Fatalf("Delete(a): %v", err)
		}
	}
	writes := s.writes
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Fatalf("Delete(never-existed): %v", err)
	}
	if s.writes != writes {
		t.Errorf("deleting an unknown claim wrote the checkpoint (%d writes, want %d)", s.writes, writes)
	}
	reopened, _ := openT(t, path)
	if got := reopened.List(); len(got) != 1 || got[0].UID != "b" {
		t.Errorf("after delete and reopen: %+v; want only b", got)
	}
}

func TestOpenAfterCrashBetweenTempWriteAndRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	s, _ := openT(t, path)
	if err := s.Put(context.Background(), gpuClaim("old")); err != nil {
		t.Fatal(err)
	}
	newer, err := encode(testBoot, map[string]Claim{"new": gpuClaim("new")})
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "cp.json.tmp-123456")
	if err := os.WriteFile(stale, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	// A file of another name in the same directory is not ours to remove.
	unrelated := filepath.Join(dir, "other.json.tmp-1")
	if err := os.WriteFile(unrelated, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	reopened, report := openT(t, path)
	if got := reopened.List(); len(got) != 1 || got[0].UID != "old" {
		t.Errorf("claims = %+v; want the old checkpoint's", got)
	}
	if !reflect.DeepEqual(report.StaleTempFiles, []string{stale}) {
		t.Errorf("StaleTempFiles = %v; want [%s]", report.StaleTempFiles, stale)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(unrelated); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
}

func TestOpenMovesCorruptFileAside(t *testing.T) {
	tests := []struct {
		name       string
		data       string
		wantReason string
	}{
		{"truncated", `{"version": 1, "claims": {"a": {"state": "PrepareSt`, "unexpected end of JSON input"},
		{"garbage", "\x7fELF\x02\x01", "invalid character"},
		{"wrong version", `{"version": 7, "claims": {}}`, "version 7 is newer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "cp.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}

			s, report := openT(t, path)
			if report.CorruptReason == nil || !strings.Contains(report.CorruptReason.Error(), tt.wantReason) {
				t.Errorf("CorruptReason = %v; want one containing %q", report.CorruptReason, tt.wantReason)
			}
			if !strings.HasPrefix(report.CorruptMovedTo, path+".corrupt-") {
				t.Errorf("CorruptMovedTo = %q; want %s.corrupt-<unix time>", report.CorruptMovedTo, path)
			}
			if moved, err := os.ReadFile(report.CorruptMovedTo); err != nil || string(moved) != tt.data {
				t.Errorf("moved file holds %q, %v; want the corrupt contents", moved, err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("corrupt file still at %s: %v", path, err)
			}
			if len(s.List()) != 0 {
				t.Errorf("store not empty: %+v", s.List())
			}
			// The store is usable and the next Open is clean.
			if err := s.Put(context.Background(), gpuClaim("a")); err != nil {
				t.Fatal(err)
			}
			if _, report := openT(t, path); report.CorruptReason != nil {
				t.Errorf("second Open reports corruption: %v", report.CorruptReason)
			}
		})
	}
}

func TestMoveAsideKeepsEarlierEvidence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	now := time.Unix(1780000000, 0)
	var moved []string
	for i := range 3 {
		if err := os.WriteFile(path, []byte{byte('a' + i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		to, err := moveAside(fsutil.OS, path, now)
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, to)
	}
	want := []string{path + ".corrupt-1780000000", path + ".corrupt-1780000000-1", path + ".corrupt-1780000000-2"}
	if !reflect.DeepEqual(moved, want) {
		t.Errorf("moved to %v; want %v", moved, want)
	}
	for i, p := range want {
		if data, _ := os.ReadFile(p); string(data) != string(rune('a'+i)) {
			t.Errorf("%s holds %q; want %q", p, data, string(rune('a'+i)))
		}
	}
}

func TestOpenReportsPreviousBootClaims(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	ctx := context.Background()
	old, _, err := Open(ctx, path, "boot-before")
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"z", "y"} {
		if err := old.Put(ctx, Claim{UID: uid, State: PrepareCompleted}); err != nil {
			t.Fatal(err)
		}
	}
	now, report := openT(t, path)
	if err := now.Put(ctx, Claim{UID: "x", State: PrepareCompleted}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"y", "z"}; !reflect.DeepEqual(report.PreviousBootClaims, want) {
		t.Errorf("PreviousBootClaims = %v; want %v", report.PreviousBootClaims, want)
	}
	if _, report := openT(t, path); !reflect.DeepEqual(report.PreviousBootClaims, []string{"y", "z"}) {
		t.Errorf("after a Put in this boot, PreviousBootClaims = %v; want [y z]", report.PreviousBootClaims)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Open(context.Background(), filepath.Join(dir, "cp.json"), ""); err == nil {
		t.Error("Open with an empty boot ID succeeded")
	}
	// A directory where the file should be is unreadable, not corrupt: it
	// must not be moved aside.
	path := filepath.Join(dir, "is-a-dir")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(context.Background(), path, testBoot); err == nil {
		t.Error("Open of a directory succeeded")
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("directory was moved: %v", err)
	}
}

func TestReadBootID(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string
		want    string
		wantErr bool
	}{
		{"kernel format", ptr("6e1bd8d4-7c1e-4f6a-a1d4-2a1b0c9e8f70\n"), "6e1bd8d4-7c1e-4f6a-a1d4-2a1b0c9e8f70", false},
		{"empty", ptr("\n"), "", true},
		{"missing", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadBootID(path)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("ReadBootID = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }
