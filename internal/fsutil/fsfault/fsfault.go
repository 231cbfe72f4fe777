// Package fsfault wraps an fsutil.FS to see and break what a durable-file
// writer does, for tests of the packages that write through fsutil.FS.
//
// Contract:
//   - Every operation, the file operations of files from CreateTemp
//     included, is recorded in order as a Call (kind, path, error) and
//     passed to the wrapped FS unless a failure was armed for it.
//   - Fail(op, n, err) makes the n-th operation matching op, counted from
//     the Fail call, return err without reaching the wrapped FS (a failed
//     Close still closes the file, so no descriptor leaks; a failed Write
//     writes the first half of the data, as a full disk would).
//   - Points turns the calls of a clean run into one failure per call, so a
//     table test can record a run once and then fail each step in turn;
//     that needs the run's sequence of kinds to be deterministic.
//   - FS is safe for concurrent use.
package fsfault

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gpudra/gpudra/internal/fsutil"
)

// Kind is a kind of file-system operation.
type Kind string

// The kinds FS records: one per method of fsutil.FS and fsutil.File.
const (
	CreateTemp Kind = "CreateTemp"
	Write      Kind = "Write"
	SyncFile   Kind = "SyncFile"
	Chmod      Kind = "Chmod"
	Close      Kind = "Close"
	Rename     Kind = "Rename"
	Remove     Kind = "Remove"
	SyncDir    Kind = "SyncDir"
	ReadDir    Kind = "ReadDir"
	ReadFile   Kind = "ReadFile"
	Stat       Kind = "Stat"
	Lstat      Kind = "Lstat"
	MkdirAll   Kind = "MkdirAll"
)

// ErrInjected is a convenient error to inject; any error will do.
var ErrInjected = errors.New("fsfault: injected error")

// Op selects operations. The zero Op matches every operation.
type Op struct {
	// Kind matches operations of this kind; empty matches all kinds.
	Kind Kind
	// PathContains matches operations whose path (or, for Rename, either
	// path) contains it; empty matches all paths.
	PathContains string
}

func (op Op) matches(c Call) bool {
	if op.Kind != "" && op.Kind != c.Kind {
		return false
	}
	return op.PathContains == "" || strings.Contains(c.Path, op.PathContains) ||
		(c.NewPath != "" && strings.Contains(c.NewPath, op.PathContains))
}

// Call is one operation FS saw.
type Call struct {
	Kind Kind
	// Path is the operation's path; for CreateTemp, dir joined with the
	// pattern; for file operations, the temp file's name.
	Path string
	// NewPath is the target of a Rename.
	NewPath string
	// Err is what the operation returned.
	Err error
	// Injected tells whether Err was injected by Fail.
	Injected bool
}

func (c Call) String() string {
	s := string(c.Kind) + " " + c.Path
	if c.NewPath != "" {
		s += " -> " + c.NewPath
	}
	return s
}

// FS wraps an fsutil.FS; see the package comment.
type FS struct {
	inner fsutil.FS

	mu    sync.Mutex
	calls []Call
	armed []*failure
}

type failure struct {
	op   Op
	left int // matching operations to let through before failing
	err  error
}

var _ fsutil.FS = (*FS)(nil)

// New wraps inner (fsutil.OS for the real file system).
func New(inner fsutil.FS) *FS { return &FS{inner: inner} }

// Fail makes the n-th operation (counting from 1) matching op after this
// call return err. Several failures may be armed at once; each fires once.
func (f *FS) Fail(op Op, n int, err error) {
	if n < 1 {
		panic(fmt.Sprintf("fsfault: Fail(%+v, %d): n counts from 1", op, n))
	}
	if err == nil {
		panic("fsfault: Fail with a nil error")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = append(f.armed, &failure{op: op, left: n - 1, err: err})
}

// Calls returns the operations seen since New or the last Reset, in order.
func (f *FS) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Count returns how many operations matching op were seen since New or the
// last Reset.
func (f *FS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if op.matches(c) {
			n++
		}
	}
	return n
}

// Injected returns the calls that failed with an injected error, in order.
func (f *FS) Injected() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Injected {
			out = append(out, c)
		}
	}
	return out
}

// Pending tells whether an armed failure has not fired yet.
func (f *FS) Pending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.armed) > 0
}

// Reset forgets the calls seen and disarms all failures.
func (f *FS) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.armed = nil, nil
}

// Point is one step of a recorded run to fail.
type Point struct {
	// Index is the step's position in the recorded calls.
	Index int
	// Call is the step as recorded.
	Call Call
	// Op and N select the step in a rerun: the N-th operation of its kind.
	Op Op
	N  int
}

func (p Point) String() string { return fmt.Sprintf("#%d %s", p.Index, p.Call) }

// Arm makes f fail this point of a rerun with err.
func (p Point) Arm(f *FS, err error) { f.Fail(p.Op, p.N, err) }

