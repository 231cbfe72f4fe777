package checkpoint

import (
	"context"
)

// commitState implements group commit. Every change bumps seq and joins the
// pending batch. When no write is in flight, one waiter of the pending batch
// becomes the writer: it encodes the whole store (every change so far) and
// writes it once for all of the batch's waiters. Changes that arrive during
// that write join the next batch, so a burst of N Puts costs about two
// fsyncs instead of N. All fields are guarded by Store.mu.
type commitState struct {
	// seq counts changes; durableSeq is the last change known to be on disk.
	seq, durableSeq uint64
	// pending collects changes not yet handed to a writer; nil when none.
	pending *batch
	writing bool
	// writeDone is closed and replaced when a write finishes, waking waiters
	// to check their batch or to take over as writer.
	writeDone chan struct{}
	// waiters counts callers blocked in commitLocked, for tests.
	waiters int
	// writes counts file writes, for tests.
	writes int
}

// batch is one write shared by the changes it covers.
type batch struct {
	done bool
	err  error
}

// changed records a change to the in-memory claims.
func (cs *commitState) changed() {
	cs.seq++
	if cs.pending == nil {
		cs.pending = &batch{}
	}
}

// synced tells whether disk holds every change made so far.
func (cs *commitState) synced() bool {
	return cs.seq == cs.durableSeq && !cs.writing
}

// commitLocked waits until the pending batch (which includes the caller's
// change) is written, writing it itself when no one else is. It is called
// with s.mu held and returns with it released. A cancelled ctx stops the
// wait, not a write in progress.
func (s *Store) commitLocked(ctx context.Context) error {
	b := s.pending
	if b == nil {
		// Only after a failed write can memory be ahead of disk without a
		// pending batch; a fresh batch rewrites everything.
		if s.synced() {
			s.mu.Unlock()
			return nil
		}
		s.changed()
		b = s.pending
	}
	for {
		if b.done {
			s.mu.Unlock()
			return b.err
		}
		if !s.writing && s.pending == b {
			return s.writeBatchLocked(b)
		}
		if s.writeDone == nil {
			s.writeDone = make(chan struct{})
		}
		wake := s.writeDone
		s.waiters++
		s.mu.Unlock()
		select {
		case <-wake:
			s.mu.Lock()
			s.waiters--
		case <-ctx.Done():
			s.mu.Lock()
			s.waiters--
			s.mu.Unlock()
			return ctx.Err()
		}
	}
}

// writeBatchLocked writes the store's current contents for batch b. Called
// with s.mu held; returns with it released.
func (s *Store) writeBatchLocked(b *batch) error {
	s.writing = true
	s.pending = nil
	seq := s.seq
	data, err := encode(s.bootID, s.claims)
	s.mu.Unlock()

	if err == nil {
		err = s.writeFile(s.path, data)
	}

	s.mu.Lock()
	s.writing = false
	s.writes++
	if err == nil {
		s.durableSeq = seq
	}
	b.done, b.err = true, err
	if s.writeDone != nil {
		close(s.writeDone)
		s.writeDone = nil
	}
	s.mu.Unlock()
	return err
}
