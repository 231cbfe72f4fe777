package nodelease

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

func newLease(t *testing.T, dir, id string) *Lease {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	l, err := New(Options{Dir: dir, ID: id, PollInterval: 5 * time.Millisecond, Logger: ktesting.NewLogger(t, ktesting.NewConfig())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		// Bounded: a failed test may leave work inside.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

func enter(t *testing.T, l *Lease) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exit, err := l.Enter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return exit
}

// events records what happened in order, across both leases.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

func TestHandoverWaitsForWorkInsideAndReloads(t *testing.T) {
	dir := t.TempDir()
	old, next := newLease(t, dir, "old"), newLease(t, dir, "new")
	var ev events
	next.SetOnAcquire(func(context.Context) error { ev.add("new reloads"); return nil })

	exitOld := enter(t, old)
	ev.add("old enters")
	got := make(chan func())
	go func() {
		exit := enter(t, next)
		ev.add("new enters")
		got <- exit
	}()
	// The new instance waits while the old one's work is inside. Its
	// request must be visible before the old one finishes, so wait for it.
	waitFor(t, "a request file", func() bool {
		_, err := os.Stat(filepath.Join(dir, requestFilePrefix+"new"))
		return err == nil
	})
	// Once the old instance has seen the request it drains: it must keep
	// the lock while its work is inside.
	waitFor(t, "the old instance to see the request", func() bool {
		old.mu.Lock()
		defer old.mu.Unlock()
		return old.yielding || old.lockFile == nil
	})
	if !old.Held() {
		t.Fatal("old instance released the lease with work inside")
	}
	select {
	case <-got:
		t.Fatal("new instance entered while the old one's work was inside")
	default:
	}
	ev.add("old exits")
	exitOld()
	exitNew := <-got
	want := []string{"old enters", "old exits", "new reloads", "new enters"}
	if g := ev.get(); !equal(g, want) {
		t.Fatalf("order = %v, want %v", g, want)
	}
	if old.Held() || !next.Held() {
		t.Fatalf("held: old %v, new %v; want only new", old.Held(), next.Held())
	}
	// The old instance can take it back for a late call, and the new one
	// hands over once its own work is done.
	back := make(chan func())
	go func() { back <- enter(t, old) }()
	exitNew()
	exitOld = <-back
	exitOld()
	if _, handovers := next.Stats(); handovers != 1 {
		t.Errorf("new instance handed over %d times, want 1", handovers)
	}
	if _, err := os.Stat(filepath.Join(dir, requestFilePrefix+"old")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("request file left after the lease was granted: %v", err)
	}
}

func TestDeadRequesterIsIgnored(t *testing.T) {
	dir := t.TempDir()
	l := newLease(t, dir, "holder")
	enter(t, l)() // take it
	// A request file nobody holds a lock on: its process died.
	stale := filepath.Join(dir, requestFilePrefix+"dead")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stale request removed", func() bool {
		_, err := os.Stat(stale)
		return errors.Is(err, os.ErrNotExist)
	})
	if !l.Held() {
		t.Fatal("holder gave the lease up for a dead requester")
	}
	if _, handovers := l.Stats(); handovers != 0 {
		t.Fatalf("handovers = %d, want 0", handovers)
	}
}

func TestTryEnterNeverAsks(t *testing.T) {
	dir := t.TempDir()
	a, b := newLease(t, dir, "a"), newLease(t, dir, "b")
	enter(t, a)()
	if exit, ok := b.TryEnter(); ok {
		exit()
		t.Fatal("TryEnter admitted work without the lease")
	}
	if exit, ok := a.TryEnter(); !ok {
		t.Fatal("TryEnter refused the holder")
	} else {
		exit()
	}
	if !a.Held() {
		t.Fatal("TryEnter by b took the lease from a")
	}
}

func TestFailedReloadFailsEveryWaiterAndReleases(t *testing.T) {
	dir := t.TempDir()
	a := newLease(t, dir, "a")
	a.SetOnAcquire(func(context.Context) error { return errors.New("checkpoint unreadable") })
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			exit, err := a.Enter(ctx)
			if err == nil {
				exit()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || err.Error() != "after taking the node lease: checkpoint unreadable" {
			t.Errorf("Enter %d: %v, want the hook's error", i, err)
		}
	}
	if a.Held() {
		t.Fatal("lease held after the hook failed")
	}
	// Another process can take it.
	b := newLease(t, dir, "b")
	enter(t, b)()
}

func TestCloseDrainsAndRefuses(t *testing.T) {
	dir := t.TempDir()
	a := newLease(t, dir, "a")
	exit := enter(t, a)
	closed := make(chan error)
	go func() { closed <- a.Close(context.Background()) }()
	waitFor(t, "close to stop admitting", func() bool {
		exit, ok := a.TryEnter()
		if ok {
			exit()
		}
		return !ok
	})
	if _, err := a.Enter(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enter during Close: %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with work inside", err)
	default:
	}
	exit()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	b := newLease(t, dir, "b")
	enter(t, b)()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