// Points returns one Point per call, selecting each by its kind and its
// rank among the calls of that kind. Paths are not used: temp file names
// differ from run to run.
func Points(calls []Call) []Point {
	seen := map[Kind]int{}
	points := make([]Point, 0, len(calls))
	for i, c := range calls {
		seen[c.Kind]++
		points = append(points, Point{Index: i, Call: c, Op: Op{Kind: c.Kind}, N: seen[c.Kind]})
	}
	return points
}

// inject tells whether to fail an operation: each armed failure matching
// it counts it, and the first whose count is reached fires and is disarmed.
func (f *FS) inject(c Call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var injected error
	kept := f.armed[:0]
	for _, a := range f.armed {
		switch {
		case !a.op.matches(c):
		case a.left > 0:
			a.left--
		case injected == nil:
			injected = a.err
			continue
		default:
			// Two failures chose the same operation; the second waits for
			// the next match.
		}
		kept = append(kept, a)
	}
	f.armed = kept
	return injected
}

// record appends a finished operation to the calls.
func (f *FS) record(c Call, err error, injected bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.Err, c.Injected = err, injected
	f.calls = append(f.calls, c)
}

// run performs op unless a failure is armed for c, and records it.
func (f *FS) run(c Call, op func() error) error {
	if err := f.inject(c); err != nil {
		f.record(c, err, true)
		return err
	}
	err := op()
	f.record(c, err, false)
	return err
}

// CreateTemp creates a temp file through the wrapped FS; its operations
// are recorded and can be failed too.
func (f *FS) CreateTemp(dir, pattern string) (fsutil.File, error) {
	var file fsutil.File
	err := f.run(Call{Kind: CreateTemp, Path: filepath.Join(dir, pattern)}, func() error {
		var err error
		file, err = f.inner.CreateTemp(dir, pattern)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &tempFile{fs: f, inner: file}, nil
}

// Rename renames through the wrapped FS.
func (f *FS) Rename(oldpath, newpath string) error {
	return f.run(Call{Kind: Rename, Path: oldpath, NewPath: newpath}, func() error {
		return f.inner.Rename(oldpath, newpath)
	})
}

// Remove removes through the wrapped FS.
func (f *FS) Remove(name string) error {
	return f.run(Call{Kind: Remove, Path: name}, func() error { return f.inner.Remove(name) })
}

// SyncDir syncs dir through the wrapped FS.
func (f *FS) SyncDir(dir string) error {
	return f.run(Call{Kind: SyncDir, Path: dir}, func() error { return f.inner.SyncDir(dir) })
}

// ReadDir lists name through the wrapped FS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	var entries []fs.DirEntry
	err := f.run(Call{Kind: ReadDir, Path: name}, func() error {
		var err error
		entries, err = f.inner.ReadDir(name)
		return err
	})
	return entries, err
}

// ReadFile reads name through the wrapped FS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	var data []byte
	err := f.run(Call{Kind: ReadFile, Path: name}, func() error {
		var err error
		data, err = f.inner.ReadFile(name)
		return err
	})
	return data, err
}

// Stat stats name through the wrapped FS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	err := f.run(Call{Kind: Stat, Path: name}, func() error {
		var err error
		fi, err = f.inner.Stat(name)
		return err
	})
	return fi, err
}

// Lstat lstats name through the wrapped FS.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	err := f.run(Call{Kind: Lstat, Path: name}, func() error {
		var err error
		fi, err = f.inner.Lstat(name)
		return err
	})
	return fi, err
}

// MkdirAll creates path through the wrapped FS.
func (f *FS) MkdirAll(path string, perm fs.FileMode) error {
	return f.run(Call{Kind: MkdirAll, Path: path}, func() error { return f.inner.MkdirAll(path, perm) })
}

// tempFile records and fails the operations on a file from CreateTemp.
type tempFile struct {
	fs    *FS
	inner fsutil.File
}

func (t *tempFile) Name() string { return t.inner.Name() }

// Write writes through the wrapped file; a failed Write writes the first
// half of p, as a write cut short by a full disk would.
func (t *tempFile) Write(p []byte) (int, error) {
	c := Call{Kind: Write, Path: t.inner.Name()}
	if err := t.fs.inject(c); err != nil {
		n, _ := t.inner.Write(p[:len(p)/2])
		t.fs.record(c, err, true)
		return n, err
	}
	n, err := t.inner.Write(p)
	t.fs.record(c, err, false)
	return n, err
}

func (t *tempFile) Chmod(mode fs.FileMode) error {
	return t.fs.run(Call{Kind: Chmod, Path: t.inner.Name()}, func() error { return t.inner.Chmod(mode) })
}

func (t *tempFile) Sync() error {
	return t.fs.run(Call{Kind: SyncFile, Path: t.inner.Name()}, t.inner.Sync)
}

// Close closes the wrapped file even when the Close is failed, so that an
// injected error does not leak a descriptor.
func (t *tempFile) Close() error {
	c := Call{Kind: Close, Path: t.inner.Name()}
	if err := t.fs.inject(c); err != nil {
		_ = t.inner.Close()
		t.fs.record(c, err, true)
		return err
	}
	err := t.inner.Close()
	t.fs.record(c, err, false)
	return err
}
