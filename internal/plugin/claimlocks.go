package plugin

import (
	"context"
	"sync"
)

// claimLocks serializes work on one claim while letting different claims
// proceed in parallel: the kubelet may call prepare for a claim shared by two
// pods twice at once, and the cleanup loop may look at a claim a prepare is
// working on. No lock is held across claims.
type claimLocks struct {
	mu    sync.Mutex
	locks map[string]*claimLock
}

type claimLock struct {
	ch      chan struct{} // holds one token while locked
	waiters int
}

func newClaimLocks() *claimLocks {
	return &claimLocks{locks: make(map[string]*claimLock)}
}

// lock takes the claim's lock, or gives up when ctx ends.
func (l *claimLocks) lock(ctx context.Context, uid string) (unlock func(), err error) {
	l.mu.Lock()
	cl, ok := l.locks[uid]
	if !ok {
		cl = &claimLock{ch: make(chan struct{}, 1)}
		l.locks[uid] = cl
	}
	cl.waiters++
	l.mu.Unlock()

	select {
	case cl.ch <- struct{}{}:
	case <-ctx.Done():
		l.release(uid, cl, false)
		return nil, ctx.Err()
	}
	return func() { l.release(uid, cl, true) }, nil
}

// tryLock takes the claim's lock only if it is free.
func (l *claimLocks) tryLock(uid string) (unlock func(), ok bool) {
	l.mu.Lock()
	cl, exists := l.locks[uid]
	if !exists {
		cl = &claimLock{ch: make(chan struct{}, 1)}
		l.locks[uid] = cl
	}
	select {
	case cl.ch <- struct{}{}:
		cl.waiters++
		l.mu.Unlock()
		return func() { l.release(uid, cl, true) }, true
	default:
		l.mu.Unlock()
		return nil, false
	}
}

func (l *claimLocks) release(uid string, cl *claimLock, held bool) {
	if held {
		<-cl.ch
	}
	l.mu.Lock()
	cl.waiters--
	if cl.waiters == 0 {
		delete(l.locks, uid)
	}
	l.mu.Unlock()
}
