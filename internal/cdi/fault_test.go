package cdi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/fsutil/fsfault"
)

// specFaultCase is one writer operation whose file-system steps a test
// fails one at a time.
type specFaultCase struct {
	// oldDevs, if set, are written before the operation: the spec it
	// replaces or deletes.
	oldDevs []Device
	change  func(ctx context.Context, w *Writer) error
	// newSpec says what a successful change leaves: a spec (true) or none.
	newSpec bool
}

// walkSpecFaults records the steps of a clean run of fc.change, then reruns
// it once per step with that step failing (and once more with the temp
// file's removal failing too, as a crash would leave it), and checks what
// the runtime would see: the spec absent, or exactly the old or the new
// one, never a partial file, and no temp file it could read.
func walkSpecFaults(t *testing.T, fc specFaultCase) {
	ctx := context.Background()
	setup := func(t *testing.T) (*Writer, *fsfault.FS, string) {
		dir := filepath.Join(t.TempDir(), "cdi")
		ffs := fsfault.New(fsutil.OS)
		w, err := NewWriter(dir, DefaultVendor, DefaultClass, SimEditor{}, WithFS(ffs))
		if err != nil {
			t.Fatal(err)
		}
		if fc.oldDevs != nil {
			if _, err := w.WriteClaimSpec(ctx, testClaim(gpuClaimUID), fc.oldDevs); err != nil {
				t.Fatal(err)
			}
		}
		ffs.Reset()
		return w, ffs, dir
	}
	readSpec := func(t *testing.T, dir string) []byte {
		data, err := os.ReadFile(specFile(dir, gpuClaimUID))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	w, ffs, dir := setup(t)
	oldSpec := readSpec(t, dir)
	if err := fc.change(ctx, w); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	newSpec := readSpec(t, dir)
	if (newSpec != nil) != fc.newSpec {
		t.Fatalf("clean run left spec %q", newSpec)
	}
	points := fsfault.Points(ffs.Calls())
	if len(points) < 2 {
		t.Fatalf("clean run made %d file-system calls (%v)", len(points), ffs.Calls())
	}
	for _, p := range points {
		for _, cleanupFails := range []bool{false, true} {
			if cleanupFails && !removesTempFile[p.Call.Kind] {
				continue
			}
			name := fmt.Sprintf("%d-%s", p.Index, p.Call.Kind)
			if cleanupFails {
				name += "-and-temp-file-removal"
			}
			t.Run(name, func(t *testing.T) {
				w, ffs, dir := setup(t)
				p.Arm(ffs, fsfault.ErrInjected)
				if cleanupFails {
					ffs.Fail(fsfault.Op{Kind: fsfault.Remove, PathContains: ".tmp-"}, 1, errors.New("cleanup failed"))
				}
				err := fc.change(ctx, w)
				if injected := ffs.Injected(); len(injected) == 0 || injected[0].Kind != p.Call.Kind {
					t.Fatalf("injected %v; want %s first: the run is not deterministic", injected, p)
				}
				if !errors.Is(err, fsfault.ErrInjected) || !strings.Contains(err.Error(), gpuClaimUID) {
					t.Fatalf("error = %v; want the injected error, naming the claim", err)
				}

				got := readSpec(t, dir)
				switch {
				case got == nil:
				case string(got) == string(oldSpec), string(got) == string(newSpec):
					if _, err := cdilib.ReadSpec(specFile(dir, gpuClaimUID), 0); err != nil {
						t.Errorf("spec left behind does not load: %v", err)
					}
				default:
					t.Errorf("after failing %s the spec holds neither the old nor the new contents:\n%s", p, got)
				}
				if got == nil && oldSpec != nil && fc.newSpec {
					t.Errorf("after failing %s the old spec is gone; a failed write must leave it", p)
				}
				// What the runtime reads: only *.json and *.yaml, and every
				// one of them must load.
				cache, err := cdilib.NewCache(cdilib.WithSpecDirs(dir), cdilib.WithAutoRefresh(false))
				if err != nil {
					t.Fatal(err)
				}
				if errs := cache.GetErrors(); len(errs) != 0 {
					t.Errorf("the runtime's CDI cache reports %v", errs)
				}
				for _, name := range dirEntries(t, dir) {
					if strings.Contains(name, ".tmp-") && (!cleanupFails || !strings.HasPrefix(name, ".")) {
						t.Errorf("temp file %s left where the runtime may see it", name)
					}
				}
				if _, err := w.RemoveStaleTempFiles(); err != nil {
					t.Fatal(err)
				}
				for _, name := range dirEntries(t, dir) {
					if strings.Contains(name, ".tmp-") {
						t.Errorf("RemoveStaleTempFiles left %s", name)
					}
				}
			})
		}
	}
}

// removesTempFile are the steps whose failure makes fsutil.WriteFileAtomic
// remove its temp file.
var removesTempFile = map[fsfault.Kind]bool{
	fsfault.Chmod: true, fsfault.Write: true, fsfault.SyncFile: true, fsfault.Close: true, fsfault.Rename: true,
}

func TestWriteClaimSpecFailingAtEachStep(t *testing.T) {
	walkSpecFaults(t, specFaultCase{
		change: func(ctx context.Context, w *Writer) error {
			ids, err := w.WriteClaimSpec(ctx, testClaim(gpuClaimUID), gpuClaimDevices())
			if err != nil && ids != nil {
				t.Errorf("IDs %q returned with error %v", ids, err)
			}
			return err
		},
		newSpec: true,
	})
}

func TestReplacingAClaimSpecFailingAtEachStep(t *testing.T) {
	walkSpecFaults(t, specFaultCase{
		oldDevs: gpuClaimDevices()[1:],
		change: func(ctx context.Context, w *Writer) error {
			_, err := w.WriteClaimSpec(ctx, testClaim(gpuClaimUID), gpuClaimDevices())
			return err
		},
		newSpec: true,
	})
}

func TestDeleteClaimSpecFailingAtEachStep(t *testing.T) {
	walkSpecFaults(t, specFaultCase{
		oldDevs: gpuClaimDevices(),
		change:  func(ctx context.Context, w *Writer) error { return w.DeleteClaimSpec(ctx, gpuClaimUID) },
	})
}

func TestListAndRemoveStaleTempFilesReportErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cdi")
	ffs := fsfault.New(fsutil.OS)
	w, err := NewWriter(dir, DefaultVendor, DefaultClass, SimEditor{}, WithFS(ffs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteClaimSpec(context.Background(), testClaim(gpuClaimUID), gpuClaimDevices()); err != nil {
		t.Fatal(err)
	}
	stale := "." + filepath.Base(specFile(dir, gpuClaimUID)) + ".tmp-1"
	if err := os.WriteFile(filepath.Join(dir, stale), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ffs.Fail(fsfault.Op{Kind: fsfault.ReadDir}, 1, fsfault.ErrInjected)
	if _, err := w.ListClaimSpecs(); !errors.Is(err, fsfault.ErrInjected) {
		t.Errorf("ListClaimSpecs error = %v; want the injected one", err)
	}
	ffs.Fail(fsfault.Op{Kind: fsfault.Remove, PathContains: stale}, 1, fsfault.ErrInjected)
	if _, err := w.RemoveStaleTempFiles(); !errors.Is(err, fsfault.ErrInjected) || !strings.Contains(err.Error(), stale) {
		t.Errorf("RemoveStaleTempFiles error = %v; want the injected one, naming %s", err, stale)
	}
	if removed, err := w.RemoveStaleTempFiles(); err != nil || !reflect.DeepEqual(removed, []string{filepath.Join(dir, stale)}) {
		t.Errorf("RemoveStaleTempFiles = %q, %v; want the stale file removed", removed, err)
	}
}
