package images

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// EntryKind says what an Entry creates in the image.
type EntryKind int

const (
	// KindFile is a regular file, copied from HostPath or taken from Data.
	KindFile EntryKind = iota
	// KindDir is a directory.
	KindDir
	// KindSymlink is a symbolic link to Target.
	KindSymlink
)

func (k EntryKind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "directory"
	case KindSymlink:
		return "symlink"
	default:
		return fmt.Sprintf("EntryKind(%d)", int(k))
	}
}

// Entry is one file system object of an image's single layer. Build entries
// with File, Bytes, Dir and Symlink.
type Entry struct {
	Kind EntryKind
	// Path is absolute, inside the image.
	Path string
	// Mode holds the permission bits plus, optionally, fs.ModeSetuid,
	// fs.ModeSetgid and fs.ModeSticky. Ignored for symlinks.
	Mode fs.FileMode
	// HostPath is the file a KindFile entry is copied from; when empty, Data
	// is the content.
	HostPath string
	Data     []byte
	// Target is the link text of a KindSymlink entry, kept as given
	// (relative targets resolve against the link's directory in the image).
	Target string
}

// File copies the host file hostPath to path in the image.
func File(path string, mode fs.FileMode, hostPath string) Entry {
	return Entry{Kind: KindFile, Path: path, Mode: mode, HostPath: hostPath}
}

// Bytes writes data to path in the image.
func Bytes(path string, mode fs.FileMode, data []byte) Entry {
	return Entry{Kind: KindFile, Path: path, Mode: mode, Data: data}
}

// Dir creates the directory path in the image. Parents of other entries are
// created with mode 0755 without being listed; Dir is for other modes
// (/tmp is 01777) and for empty directories.
func Dir(path string, mode fs.FileMode) Entry {
	return Entry{Kind: KindDir, Path: path, Mode: mode}
}

// Symlink creates path in the image as a symbolic link to target.
func Symlink(path, target string) Entry {
	return Entry{Kind: KindSymlink, Path: path, Target: target}
}

func (e Entry) sameAs(o Entry) bool {
	return e.Kind == o.Kind && e.Path == o.Path && e.Mode == o.Mode &&
		e.HostPath == o.HostPath && bytes.Equal(e.Data, o.Data) && e.Target == o.Target
}

// layerEntries validates entries and returns the complete, sorted list the
// layer holds: identical duplicates merged (composing images from pieces
// that share a symlink such as /lib -> usr/lib is normal), missing parent
// directories added with mode 0755, image paths made relative.
//
// Sorting by path puts every directory before its contents, which is what
// makes the layer byte-for-byte reproducible.
func layerEntries(entries []Entry) ([]Entry, error) {
	byPath := make(map[string]Entry, len(entries))
	for _, e := range entries {
		if !path.IsAbs(e.Path) {
			return nil, fmt.Errorf("image entry %q: path must be absolute", e.Path)
		}
		clean := strings.TrimPrefix(path.Clean(e.Path), "/")
		if clean == "" {
			return nil, fmt.Errorf("image entry %q: the root directory cannot be an entry", e.Path)
		}
		e.Path = clean
		switch e.Kind {
		case KindFile, KindDir:
			if e.Mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				return nil, fmt.Errorf("image entry /%s: mode %v has type bits; the kind says the type", clean, e.Mode)
			}
		case KindSymlink:
			if e.Target == "" {
				return nil, fmt.Errorf("image entry /%s: symlink without target", clean)
			}
		default:
			return nil, fmt.Errorf("image entry /%s: unknown kind %v", clean, e.Kind)
		}
		if prev, ok := byPath[clean]; ok {
			if !prev.sameAs(e) {
				return nil, fmt.Errorf("image entry /%s: given twice with different contents (%v and %v)", clean, prev.Kind, e.Kind)
			}
			continue
		}
		byPath[clean] = e
	}

	explicit := make([]string, 0, len(byPath))
	for p := range byPath {
		explicit = append(explicit, p)
	}
	for _, p := range explicit {
		for parent := path.Dir(p); parent != "."; parent = path.Dir(parent) {
			existing, ok := byPath[parent]
			if !ok {
				byPath[parent] = Entry{Kind: KindDir, Path: parent, Mode: 0o755}
				continue
			}
			if existing.Kind != KindDir {
				// Unpacking would follow or clobber it; neither is what the
				// caller meant.
				return nil, fmt.Errorf("image entry /%s: its parent /%s is a %v, not a directory", p, parent, existing.Kind)
			}
		}
	}

	sorted := make([]Entry, 0, len(byPath))
	for _, e := range byPath {
		sorted = append(sorted, e)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	return sorted, nil
}
