package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/fsutil/fsfault"
)

// faultCase is one store operation whose file-system steps a test fails
// one at a time.
type faultCase struct {
	// before are the claims on disk (and in memory) before the change.
	before []string
	// change is the operation under test.
	change func(ctx context.Context, s *Store) error
	// check runs after change failed, on the store and its file.
	check func(t *testing.T, s *Store, onDisk map[string]Claim)
}

// walkFaults records the file-system steps of a clean run of fc.change, then
// reruns it once per step with that step failing, and checks what every
// failure leaves: change returns the injected error naming claim, the file
// decodes, and the next Open finds no temp file.
func walkFaults(t *testing.T, fc faultCase, claim string) {
	ctx := context.Background()
	setup := func(t *testing.T) (*Store, *fsfault.FS, string) {
		path := filepath.Join(t.TempDir(), "cp.json")
		ffs := fsfault.New(fsutil.OS)
		s, _, err := Open(ctx, path, testBoot, WithFS(ffs))
		if err != nil {
			t.Fatal(err)
		}
		for _, uid := range fc.before {
			if err := s.Put(ctx, gpuClaim(uid)); err != nil {
				t.Fatal(err)
			}
		}
		ffs.Reset()
		return s, ffs, path
	}

	s, ffs, _ := setup(t)
	if err := fc.change(ctx, s); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	points := fsfault.Points(ffs.Calls())
	if len(points) < 5 {
		t.Fatalf("clean run made %d file-system calls (%v); want at least create, write, sync, close, rename", len(points), ffs.Calls())
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
				s, ffs, path := setup(t)
				p.Arm(ffs, fsfault.ErrInjected)
				if cleanupFails {
					// As if the process died before cleaning up: the temp
					// file stays for the next Open.
					ffs.Fail(fsfault.Op{Kind: fsfault.Remove}, 1, errors.New("cleanup failed"))
				}
				err := fc.change(ctx, s)
				if injected := ffs.Injected(); len(injected) == 0 || injected[0].Kind != p.Call.Kind {
					t.Fatalf("injected %v; want %s first: the run is not deterministic", injected, p)
				}
				if !errors.Is(err, fsfault.ErrInjected) || !strings.Contains(err.Error(), claim) {
					t.Fatalf("error = %v; want the injected error, naming %s", err, claim)
				}
				if got := dirNames(t, filepath.Dir(path)); !cleanupFails && !reflect.DeepEqual(got, []string{"cp.json"}) {
					t.Errorf("after the failed write, the directory holds %q; want only cp.json", got)
				}
				onDisk, err := decodeFile(path)
				if err != nil {
					t.Fatalf("after failing %s the checkpoint does not decode: %v", p, err)
				}
				fc.check(t, s, onDisk)

				if _, _, err := Open(ctx, path, testBoot); err != nil {
					t.Fatal(err)
				}
				if got := dirNames(t, filepath.Dir(path)); !reflect.DeepEqual(got, []string{"cp.json"}) {
					t.Errorf("after reopening, the directory holds %q; want only cp.json", got)
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

func decodeFile(path string) (map[string]Claim, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Claim{}, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := decode(data)
	return c.claims, err
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func uids(claims map[string]Claim) []string {
	var out []string
	for uid := range claims {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out
}

// putLaterAndCheckDisk makes a successful write after a failure and checks
// the file then holds exactly want: the failed change is written neither by
// accident nor half.
func putLaterAndCheckDisk(t *testing.T, s *Store, want ...string) {
	t.Helper()
	if err := s.Put(context.Background(), gpuClaim("later")); err != nil {
		t.Fatalf("Put after the failure: %v", err)
	}
	onDisk, err := decodeFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "later")
	slices.Sort(want)
	if got := uids(onDisk); !reflect.DeepEqual(got, want) {
		t.Errorf("after a later successful Put, disk holds %q; want %q", got, want)
	}
}

func TestPutFailingAtEachStep(t *testing.T) {
	walkFaults(t, faultCase{
		before: []string{"old"},
		change: func(ctx context.Context, s *Store) error { return s.Put(ctx, gpuClaim("new")) },
		check: func(t *testing.T, s *Store, onDisk map[string]Claim) {
			if c, ok := s.Get("new"); ok {
				t.Errorf("failed Put: Get(new) = %+v; want no record", c)
			}
			if got := len(s.List()); got != 1 {
				t.Errorf("failed Put: List has %d claims; want 1 (old)", got)
			}
			if got := uids(onDisk); !reflect.DeepEqual(got, []string{"old"}) && !reflect.DeepEqual(got, []string{"new", "old"}) {
				t.Errorf("disk holds %q; want the old contents [old] or the new [new old]", got)
			}
			putLaterAndCheckDisk(t, s, "old")
		},
	}, "new")
}

func TestPutOverARecordFailingAtEachStep(t *testing.T) {
	walkFaults(t, faultCase{
		before: []string{"a"},
		change: func(ctx context.Context, s *Store) error {
			c := gpuClaim("a")
			c.State = PrepareStarted
			return s.Put(ctx, c)
		},
		check: func(t *testing.T, s *Store, onDisk map[string]Claim) {
			if c, ok := s.Get("a"); !ok || c.State != PrepareCompleted {
				t.Errorf("failed Put: Get(a) = %+v, %v; want the earlier PrepareCompleted record", c, ok)
			}
			putLaterAndCheckDisk(t, s, "a")
			if c, _ := s.Get("a"); c.State != PrepareCompleted {
				t.Errorf("after the later Put, a is %s; want PrepareCompleted", c.State)
			}
		},
	}, "a")
}

func TestDeleteFailingAtEachStep(t *testing.T) {
	walkFaults(t, faultCase{
		before: []string{"gone", "kept"},
		change: func(ctx context.Context, s *Store) error { return s.Delete(ctx, "gone") },
		check: func(t *testing.T, s *Store, onDisk map[string]Claim) {
			// Memory stays deleted (see Store.Delete).
			if _, ok := s.Get("gone"); ok {
				t.Error("failed Delete: Get(gone) found the record")
			}
			got := uids(onDisk)
			if !reflect.DeepEqual(got, []string{"gone", "kept"}) && !reflect.DeepEqual(got, []string{"kept"}) {
				t.Errorf("disk holds %q; want [gone kept] or [kept]", got)
			}
			// What a restarted plugin would see agrees with the file.
			reopened, _, err := Open(context.Background(), s.path, testBoot)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := reopened.Get("gone"); ok != slices.Contains(got, "gone") {
				t.Errorf("after reopening, Get(gone) = %v; want %v", ok, slices.Contains(got, "gone"))
			}
			putLaterAndCheckDisk(t, s, "kept")
		},
	}, "gone")
}

func TestReplaceFailingAtEachStep(t *testing.T) {
	walkFaults(t, faultCase{
		before: []string{"a", "b"},
		change: func(ctx context.Context, s *Store) error {
			return s.Replace(ctx, []Claim{migClaim("b"), gpuClaim("c")})
		},
		check: func(t *testing.T, s *Store, onDisk map[string]Claim) {
			want := []Claim{gpuClaim("a").normalized(), gpuClaim("b").normalized()}
			if got := s.List(); !reflect.DeepEqual(got, want) {
				t.Errorf("failed Replace: List = %+v; want the records before it", got)
			}
			got := uids(onDisk)
			if !reflect.DeepEqual(got, []string{"a", "b"}) && !reflect.DeepEqual(got, []string{"b", "c"}) {
				t.Errorf("disk holds %q; want [a b] or [b c]", got)
			}
			putLaterAndCheckDisk(t, s, "a", "b")
		},
	}, "cp.json")
}
