package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gpudra/gpudra/internal/fsutil"
)

func TestConcurrentPutsAreAllDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	const n = 100
	ctx := context.Background()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			uid := fmt.Sprintf("claim-%03d", i)
			if err := s.Put(ctx, gpuClaim(uid)); err != nil {
				errs <- err
				return
			}
			// Durable on return: the file on disk already has it.
			if loaded, err := decode(mustRead(t, path)); err != nil {
				errs <- err
			} else if _, ok := loaded.claims[uid]; !ok {
				errs <- fmt.Errorf("Put(%s) returned before the claim was on disk", uid)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	reopened, _ := openT(t, path)
	if got := len(reopened.List()); got != n {
		t.Errorf("after reopen: %d claims; want %d", got, n)
	}
	t.Logf("%d concurrent Puts took %d writes", n, s.writes)
}

// stalledWrites holds the first write until released, so that a test can
// line up writers behind it.
type stalledWrites struct {
	release chan struct{}
	// fail is returned by the first write, or by every write with failAll.
	fail    error
	failAll bool
	mu      sync.Mutex
	calls   int
}

func newStalledWrites() *stalledWrites { return &stalledWrites{release: make(chan struct{})} }

func (w *stalledWrites) write(path string, data []byte) error {
	w.mu.Lock()
	w.calls++
	first := w.calls == 1
	w.mu.Unlock()
	if first {
		<-w.release
		if w.fail != nil {
			return w.fail
		}
	}
	if w.failAll {
		return w.fail
	}
	return writeFileAtomic(fsutil.OS, path, data)
}

func (w *stalledWrites) callCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

func waitForWaiters(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := s.waiters
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters lined up; want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPutsArrivingDuringAWriteShareTheNextOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	w := newStalledWrites()
	s.writeFile = w.write
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() { errs <- s.Put(ctx, gpuClaim("first")) })
	for !isWriting(s) {
		time.Sleep(time.Millisecond)
	}
	for i := range 99 {
		wg.Go(func() { errs <- s.Put(ctx, gpuClaim(fmt.Sprintf("c%02d", i))) })
	}
	waitForWaiters(t, s, 99)
	close(w.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if calls := w.callCount(); calls != 2 {
		t.Errorf("100 Puts took %d writes; want 2 (the stalled one and one for the 99 behind it)", calls)
	}
	if reopened, _ := openT(t, path); len(reopened.List()) != 100 {
		t.Errorf("after reopen: %d claims; want 100", len(reopened.List()))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func isWriting(s *Store) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writing
}

func TestFailedWriteIsRetriedByTheNextCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	w := newStalledWrites()
	w.fail = errors.New("disk full")
	close(w.release)
	s.writeFile = w.write
	ctx := context.Background()

	if err := s.Put(ctx, gpuClaim("a")); !errors.Is(err, w.fail) {
		t.Fatalf("Put error = %v; want %v", err, w.fail)
	}
	// Deleting an unknown claim must not report success while disk is behind.
	if err := s.Delete(ctx, "unknown"); err != nil {
		t.Fatalf("Delete after a failed write: %v", err)
	}
	if calls := w.callCount(); calls != 2 {
		t.Errorf("Delete after a failed write made %d writes in all; want 2", calls)
	}
	// The failed Put was taken back; the rewrite stored the view without it.
	if reopened, _ := openT(t, path); len(reopened.List()) != 0 {
		t.Errorf("after retry and reopen: %+v; want no claims", reopened.List())
	}
}

// A Put whose context is cancelled while it waits for the group commit has
// already changed memory; returning early would leave a record the caller
// treats as failed in memory and on disk after the next batch. It waits.
func TestPutWaitsForItsWriteDespiteCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	w := newStalledWrites()
	s.writeFile = w.write

	done := make(chan error, 1)
	go func() { done <- s.Put(context.Background(), gpuClaim("first")) }()
	waitFor(t, "first write to start", func() bool { return isWriting(s) })
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { waited <- s.Put(ctx, gpuClaim("second")) }()
	waitForWaiters(t, s, 1)
	cancel()
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Errorf("Put cancelled while waiting = %v; want it to wait for its write and succeed", err)
	}
	if loaded, err := decode(mustRead(t, path)); err != nil || len(loaded.claims) != 2 {
		t.Errorf("on disk: %+v, %v; want first and second", loaded.claims, err)
	}
	if err := s.Put(ctx, gpuClaim("late")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v; want context.Canceled", err)
	}
	if _, ok := s.Get("late"); ok {
		t.Error("Put with a cancelled context changed the store")
	}
}

