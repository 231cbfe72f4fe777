package nvml

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const libraryName = "libnvidia-ml.so.1"

// libraryDirs are where distributions and the GPU Operator's driver container
// install NVIDIA's libraries, relative to the driver root. 64-bit directories
// come before /usr/lib and /lib because those hold 32-bit copies on RPM
// systems, and dlopen of the wrong ELF class fails.
var libraryDirs = []string{
	"usr/lib64",
	"usr/lib/x86_64-linux-gnu",
	"usr/lib/aarch64-linux-gnu",
	"lib64",
	"lib/x86_64-linux-gnu",
	"lib/aarch64-linux-gnu",
	"usr/lib",
	"lib",
}

// maxSymlinks bounds symlink resolution, like the kernel's ELOOP limit.
const maxSymlinks = 40

// findLibrary returns the real path of libnvidia-ml.so.1 under driverRoot.
// Links are resolved inside driverRoot: when the host's root is mounted at
// /driver-root, an absolute link to /usr/lib/... means
// /driver-root/usr/lib/..., which dlopen would not know.
func findLibrary(driverRoot string) (string, error) {
	tried := make([]string, 0, len(libraryDirs))
	for _, dir := range libraryDirs {
		rel := filepath.Join(dir, libraryName)
		tried = append(tried, filepath.Join(driverRoot, rel))
		path, err := resolveInRoot(driverRoot, rel)
		if err != nil {
			continue
		}
		if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found under driver root %s (tried %s); is the NVIDIA driver installed and the driver root set right?",
		libraryName, driverRoot, strings.Join(tried, ", "))
}

// resolveInRoot resolves every symlink in rel as if root were "/", so no
// link, absolute or "..", leads outside root.
func resolveInRoot(root, rel string) (string, error) {
	pending := splitPath(rel)
	var resolved []string
	links := 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}

		current := filepath.Join(root, filepath.Join(resolved...), name)
		info, err := os.Lstat(current)
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, name)
			continue
		}

		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("resolve %s under %s: %w", rel, root, errTooManyLinks)
		}
		target, err := os.Readlink(current)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			resolved = resolved[:0]
		}
		pending = append(splitPath(target), pending...)
	}
	return filepath.Join(root, filepath.Join(resolved...)), nil
}

var errTooManyLinks = errors.New("too many levels of symbolic links")

func splitPath(p string) []string {
	var parts []string
	for _, part := range strings.Split(p, "/") {
		if part != "" {
			parts = append(parts, part)
		}
	}
	return parts
}
