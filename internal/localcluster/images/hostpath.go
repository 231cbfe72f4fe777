package images

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxSymlinkHops bounds symlink resolution the way the kernel does (40), so
// a loop on the host ends in an error instead of a hang.
const maxSymlinkHops = 40

// hostPathEntries returns the entries that make hostPath resolve inside the
// image the way it resolves on the host: every symlink met on the way, in a
// parent directory or at the end, becomes a symlink entry with the host's
// link text, and the regular file finally reached becomes a file entry at
// its symlink-free path.
//
// Keeping the links matters: the dynamic loader opens the names recorded in
// the program (/lib64/ld-linux-x86-64.so.2, libc.so.6 in
// /lib/x86_64-linux-gnu), and on a merged-/usr host /lib is itself a link.
func hostPathEntries(hostPath string) ([]Entry, error) {
	if !filepath.IsAbs(hostPath) {
		return nil, fmt.Errorf("host path %q: must be absolute", hostPath)
	}
	var entries []Entry
	pending := pathComponents(hostPath)
	resolved := "/"
	hops := 0
	for len(pending) > 0 {
		component := pending[0]
		pending = pending[1:]
		if component == ".." {
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, component)
		info, err := os.Lstat(next)
		if err != nil {
			return nil, fmt.Errorf("host path %s: %w", hostPath, err)
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxSymlinkHops {
				return nil, fmt.Errorf("host path %s: too many levels of symbolic links", hostPath)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return nil, fmt.Errorf("host path %s: %w", hostPath, err)
			}
			entries = append(entries, Symlink(next, target))
			if filepath.IsAbs(target) {
				resolved = "/"
			}
			pending = append(pathComponents(target), pending...)
		case info.IsDir():
			if len(pending) == 0 {
				return nil, fmt.Errorf("host path %s: resolves to directory %s, want a file", hostPath, next)
			}
			resolved = next
		case info.Mode().IsRegular():
			if len(pending) > 0 {
				return nil, fmt.Errorf("host path %s: %s is not a directory", hostPath, next)
			}
			entries = append(entries, File(next, info.Mode().Perm(), next))
		default:
			return nil, fmt.Errorf("host path %s: %s is a %v, want a file, directory or symlink", hostPath, next, info.Mode().Type())
		}
	}
	return entries, nil
}

// pathComponents splits p into its names, dropping empty and "." ones.
func pathComponents(p string) []string {
	var components []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			components = append(components, c)
		}
	}
	return components
}
