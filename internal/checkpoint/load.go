package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/fsutil"
)

// OpenReport says what Open or Reload found besides the claims themselves.
// Each non-empty field is worth a log line; a corrupt file is worth an event.
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

// readFile loads the checkpoint file for Open and Reload: it removes stale
// temp files, reads and decodes the file, and moves a corrupt one aside. It
// changes nothing in s; on error the store's view must stay as it was.
func (s *Store) readFile(ctx context.Context) (map[string]Claim, OpenReport, error) {
	var report OpenReport
	stale, err := removeStaleTempFiles(s.fs, s.path)
	report.StaleTempFiles = stale
	if err != nil {
		return nil, report, err
	}

	data, err := s.fs.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return map[string]Claim{}, report, nil
	case err != nil:
		// Unreadable is not corrupt: moving a file aside over EACCES or EIO
		// would throw away a good checkpoint.
		return nil, report, err
	}

	loaded, decodeErr := decode(data)
	if decodeErr != nil {
		movedTo, err := moveAside(s.fs, s.path, time.Now())
		if err != nil {
			return nil, report, fmt.Errorf("%w (moving aside corrupt file: %w)", decodeErr, err)
		}
		// Reported, not logged: the caller logs it and raises an event.
		report.CorruptReason = decodeErr
		report.CorruptMovedTo = movedTo
		return map[string]Claim{}, report, nil
	}

	report.Version = loaded.version
	for uid, c := range loaded.claims {
		if c.BootID != s.bootID {
			report.PreviousBootClaims = append(report.PreviousBootClaims, uid)
		}
	}
	slices.Sort(report.PreviousBootClaims)
	klog.FromContext(ctx).V(4).Info("Loaded checkpoint", "path", s.path, "version", loaded.version, "claims", len(loaded.claims))
	return loaded.claims, report, nil
}

// moveAside renames a corrupt checkpoint to <path>.corrupt-<unix seconds>,
// adding a counter if that name is taken, so no earlier evidence is lost.
func moveAside(fsys fsutil.FS, path string, now time.Time) (string, error) {
	base := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	target := base
	for i := 1; ; i++ {
		if _, err := fsys.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = fmt.Sprintf("%s-%d", base, i)
	}
	if err := fsys.Rename(path, target); err != nil {
		return "", err
	}
	return target, fsutil.SyncDir(fsys, filepath.Dir(path))
}

// Reload replaces the store's view with the checkpoint file as it is now,
// for when another plugin process on the node may have written it. The
// caller must make sure no other process writes the file meanwhile (the
// node-wide lease), which also makes removing stale temp files safe.
//
// Reload waits for a write in flight to finish; changes still waiting for a
// writer fail with an error rather than be written over the other process's
// file. Changes whose write failed earlier are dropped. A corrupt file is
// moved aside and reported as by Open; on any other error the view is left
// as it was.
func (s *Store) Reload(ctx context.Context) (OpenReport, error) {
	if err := ctx.Err(); err != nil {
		return OpenReport{}, fmt.Errorf("reload checkpoint %s: %w", s.path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing {
		wake := s.writeDoneLocked()
		s.waiters++
		s.mu.Unlock()
		select {
		case <-wake:
			s.mu.Lock()
			s.waiters--
		case <-ctx.Done():
			s.mu.Lock()
			s.waiters--
			return OpenReport{}, fmt.Errorf("reload checkpoint %s: waiting for a write: %w", s.path, ctx.Err())
		}
	}

	claims, report, err := s.readFile(ctx)
	if err != nil {
		return report, fmt.Errorf("reload checkpoint %s: %w", s.path, err)
	}
	s.claims = claims
	clear(s.changedAt)
	if b := s.pending; b != nil {
		// Its waiters are between a wake-up and taking the lock; they find
		// the batch done when they get it.
		s.pending = nil
		b.done, b.err = true, errReloaded
	}
	s.durableSeq = s.seq
	return report, nil
}
