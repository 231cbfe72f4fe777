package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/fsutil/fsfault"
)

func TestReloadSeesWhatAnotherStoreWrote(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	ctx := context.Background()
	first, _ := openT(t, path)
	second, _ := openT(t, path)
	if err := first.Put(ctx, gpuClaim("a")); err != nil {
		t.Fatal(err)
	}
	if _, ok := second.Get("a"); ok {
		t.Fatal("second store saw a before Reload")
	}
	report, err := second.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if report.Version != 1 || report.CorruptReason != nil {
		t.Errorf("report = %+v; want version 1, not corrupt", report)
	}
	if got, ok := second.Get("a"); !ok || !reflect.DeepEqual(got, gpuClaim("a").normalized()) {
		t.Errorf("after Reload, Get(a) = %+v, %v; want the record first wrote", got, ok)
	}

	if err := second.Put(ctx, migClaim("b")); err != nil {
		t.Fatal(err)
	}
	if err := second.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := first.List(); len(got) != 1 || got[0].UID != "b" {
		t.Errorf("after the second Reload, first holds %+v; want only b", got)
	}
	// The reloaded store writes on top of what it read.
	if err := first.Put(ctx, gpuClaim("c")); err != nil {
		t.Fatal(err)
	}
	if reopened, _ := openT(t, path); len(reopened.List()) != 2 {
		t.Errorf("after reopen: %+v; want b and c", reopened.List())
	}
}

func TestReloadReportsPreviousBootClaims(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	ctx := context.Background()
	old, _, err := Open(ctx, path, "boot-before")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := openT(t, path)
	if err := old.Put(ctx, Claim{UID: "z", State: PrepareCompleted}); err != nil {
		t.Fatal(err)
	}
	report, err := s.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(report.PreviousBootClaims, []string{"z"}) {
		t.Errorf("PreviousBootClaims = %v; want [z]", report.PreviousBootClaims)
	}
}

func TestReloadMovesCorruptFileAsideAndRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	s, _ := openT(t, path)
	if err := s.Put(context.Background(), gpuClaim("a")); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "cp.json.tmp-99")
	for p, data := range map[string]string{path: `{"version": 1, "claims": {`, stale: "{"} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	report, err := s.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if report.CorruptReason == nil || !strings.HasPrefix(report.CorruptMovedTo, path+".corrupt-") {
		t.Errorf("report = %+v; want the corrupt file reported and moved aside", report)
	}
	if !reflect.DeepEqual(report.StaleTempFiles, []string{stale}) {
		t.Errorf("StaleTempFiles = %v; want [%s]", report.StaleTempFiles, stale)
	}
	if got := s.List(); len(got) != 0 {
		t.Errorf("after reloading a corrupt file the store holds %+v; want nothing", got)
	}
	if got := dirNames(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], "cp.json.corrupt-") {
		t.Errorf("directory holds %q; want only the moved-aside file", got)
	}
}

func TestReloadErrorKeepsTheView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	ffs := fsfault.New(fsutil.OS)
	s, _, err := Open(context.Background(), path, testBoot, WithFS(ffs))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), gpuClaim("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []fsfault.Kind{fsfault.ReadDir, fsfault.ReadFile, fsfault.Rename} {
		t.Run(string(kind), func(t *testing.T) {
			ffs.Fail(fsfault.Op{Kind: kind}, 1, fsfault.ErrInjected)
			if _, err := s.Reload(context.Background()); !errors.Is(err, fsfault.ErrInjected) || !strings.Contains(err.Error(), path) {
				t.Errorf("Reload error = %v; want the injected one, naming %s", err, path)
			}
			if _, ok := s.Get("a"); !ok {
				t.Error("a failed Reload dropped the store's view")
			}
			if data, _ := os.ReadFile(path); string(data) != "garbage" {
				t.Errorf("file holds %q; want it left where it was", data)
			}
		})
	}
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("a"); ok {
		t.Error("after reloading a corrupt file, a is still there")
	}
}

func TestReloadWaitsForAWriteInFlight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	w := newStalledWrites()
	s.writeFile = w.write
	ctx := context.Background()

	put := make(chan error, 1)
	go func() { put <- s.Put(ctx, gpuClaim("in-flight")) }()
	waitFor(t, "the write to start", func() bool { return isWriting(s) })
	reloaded := make(chan error, 1)
	go func() {
		_, err := s.Reload(ctx)
		reloaded <- err
	}()
	waitForWaiters(t, s, 1)
	close(w.release)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	// Had Reload read the file before the write, the claim would be gone.
	if _, ok := s.Get("in-flight"); !ok {
		t.Error("Reload did not wait for the write in flight")
	}
}

func TestReloadWithCancelledContextChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	other, _ := openT(t, path)
	if err := other.Put(context.Background(), gpuClaim("a")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Reload(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Reload = %v; want context.Canceled", err)
	}
	if _, ok := s.Get("a"); ok {
		t.Error("Reload with a cancelled context changed the view")
	}
}

func TestReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	ctx := context.Background()
	for _, uid := range []string{"a", "b"} {
		if err := s.Put(ctx, gpuClaim(uid)); err != nil {
			t.Fatal(err)
		}
	}
	before := s.List()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	rejected := []struct {
		name    string
		ctx     context.Context
		claims  []Claim
		wantErr string
	}{
		{"cancelled context", cancelled, []Claim{gpuClaim("c")}, "context canceled"},
		{"claim listed twice", ctx, []Claim{gpuClaim("c"), gpuClaim("c")}, "claim c listed twice"},
		{"invalid claim", ctx, []Claim{gpuClaim("c"), {UID: "d", State: "Done"}}, `claim d: unknown state "Done"`},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Replace(tt.ctx, tt.claims); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Replace error = %v; want one containing %q", err, tt.wantErr)
			}
			if got := s.List(); !reflect.DeepEqual(got, before) {
				t.Errorf("rejected Replace changed the store: %+v", got)
			}
		})
	}

	noBoot := gpuClaim("c")
	noBoot.BootID = ""
	if err := s.Replace(ctx, []Claim{migClaim("b"), noBoot}); err != nil {
		t.Fatal(err)
	}
	want := []Claim{migClaim("b").normalized(), gpuClaim("c").normalized()}
	if got := s.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("after Replace:\n got %+v\nwant %+v", got, want)
	}
	if got := mustOpenList(t, path); !reflect.DeepEqual(got, want) {
		t.Errorf("after Replace and reopen:\n got %+v\nwant %+v", got, want)
	}
	if err := s.Replace(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustOpenList(t, path); len(got) != 0 {
		t.Errorf("after Replace with nothing, disk holds %+v", got)
	}
}

func mustOpenList(t *testing.T, path string) []Claim {
	t.Helper()
	s, _ := openT(t, path)
	return s.List()
}
