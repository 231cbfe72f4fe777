package checkpoint

import "errors"

// commitState implements group commit. Every change bumps seq and joins the
// pending batch. When no write is in flight, one waiter of the pending batch
// becomes the writer: it encodes the whole store (every change so far) and
// writes it once for all of the batch's waiters. Changes that arrive during
// that write join the next batch, so a burst of N Puts costs about two
// fsyncs instead of N. All fields are guarded by Store.mu.
//
// A batch whose write fails is undone in memory by the writer, under the
// same lock that marks it failed: no Get can see a record whose Put is about
// to report an error. The store stays dirty (seq > durableSeq), so the next
// commit rewrites the file whatever the failed write left on disk.
type commitState struct {
	// seq counts changes; durableSeq is the last change known to be on disk.
	seq, durableSeq uint64
	// changedAt holds, for each claim changed since the last successful
	// write, the seq of its latest change, so that undoing a failed batch
	// leaves alone a claim changed again after that batch was cut.
	changedAt map[string]uint64
	// pending collects changes not yet handed to a writer; nil when none.
	pending *batch
	writing bool
	// writeDone is closed and replaced when a write finishes, waking waiters
	// to check their batch or to take over as writer.
	writeDone chan struct{}
	// waiters counts callers blocked waiting for a write (in commitLocked
	// or Reload), for tests.
	waiters int
	// writes counts file writes, for tests.
	writes int
}

// batch is one write shared by the changes it covers.
type batch struct {
	done bool
	err  error
	// undo restores memory, in reverse order, when the write fails.
	undo []undoRecord
}

// undoRecord takes back one change to one claim. Deletes have none: a
// failed Delete leaves the claim deleted in memory (see Store.Delete).
type undoRecord struct {
	uid string
	// prev is the record before the change; had tells whether there was one.
	prev Claim
	had  bool
	// seq is the change's; prevSeq is changedAt[uid] before it (0: none).
	seq, prevSeq uint64
}

// errReloaded fails changes still waiting for a writer when Reload replaces
// the store's view with the file.
var errReloaded = errors.New("checkpoint was reloaded from disk before the change was written")

// changed records a change to the in-memory claims and returns its seq.
func (cs *commitState) changed() uint64 {
	cs.seq++
	if cs.pending == nil {
		cs.pending = &batch{}
	}
	return cs.seq
}

// setLocked changes the record of uid to c, or deletes it when c is nil,
// as part of change seq. undoable changes are taken back if their write
// fails.
func (s *Store) setLocked(uid string, c *Claim, seq uint64, undoable bool) {
	prev, had := s.claims[uid]
	if undoable {
		s.pending.undo = append(s.pending.undo, undoRecord{uid: uid, prev: prev, had: had, seq: seq, prevSeq: s.changedAt[uid]})
	}
	s.changedAt[uid] = seq
	if c == nil {
		delete(s.claims, uid)
	} else {
		s.claims[uid] = *c
	}
}

// undoLocked takes back the changes of a failed batch, newest first, except
// where a later change to the same claim has replaced them.
func (s *Store) undoLocked(b *batch) {
	for i := len(b.undo) - 1; i >= 0; i-- {
		u := b.undo[i]
		if s.changedAt[u.uid] != u.seq {
			s.inheritUndoLocked(u)
			continue
		}
		if u.had {
			s.claims[u.uid] = u.prev
		} else {
			delete(s.claims, u.uid)
		}
		if u.prevSeq == 0 {
			delete(s.changedAt, u.uid)
		} else {
			s.changedAt[u.uid] = u.prevSeq
		}
	}
}

// inheritUndoLocked hands the undo of a failed change that a later, still
// pending change to the same claim has replaced to that later change: if
// it fails too, the claim goes back to what it was before both, not to the
// failed one.
func (s *Store) inheritUndoLocked(u undoRecord) {
	if s.pending == nil {
		return
	}
	for i := range s.pending.undo {
		later := &s.pending.undo[i]
		if later.uid == u.uid && later.prevSeq == u.seq {
			later.prev, later.had, later.prevSeq = u.prev, u.had, u.prevSeq
		}
	}
}

// synced tells whether disk holds every change made so far.
func (cs *commitState) synced() bool {
	return cs.seq == cs.durableSeq && !cs.writing
}

// commitLocked waits until the pending batch (which includes the caller's
// change) is written, writing it itself when no one else is. It is called
// with s.mu held and returns with it released.
//
// It takes no context on purpose: the caller's change is already in memory
// and will be written by this batch or, if the batch fails, undone by it;
// returning before either would leave the caller believing a change failed
// that a later batch writes anyway. The wait is bounded by one or two local
// file writes.
func (s *Store) commitLocked() error {
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
		wake := s.writeDoneLocked()
		s.waiters++
		s.mu.Unlock()
		<-wake
		s.mu.Lock()
		s.waiters--
	}
}

// writeDoneLocked returns the channel closed when the current write ends.
func (s *Store) writeDoneLocked() chan struct{} {
	if s.writeDone == nil {
		s.writeDone = make(chan struct{})
	}
	return s.writeDone
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
		for uid, at := range s.changedAt {
			if at <= seq {
				delete(s.changedAt, uid)
			}
		}
	} else {
		s.undoLocked(b)
	}
	b.done, b.err = true, err
	if s.writeDone != nil {
		close(s.writeDone)
		s.writeDone = nil
	}
	s.mu.Unlock()
	return err
}
