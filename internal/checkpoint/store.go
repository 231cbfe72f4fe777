package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// Store holds the prepared claims in memory and on disk. It is safe for
// concurrent use.
type Store struct {
	path   string
	bootID string
	// writeFile is writeFileAtomic; tests replace it to observe or stall writes.
	writeFile func(path string, data []byte) error

	mu     sync.Mutex
	claims map[string]Claim
	commitState
}

// OpenReport says what Open found besides the claims themselves. Each
// non-empty field is worth a log line; a corrupt file is worth an event.
type OpenReport struct {
	// Version is the format version of the loaded file; 0 when there was none.
	Version int
	// CorruptReason is why the checkpoint could not be loaded; nil when it
	// loaded or did not exist. The store then starts empty.
	CorruptReason error
	// CorruptMovedTo is where the unreadable file was moved for inspection.
	CorruptMovedTo string
	// StaleTempFiles were left by a write interrupted before its rename and
	// have been removed; the checkpoint itself was intact.
	StaleTempFiles []string
	// PreviousBootClaims are the UIDs, sorted, of claims prepared before the
	// node last booted. Their MIG devices and sharing setup are gone and must
	// be prepared again.
	PreviousBootClaims []string
}

// Open loads the checkpoint at path, creating its directory if needed. A
// missing file is an empty store. bootID is the current boot's ID (see
// ReadBootID); it is recorded in claims put without one.
func Open(ctx context.Context, path, bootID string) (*Store, OpenReport, error) {
	var report OpenReport
	if bootID == "" {
		return nil, report, fmt.Errorf("open checkpoint %s: empty boot ID", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, report, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	stale, err := removeStaleTempFiles(path)
	report.StaleTempFiles = stale
	if err != nil {
		return nil, report, fmt.Errorf("open checkpoint %s: %w", path, err)
	}

	s := &Store{path: path, bootID: bootID, writeFile: writeFileAtomic, claims: map[string]Claim{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, report, nil
	case err != nil:
		// Unreadable is not corrupt: moving a file aside over EACCES or EIO
		// would throw away a good checkpoint.
		return nil, report, fmt.Errorf("open checkpoint %s: %w", path, err)
	}

	loaded, decodeErr := decode(data)
	if decodeErr != nil {
		movedTo, err := moveAside(path, time.Now())
		if err != nil {
			return nil, report, fmt.Errorf("open checkpoint %s: %w (moving aside corrupt file: %w)", path, decodeErr, err)
		}
		// Reported, not logged: the caller logs it and raises an event.
		report.CorruptReason = decodeErr
		report.CorruptMovedTo = movedTo
		return s, report, nil
	}

	s.claims = loaded.claims
	report.Version = loaded.version
	for uid, c := range s.claims {
		if c.BootID != bootID {
			report.PreviousBootClaims = append(report.PreviousBootClaims, uid)
		}
	}
	slices.Sort(report.PreviousBootClaims)
	klog.FromContext(ctx).V(4).Info("Loaded checkpoint", "path", path, "version", loaded.version, "claims", len(s.claims))
	return s, report, nil
}

// moveAside renames a corrupt checkpoint to <path>.corrupt-<unix seconds>,
// adding a counter if that name is taken, so no earlier evidence is lost.
func moveAside(path string, now time.Time) (string, error) {
	base := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	target := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, target); err != nil {
		return "", err
	}
	return target, syncDir(filepath.Dir(path))
}

// BootID is the boot ID the store was opened with.
func (s *Store) BootID() string { return s.bootID }

// Get returns the record of the claim with the given UID.
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
// On error the change stays in the store's view and is written by the next
// successful Put or Delete; it is not known to be on disk, so the caller
// should retry or undo it.
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
	s.claims[c.UID] = c
	s.changed()
	if err := s.commitLocked(ctx); err != nil {
		return fmt.Errorf("checkpoint claim %s: %w", c.UID, err)
	}
	return nil
}

// Delete removes the record of a claim and returns once that is durable.
// Deleting a claim that is not recorded succeeds.
func (s *Store) Delete(ctx context.Context, uid string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete claim %s from checkpoint: %w", uid, err)
	}
	s.mu.Lock()
	if _, ok := s.claims[uid]; ok {
		delete(s.claims, uid)
		s.changed()
	} else if s.synced() {
		// Neither memory nor disk has it: nothing to wait for.
		s.mu.Unlock()
		return nil
	}
	if err := s.commitLocked(ctx); err != nil {
		return fmt.Errorf("delete claim %s from checkpoint: %w", uid, err)
	}
	return nil
}
