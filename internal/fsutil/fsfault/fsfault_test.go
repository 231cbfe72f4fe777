package fsfault

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gpudra/gpudra/internal/fsutil"
)

func TestFailTheNthMatchingOperation(t *testing.T) {
	dir := t.TempDir()
	f := New(fsutil.OS)
	for _, name := range []string{"a", "b", "checkpoint-1", "checkpoint-2"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.Fail(Op{Kind: Rename, PathContains: "checkpoint"}, 2, ErrInjected)
	steps := []struct {
		old, new string
		wantErr  bool
	}{
		{"a", "a2", false},                      // not matching the path
		{"checkpoint-1", "c1", false},           // first match
		{"b", "checkpoint-b", true},             // second match, by the new path
		{"checkpoint-2", "checkpoint-3", false}, // fired once only
	}
	for _, s := range steps {
		err := f.Rename(filepath.Join(dir, s.old), filepath.Join(dir, s.new))
		if s.wantErr != errors.Is(err, ErrInjected) || (!s.wantErr && err != nil) {
			t.Errorf("Rename %s -> %s = %v; want injected error %v", s.old, s.new, err, s.wantErr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); err != nil {
		t.Errorf("failed Rename reached the file system: %v", err)
	}
	if got := f.Count(Op{Kind: Rename}); got != 4 {
		t.Errorf("Count(Rename) = %d; want 4", got)
	}
	if got := f.Count(Op{PathContains: "checkpoint"}); got != 3 {
		t.Errorf("Count(path contains checkpoint) = %d; want 3", got)
	}
	if inj := f.Injected(); len(inj) != 1 || inj[0].Path != filepath.Join(dir, "b") {
		t.Errorf("Injected = %v; want the Rename of b", inj)
	}
	if f.Pending() {
		t.Error("Pending after the failure fired")
	}
}

func TestTwoFailuresCountIndependently(t *testing.T) {
	dir := t.TempDir()
	f := New(fsutil.OS)
	first, second := errors.New("first"), errors.New("second")
	f.Fail(Op{Kind: ReadDir}, 1, first)
	f.Fail(Op{Kind: ReadDir}, 1, second)
	var got []error
	for range 3 {
		_, err := f.ReadDir(dir)
		got = append(got, err)
	}
	if want := []error{first, second, nil}; !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %v; want %v", got, want)
	}
}

func TestTempFileOperationsAreRecordedAndFailed(t *testing.T) {
	dir := t.TempDir()
	f := New(fsutil.OS)
	f.Fail(Op{Kind: Write}, 1, ErrInjected)
	f.Fail(Op{Kind: Close}, 1, ErrInjected)
	tmp, err := f.CreateTemp(dir, "x.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	n, err := tmp.Write([]byte("abcdef"))
	if !errors.Is(err, ErrInjected) || n != 3 {
		t.Errorf("failed Write = %d, %v; want half the data written and the injected error", n, err)
	}
	for _, err := range []error{tmp.Chmod(0o644), tmp.Sync()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tmp.Close(); !errors.Is(err, ErrInjected) {
		t.Errorf("Close = %v; want the injected error", err)
	}
	// The failed Close still closed the file.
	if err := tmp.Close(); err == nil || errors.Is(err, ErrInjected) {
		t.Errorf("second Close = %v; want the OS's already-closed error", err)
	}
	if data, _ := os.ReadFile(tmp.Name()); string(data) != "abc" {
		t.Errorf("file holds %q; want abc", data)
	}
	var kinds []Kind
	for _, c := range f.Calls() {
		kinds = append(kinds, c.Kind)
	}
	if want := []Kind{CreateTemp, Write, Chmod, SyncFile, Close, Close}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("calls = %v; want %v", kinds, want)
	}
	f.Reset()
	if len(f.Calls()) != 0 || f.Pending() {
		t.Error("Reset kept calls or failures")
	}
}

func TestPointsSelectEachCallByKindAndRank(t *testing.T) {
	calls := []Call{{Kind: CreateTemp}, {Kind: Write}, {Kind: Write}, {Kind: Rename}, {Kind: Write}}
	var got []Point
	for _, p := range Points(calls) {
		got = append(got, Point{Index: p.Index, Op: p.Op, N: p.N})
	}
	want := []Point{
		{Index: 0, Op: Op{Kind: CreateTemp}, N: 1},
		{Index: 1, Op: Op{Kind: Write}, N: 1},
		{Index: 2, Op: Op{Kind: Write}, N: 2},
		{Index: 3, Op: Op{Kind: Rename}, N: 1},
		{Index: 4, Op: Op{Kind: Write}, N: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Points = %+v; want %+v", got, want)
	}
}
