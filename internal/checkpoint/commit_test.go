package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
	fail    error
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
	return writeFileAtomic(path, data)
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
	if reopened, _ := openT(t, path); len(reopened.List()) != 1 {
		t.Errorf("after retry and reopen: %+v; want claim a", reopened.List())
	}
}

func TestPutWaitStopsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	s, _ := openT(t, path)
	w := newStalledWrites()
	s.writeFile = w.write

	done := make(chan error, 1)
	go func() { done <- s.Put(context.Background(), gpuClaim("first")) }()
	for !isWriting(s) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { waited <- s.Put(ctx, gpuClaim("second")) }()
	waitForWaiters(t, s, 1)
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put = %v; want context.Canceled", err)
	}
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The cancelled change stays in the view and goes out with the next write.
	if err := s.Put(context.Background(), gpuClaim("third")); err != nil {
		t.Fatal(err)
	}
	if reopened, _ := openT(t, path); len(reopened.List()) != 3 {
		t.Errorf("after reopen: %d claims; want 3", len(reopened.List()))
	}
	if err := s.Put(ctx, gpuClaim("late")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v; want context.Canceled", err)
	}
	if _, ok := s.Get("late"); ok {
		t.Error("Put with a cancelled context changed the store")
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
