package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/gpudra/gpudra/internal/fsutil"
)

// Store holds the prepared claims in memory and on disk. It is safe for
// concurrent use.
type Store struct {
	path   string
	bootID string
	fs     fsutil.FS
	// writeFile is writeFileAtomic on fs; tests replace it to observe or
	// stall writes.
	writeFile func(path string, data []byte) error

	mu     sync.Mutex
	claims map[string]Claim
	commitState
}

// Option configures Open.
type Option func(*options)

type options struct {
	fs fsutil.FS
}

// WithFS makes the store read and write its file through fsys instead of
// fsutil.OS; tests pass an fsfault.FS to fail single steps.
func WithFS(fsys fsutil.FS) Option {
	return func(o *options) { o.fs = fsys }
}

// Open loads the checkpoint at path, creating its directory if needed. A
// missing file is an empty store. bootID is the current boot's ID (see
// ReadBootID); it is recorded in claims put without one.
func Open(ctx context.Context, path, bootID string, opts ...Option) (*Store, OpenReport, error) {
	o := options{fs: fsutil.OS}
	for _, opt := range opts {
		opt(&o)
	}
	if bootID == "" {
		return nil, OpenReport{}, fmt.Errorf("open checkpoint %s: empty boot ID", path)
	}
	if err := o.fs.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, OpenReport{}, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	s := &Store{path: path, bootID: bootID, fs: o.fs}
	s.writeFile = func(path string, data []byte) error { return writeFileAtomic(s.fs, path, data) }
	s.changedAt = map[string]uint64{}
	claims, report, err := s.readFile(ctx)
	if err != nil {
		return nil, report, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	s.claims = claims
	return s, report, nil
}

// BootID is the boot ID the store was opened with.
func (s *Store) BootID() string { return s.bootID }

// Get returns the record of the claim with the given UID.
//
// Get and List show a change as soon as Put or Delete has made it, before
// it is on disk; once a Put has returned an error they no longer show its
// record (unless a later change to the claim has replaced it).
func (s *Store) Get(uid string) (Claim, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[uid]
	if !ok {
		return Claim{}, false
	}
	return c.normalized(), true
}

// List returns all records, sorted by UID.
func (s *Store) List() []Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	uids := make([]string, 0, len(s.claims))
	for uid := range s.claims {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	out := make([]Claim, 0, len(uids))
	for _, uid := range uids {
		out = append(out, s.claims[uid].normalized())
	}
	return out
}

// Put records c, replacing any record with the same UID, and returns once
// the change is durable. A claim without a BootID gets the store's.
//
// A ctx already done makes Put fail without changing anything. Otherwise
// Put waits for its write whatever ctx does: the change is in memory and
// must be either on disk or taken back before Put can say which (the wait
// is bounded by a couple of local file writes).
//
// When the write fails, Put returns the error and the store's view of the
// claim goes back to what it was before (the previous record, or none); the
// next successful write stores that view, so a failed Put is never written
// later. Changes to one claim should be serialized by the caller; when they
// are not, a failed Put does not take back a later change to its claim.
func (s *Store) Put(ctx context.Context, c Claim) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint claim %s: %w", c.UID, err)
	}
	c = c.normalized()
	if c.BootID == "" {
		c.BootID = s.bootID
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	s.mu.Lock()
	s.setLocked(c.UID, &c, s.changed(), true)
	if err := s.commitLocked(); err != nil {
		return fmt.Errorf("checkpoint claim %s: %w", c.UID, err)
	}
	return nil
}

// Delete removes the record of a claim and returns once that is durable.
// Deleting a claim that is not recorded succeeds (after writing any change
// a failed write left behind). Like Put, a ctx already done fails it without
// a change, and otherwise it waits for its write.
//
// When the write fails, the claim stays deleted in memory and the next
// successful write removes it from disk; the error says that disk may still
// have it. Delete is how unprepare and the rollback of a failed prepare
// forget a claim whose devices are being released: putting the record back
// would let Get report as prepared (even PrepareCompleted) a claim whose
// devices and CDI spec are gone. A crash before the next write leaves the
// record on disk, and the restarted plugin unprepares the claim again.
func (s *Store) Delete(ctx context.Context, uid string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete claim %s from checkpoint: %w", uid, err)
	}
	s.mu.Lock()
	if _, ok := s.claims[uid]; ok {
		s.setLocked(uid, nil, s.changed(), false)
	} else if s.synced() {
		// Neither memory nor disk has it: nothing to wait for.
		s.mu.Unlock()
		return nil
	}
	if err := s.commitLocked(); err != nil {
		return fmt.Errorf("delete claim %s from checkpoint: %w", uid, err)
	}
	return nil
}

// Replace makes claims the store's only records, in one durable write; it
// is how a checkpoint lost or found corrupt is rebuilt from the CDI specs
// and the API server. Claims without a BootID get the store's. Like Put, a
// ctx already done or an invalid claim fails it without a change, it waits
// for its write regardless of ctx, and a failed write takes the whole
// replacement back.
func (s *Store) Replace(ctx context.Context, claims []Claim) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("replace checkpoint %s: %w", s.path, err)
	}
	next := make(map[string]Claim, len(claims))
	for _, c := range claims {
		c = c.normalized()
		if c.BootID == "" {
			c.BootID = s.bootID
		}
		if err := c.validate(); err != nil {
			return fmt.Errorf("replace checkpoint %s: %w", s.path, err)
		}
		if _, dup := next[c.UID]; dup {
			return fmt.Errorf("replace checkpoint %s: claim %s listed twice", s.path, c.UID)
		}
		next[c.UID] = c
	}
	s.mu.Lock()
	seq := s.changed()
	for uid := range s.claims {
		if _, kept := next[uid]; !kept {
			s.setLocked(uid, nil, seq, true)
		}
	}
	for uid, c := range next {
		s.setLocked(uid, &c, seq, true)
	}
	if err := s.commitLocked(); err != nil {
		return fmt.Errorf("replace checkpoint %s: %w", s.path, err)
	}
	return nil
}
