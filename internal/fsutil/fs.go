package fsutil

import (
	"fmt"
	"io/fs"
	"os"
)

// FS is the part of the file system the durable-file writers use: the
// checkpoint, the CDI writer and the functions of this package. It exists so
// that tests can fail any single step (package fsfault) and check what a
// crash or an I/O error there leaves behind.
//
// Paths are OS paths. An FS must act on the real file system underneath
// (wrappers add behaviour, they do not relocate files): an AtomicWrite.Check
// may read the temp file by name with other libraries.
type FS interface {
	// CreateTemp creates a new file in dir as os.CreateTemp does.
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// SyncDir fsyncs the directory dir, making renames and removals in it
	// durable.
	SyncDir(dir string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	ReadFile(name string) ([]byte, error)
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	MkdirAll(path string, perm fs.FileMode) error
}

// File is a file opened for writing by FS.CreateTemp.
type File interface {
	// Name is the file's path, as given to CreateTemp's dir plus the name.
	Name() string
	Write(p []byte) (int, error)
	Chmod(mode fs.FileMode) error
	// Sync fsyncs the file's contents.
	Sync() error
	Close() error
}

// OSFS is the FS of the operating system; its methods call package os
// directly.
type OSFS struct{}

// OS is the real file system.
var OS = OSFS{}

var _ FS = OS

// CreateTemp calls os.CreateTemp.
func (OSFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return f, nil
}

// Rename calls os.Rename.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove calls os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// SyncDir opens dir and fsyncs it.
func (OSFS) SyncDir(dir string) error {
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

// ReadDir calls os.ReadDir.
func (OSFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// ReadFile calls os.ReadFile.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Stat calls os.Stat.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Lstat calls os.Lstat.
func (OSFS) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// MkdirAll calls os.MkdirAll.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }
