// Package fsutil holds the durable-file primitives the checkpoint and the
// CDI writer share: replace a file atomically and durably, and make a
// directory change survive a power loss.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AtomicWrite configures WriteFileAtomic.
type AtomicWrite struct {
	// TempPrefix names the temp file next to the target; pick one that
	// readers of the directory ignore.
	TempPrefix string
	// Mode of the new file; 0 keeps CreateTemp's 0600.
	Mode os.FileMode
	// Check, if set, runs on the synced temp file before the rename; when it
	// fails the target is left as it was.
	Check func(tmpPath string) error
}

// WriteFileAtomic replaces path with data so that after a crash at any point
// path holds either the old or the new contents, and once it returns the new
// contents survive a power loss: temp file, fsync, rename, fsync directory.
func WriteFileAtomic(path string, data []byte, opts AtomicWrite) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, opts.TempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
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
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if opts.Check != nil {
		if err := opts.Check(tmp.Name()); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s over %s: %w", tmp.Name(), path, err)
	}
	return SyncDir(dir)
}

// SyncDir makes a rename or removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// RemoveTempFiles deletes the files in dir whose names start with prefix:
// what a writer that crashed between create and rename left behind. It
// returns the paths removed.
func RemoveTempFiles(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("remove stale temp file %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}
