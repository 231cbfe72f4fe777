package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file owns the state directory's file mechanics: writers serialise on
// an flock and replace a file (faults.json, hardware.json) atomically; a
// Backend re-reads one only when it changed.

// stateFile names one file of the state directory and its companions.
type stateFile struct {
	name       string // e.g. faults.json
	lockName   string // flock writers hold
	tempPrefix string // temp files a writer renames over name
}

var (
	faultsState   = stateFile{name: faultsFileName, lockName: faultsLockName, tempPrefix: faultsTempPrefix}
	hardwareState = stateFile{name: hardwareFileName, lockName: hardwareLockName, tempPrefix: hardwareTempPrefix}
)

// withLock runs fn holding an exclusive flock on <stateDir>/<lockName>, so
// concurrent writers (two gpudra sim commands, a test and an operator, two
// backends over one node) never lose each other's read-modify-write.
// Readers need no lock: the file is replaced by rename, so they see the old
// or the new file, never a mix. The flock belongs to the open file, so two
// backends in one process exclude each other too.
func (sf stateFile) withLock(stateDir string, fn func() error) error {
	path := filepath.Join(stateDir, sf.lockName)
	lock, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open lock: %w", err)
	}
	defer func() { _ = lock.Close() }() // closing releases the flock
	for {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	return fn()
}

// writeFaults replaces faults.json; the caller holds its lock.
func writeFaults(stateDir string, faults []Fault) error {
	if faults == nil {
		faults = []Fault{}
	}
	data, err := json.MarshalIndent(faultsFile{Version: faultsFileVersion, Faults: faults}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode faults: %w", err)
	}
	return faultsState.write(stateDir, append(data, '\n'))
}

// write replaces the file durably: temp file, fsync, rename, fsync directory
// (what internal/fsutil.WriteFileAtomic does, kept here because that
// package's signature is in flux). The caller holds the lock, so temp files
// left by a writer that crashed are removed first.
//
// The new file's mtime is set later than the old one's, even when the
// filesystem's clock ticks coarsely: with a new inode, that guarantees the
// (inode, size, mtime) a Backend compares changes on every write.
func (sf stateFile) write(stateDir string, data []byte) (err error) {
	if err := sf.removeStaleTemps(stateDir); err != nil {
		return err
	}

	path := filepath.Join(stateDir, sf.name)
	mtime := time.Now()
	if old, err := os.Stat(path); err == nil && !mtime.After(old.ModTime()) {
		mtime = old.ModTime().Add(time.Microsecond)
	}

	tmp, err := os.CreateTemp(stateDir, sf.tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Chtimes(tmp.Name(), mtime, mtime); err != nil {
		return fmt.Errorf("set mtime of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s over %s: %w", tmp.Name(), path, err)
	}
	dir, err := os.Open(stateDir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", stateDir, err)
	}
	defer func() { _ = dir.Close() }()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", stateDir, err)
	}
	return nil
}

func (sf stateFile) removeStaleTemps(stateDir string) error {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return fmt.Errorf("list %s: %w", stateDir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), sf.tempPrefix) {
			if err := os.Remove(filepath.Join(stateDir, e.Name())); err != nil {
				return fmt.Errorf("remove stale temp file: %w", err)
			}
		}
	}
	return nil
}

// fileVersion identifies one version of a state file without reading it.
type fileVersion struct {
	dev, ino   uint64
	size       int64
	mtimeNanos int64
}

func versionOf(info os.FileInfo) fileVersion {
	v := fileVersion{size: info.Size(), mtimeNanos: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = st.Dev, st.Ino
	}
	return v
}

// faultsReader keeps the last faults.json a Backend read, so Inventory costs
// an open and an fstat while the file is unchanged. It is guarded by the
// Backend's lock.
type faultsReader struct {
	path string

	read    bool // version, lost and err hold a read of the file
	version fileVersion
	lost    map[string]Fault // GPU UUID -> its lost fault
	err     error
}

// lostGPUs returns the GPUs the faults file declares lost. A missing file
// declares none; a file that cannot be read or parsed is an error naming it.
func (r *faultsReader) lostGPUs() (map[string]Fault, error) {
	f, err := os.Open(r.path)
	if errors.Is(err, os.ErrNotExist) {
		r.read, r.lost, r.err = false, nil, nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sim faults: %w", err)
	}
	defer func() { _ = f.Close() }()
	// Stat the open file, not the path: the version then belongs to the
	// bytes read below even if a writer renames a new file in between.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sim faults: stat %s: %w", r.path, err)
	}
	version := versionOf(info)
	if r.read && version == r.version {
		return r.lost, r.err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("sim faults: read %s: %w", r.path, err)
	}
	r.read, r.version, r.lost, r.err = true, version, nil, nil
	faults, err := decodeFaults(data)
	if err != nil {
		r.err = fmt.Errorf("sim faults file %s: %w", r.path, err)
		return nil, r.err
	}
	for _, fault := range faults {
		if fault.Kind != FaultLost {
			continue
		}
		if r.lost == nil {
			r.lost = make(map[string]Fault)
		}
		if _, dup := r.lost[fault.GPU]; !dup {
			r.lost[fault.GPU] = fault
		}
	}
	return r.lost, nil
}
