package fsutil_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/fsutil/fsfault"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := fsutil.WriteFileAtomic(fsutil.OS, path, []byte("one"), fsutil.AtomicWrite{TempPrefix: ".f.tmp-", Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "one" {
		t.Errorf("file holds %q; want one", data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 644", fi.Mode(), err)
	}
	if got := names(t, dir); !reflect.DeepEqual(got, []string{"f.json"}) {
		t.Errorf("directory holds %q; want only f.json", got)
	}
}

// Every step of a write, failed in turn, leaves the old contents or the new,
// no temp file, and an error naming the target.
func TestWriteFileAtomicFailingAtEachStep(t *testing.T) {
	opts := fsutil.AtomicWrite{TempPrefix: "f.json.tmp-", Mode: 0o640}
	write := func(fsys fsutil.FS, path string) error {
		return fsutil.WriteFileAtomic(fsys, path, []byte(`{"new": true}`), opts)
	}
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("existing=%v", existing), func(t *testing.T) {
			setup := func(t *testing.T) (string, *fsfault.FS) {
				path := filepath.Join(t.TempDir(), "f.json")
				if existing {
					if err := os.WriteFile(path, []byte(`{"old": true}`), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				return path, fsfault.New(fsutil.OS)
			}
			path, rec := setup(t)
			if err := write(rec, path); err != nil {
				t.Fatal(err)
			}
			wantKinds := []fsfault.Kind{fsfault.CreateTemp, fsfault.Chmod, fsfault.Write, fsfault.SyncFile, fsfault.Close, fsfault.Rename, fsfault.SyncDir}
			var kinds []fsfault.Kind
			for _, c := range rec.Calls() {
				kinds = append(kinds, c.Kind)
			}
			if !reflect.DeepEqual(kinds, wantKinds) {
				t.Fatalf("steps = %v; want %v", kinds, wantKinds)
			}
			for _, p := range fsfault.Points(rec.Calls()) {
				t.Run(fmt.Sprintf("%d-%s", p.Index, p.Call.Kind), func(t *testing.T) {
					path, ffs := setup(t)
					p.Arm(ffs, fsfault.ErrInjected)
					err := write(ffs, path)
					if !errors.Is(err, fsfault.ErrInjected) || !strings.Contains(err.Error(), "f.json") {
						t.Fatalf("error = %v; want the injected one, naming the file", err)
					}
					data, err := os.ReadFile(path)
					switch {
					case errors.Is(err, os.ErrNotExist) && !existing:
					case err != nil:
						t.Fatal(err)
					case string(data) != `{"old": true}` && string(data) != `{"new": true}`:
						t.Errorf("file holds %q; want the old or the new contents", data)
					}
					for _, name := range names(t, filepath.Dir(path)) {
						if strings.Contains(name, ".tmp-") {
							t.Errorf("temp file %s left behind", name)
						}
					}
				})
			}
		})
	}
}

func TestWriteFileAtomicFailedCheckKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	rejected := errors.New("rejected")
	var checked string
	err := fsutil.WriteFileAtomic(fsutil.OS, path, []byte("new"), fsutil.AtomicWrite{TempPrefix: "f.tmp-", Check: func(tmp string) error {
		data, _ := os.ReadFile(tmp)
		checked = string(data)
		return rejected
	}})
	if !errors.Is(err, rejected) {
		t.Fatalf("error = %v; want %v", err, rejected)
	}
	if checked != "new" {
		t.Errorf("Check saw %q; want the new contents", checked)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("file holds %q; want old", data)
	}
	if got := names(t, dir); !reflect.DeepEqual(got, []string{"f"}) {
		t.Errorf("directory holds %q; want only f", got)
	}
}

func TestRemoveTempFiles(t *testing.T) {
	dir := t.TempDir()
	if removed, err := fsutil.RemoveTempFiles(fsutil.OS, filepath.Join(dir, "missing"), "x"); err != nil || removed != nil {
		t.Errorf("missing directory: %q, %v; want nothing", removed, err)
	}
	for _, name := range []string{"cp.json", "cp.json.tmp-1", "cp.json.tmp-2", "other.tmp-1"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "cp.json.tmp-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	ffs := fsfault.New(fsutil.OS)
	ffs.Fail(fsfault.Op{Kind: fsfault.Remove, PathContains: "tmp-2"}, 1, fsfault.ErrInjected)
	removed, err := fsutil.RemoveTempFiles(ffs, dir, "cp.json.tmp-")
	if !errors.Is(err, fsfault.ErrInjected) || !strings.Contains(err.Error(), "cp.json.tmp-2") {
		t.Errorf("error = %v; want the injected one, naming cp.json.tmp-2", err)
	}
	if want := []string{filepath.Join(dir, "cp.json.tmp-1")}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %q before the error; want %q", removed, want)
	}
	removed, err = fsutil.RemoveTempFiles(ffs, dir, "cp.json.tmp-")
	if err != nil || !reflect.DeepEqual(removed, []string{filepath.Join(dir, "cp.json.tmp-2")}) {
		t.Errorf("second run: %q, %v; want cp.json.tmp-2 removed", removed, err)
	}
	if got, want := names(t, dir), []string{"cp.json", "cp.json.tmp-dir", "other.tmp-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("directory holds %q; want %q", got, want)
	}
}