// The rollback of a failed prepare deletes the record; if its context is
// cancelled meanwhile, the delete must still reach disk before it returns.
func TestDeleteWaitsForItsWriteDespiteCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	ctx := context.Background()
	if err := s.Put(ctx, gpuClaim("rolled-back")); err != nil {
		t.Fatal(err)
	}
	w := newStalledWrites()
	s.writeFile = w.write

	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, gpuClaim("other")) }()
	waitFor(t, "first write to start", func() bool { return isWriting(s) })
	cancelled, cancel := context.WithCancel(ctx)
	deleted := make(chan error, 1)
	go func() { deleted <- s.Delete(cancelled, "rolled-back") }()
	waitForWaiters(t, s, 1)
	cancel()
	close(w.release)
	if err := <-deleted; err != nil {
		t.Errorf("Delete cancelled while waiting = %v; want it to wait and succeed", err)
	}
	// Delete returned: its change is on disk, without any later write.
	if loaded, err := decode(mustRead(t, path)); err != nil {
		t.Fatal(err)
	} else if _, ok := loaded.claims["rolled-back"]; ok {
		t.Error("Delete returned but the record is still on disk")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A failed Put takes its record back out of memory, so that neither Get nor
// a later batch reports or writes a claim its caller saw fail.
func TestFailedPutIsUndone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	ctx := context.Background()
	started := gpuClaim("a")
	started.State = PrepareStarted
	if err := s.Put(ctx, started); err != nil {
		t.Fatal(err)
	}
	write := s.writeFile
	diskFull := errors.New("disk full")
	s.writeFile = func(string, []byte) error { return diskFull }

	if err := s.Put(ctx, gpuClaim("a")); !errors.Is(err, diskFull) {
		t.Fatalf("Put error = %v; want %v", err, diskFull)
	}
	if err := s.Put(ctx, gpuClaim("new")); !errors.Is(err, diskFull) {
		t.Fatalf("Put error = %v; want %v", err, diskFull)
	}
	if got, ok := s.Get("a"); !ok || got.State != PrepareStarted {
		t.Errorf("after a failed Put, Get(a) = %+v, %v; want the PrepareStarted record", got, ok)
	}
	if _, ok := s.Get("new"); ok {
		t.Error("after a failed Put, Get(new) found the claim")
	}
	s.writeFile = write
	if err := s.Put(ctx, gpuClaim("b")); err != nil {
		t.Fatal(err)
	}
	reopened, _ := openT(t, path)
	if got, ok := reopened.Get("a"); !ok || got.State != PrepareStarted {
		t.Errorf("on disk, a = %+v, %v; want PrepareStarted", got, ok)
	}
	if _, ok := reopened.Get("new"); ok {
		t.Error("the claim of a failed Put was written by a later one")
	}
}

// Two Puts of one claim in consecutive batches that both fail leave the
// record as it was before the first, not as the first failed Put left it.
func TestFailedPutsOfOneClaimInTwoBatchesAreBothUndone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	ctx := context.Background()
	v0 := gpuClaim("a")
	v0.State = PrepareStarted
	if err := s.Put(ctx, v0); err != nil {
		t.Fatal(err)
	}
	w := newStalledWrites()
	w.fail, w.failAll = errors.New("disk full"), true
	s.writeFile = w.write

	first := make(chan error, 1)
	go func() { first <- s.Put(ctx, gpuClaim("a")) }()
	waitFor(t, "first write to start", func() bool { return isWriting(s) })
	second := make(chan error, 1)
	v2 := gpuClaim("a")
	v2.Name = "renamed"
	go func() { second <- s.Put(ctx, v2) }()
	waitForWaiters(t, s, 1)
	close(w.release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; !errors.Is(err, w.fail) {
			t.Errorf("Put error = %v; want %v", err, w.fail)
		}
	}
	if got, _ := s.Get("a"); !reflect.DeepEqual(got, v0.normalized()) {
		t.Errorf("after both Puts failed, Get(a) = %+v; want the record before them %+v", got, v0.normalized())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return data
}
