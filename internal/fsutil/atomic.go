// Package fsutil holds the durable-file primitives the checkpoint and the
// CDI writer share: replace a file atomically and durably, and make a
// directory change survive a power loss.
//
// Contract:
//   - Every function takes the FS to act on; OS is the real one, and
//     package fsfault wraps any FS to count operations and fail one.
//   - WriteFileAtomic leaves path holding the old or the new contents after
//     a crash or error at any step, never a mix; on error it removes its temp
//     file (best effort: a crash leaves it for RemoveTempFiles).
//   - Errors name the path and the step that failed.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/gpudra/gpudra/internal/failpoint"
)

// AtomicWrite configures WriteFileAtomic.
type AtomicWrite struct {
	// TempPrefix names the temp file next to the target; pick one that
	// readers of the directory ignore.
	TempPrefix string
	// Mode of the new file; 0 keeps CreateTemp's 0600.
	Mode fs.FileMode
	// Check, if set, runs on the synced and closed temp file before the
	// rename; when it fails the target is left as it was.
	Check func(tmpPath string) error
	// AfterTempSync and AfterRename name the failpoints (see package
	// failpoint) hit once the temp file is synced and checked, and once it
	// has been renamed over path but before the directory is synced. Empty
	// names are not hit.
	AfterTempSync, AfterRename string
}

// WriteFileAtomic replaces path with data so that after a crash at any point
// path holds either the old or the new contents, and once it returns the new
// contents survive a power loss: temp file, fsync, rename, fsync directory.
//
// An error from the final directory fsync comes after the rename: path may
// then hold the new contents, which are not known to be durable.
func WriteFileAtomic(fsys FS, path string, data []byte, opts AtomicWrite) (err error) {
	dir := filepath.Dir(path)
	tmp, err := fsys.CreateTemp(dir, opts.TempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	closed, renamed := false, false
	defer func() {
		if err != nil && !renamed {
			if !closed {
				_ = tmp.Close()
			}
			_ = fsys.Remove(tmp.Name())
		}
	}()
	if opts.Mode != 0 {
		if err := tmp.Chmod(opts.Mode); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if opts.Check != nil {
		if err := opts.Check(tmp.Name()); err != nil {
			return err
		}
	}
	hit(opts.AfterTempSync)
	if err := fsys.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s over %s: %w", tmp.Name(), path, err)
	}
	renamed = true
	hit(opts.AfterRename)
	if err := SyncDir(fsys, dir); err != nil {
		return fmt.Errorf("%s replaced but not known to be durable: %w", path, err)
	}
	return nil
}

func hit(failpointName string) {
	if failpointName != "" {
		failpoint.Hit(failpointName)
	}
}

// SyncDir makes a rename or removal in dir durable.
func SyncDir(fsys FS, dir string) error {
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// RemoveTempFiles deletes the files in dir whose names start with prefix:
// what a writer that crashed between create and rename left behind. It
// returns the paths removed. A missing dir has none.
func RemoveTempFiles(fsys FS, dir, prefix string) ([]string, error) {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove stale temp file %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}
