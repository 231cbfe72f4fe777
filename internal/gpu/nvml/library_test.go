package nvml

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// driverTree builds files and symlinks under root. Entries are
// "path" (an empty file), "path -> target" (a symlink) or "path/" (a
// directory).
func driverTree(t *testing.T, root string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		path, target, isLink := strings.Cut(e, " -> ")
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case isLink:
			err = os.Symlink(target, full)
		case strings.HasSuffix(path, "/"):
			err = os.MkdirAll(full, 0o755)
		default:
			err = os.WriteFile(full, nil, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindLibrary(t *testing.T) {
	tests := []struct {
		name    string
		tree    []string
		want    string // relative to the driver root; "" means not found
		wantErr string
	}{
		{
			name: "Debian multiarch directory",
			tree: []string{
				"usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15",
				"usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 -> libnvidia-ml.so.550.54.15",
			},
			want: "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15",
		},
		{
			name: "lib64 wins over the 32-bit /usr/lib",
			tree: []string{
				"usr/lib/libnvidia-ml.so.1",
				"usr/lib64/libnvidia-ml.so.1",
			},
			want: "usr/lib64/libnvidia-ml.so.1",
		},
		{
			name: "absolute link stays inside the driver root",
			tree: []string{
				"usr/lib64/libnvidia-ml.so.580.65.06",
				"usr/lib64/libnvidia-ml.so.1 -> /usr/lib64/libnvidia-ml.so.580.65.06",
			},
			want: "usr/lib64/libnvidia-ml.so.580.65.06",
		},
		{
			name: "symlinked library directory",
			tree: []string{
				"opt/nvidia/lib/libnvidia-ml.so.1",
				"lib64 -> opt/nvidia/lib",
			},
			want: "opt/nvidia/lib/libnvidia-ml.so.1",
		},
		{
			name: "dotdot cannot climb above the driver root",
			tree: []string{
				"usr/lib/libnvidia-ml.so.real",
				"usr/lib64/libnvidia-ml.so.1 -> ../../../../../usr/lib/libnvidia-ml.so.real",
			},
			want: "usr/lib/libnvidia-ml.so.real",
		},
		{
			name:    "dangling link is not a library",
			tree:    []string{"usr/lib64/libnvidia-ml.so.1 -> libnvidia-ml.so.gone"},
			wantErr: "not found",
		},
		{
			name: "symlink loop is not a library",
			tree: []string{
				"usr/lib64/libnvidia-ml.so.1 -> loop",
				"usr/lib64/loop -> libnvidia-ml.so.1",
			},
			wantErr: "not found",
		},
		{
			name:    "a directory is not a library",
			tree:    []string{"usr/lib64/libnvidia-ml.so.1/"},
			wantErr: "not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			driverTree(t, root, tt.tree...)
			got, err := findLibrary(root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("findLibrary = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("findLibrary: %v", err)
			}
			if want := filepath.Join(root, tt.want); got != want {
				t.Errorf("findLibrary = %q, want %q", got, want)
			}
		})
	}
}

func TestResolveInRootStopsSymlinkLoops(t *testing.T) {
	root := t.TempDir()
	driverTree(t, root, "a -> b", "b -> a")
	if _, err := resolveInRoot(root, "a"); !errors.Is(err, errTooManyLinks) {
		t.Errorf("resolveInRoot of a loop: err = %v, want %v", err, errTooManyLinks)
	}
}

func TestNewWithoutLibraryNamesEveryPathTried(t *testing.T) {
	root := t.TempDir()
	_, err := New(Options{DriverRoot: root})
	if err == nil {
		t.Fatal("New succeeded without a library")
	}
	for _, dir := range libraryDirs {
		if want := filepath.Join(root, dir, libraryName); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestNewWithUnloadableLibrary goes through go-nvml's real dlopen path with a
// file that is not a shared library: Init must fail cleanly, and the error
// must name the file.
func TestNewWithUnloadableLibrary(t *testing.T) {
	root := t.TempDir()
	driverTree(t, root, "usr/lib64/libnvidia-ml.so.1")
	_, err := New(Options{DriverRoot: root})
	if err == nil {
		t.Fatal("New succeeded with an empty library file")
	}
	if path := filepath.Join(root, "usr/lib64", libraryName); !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !errors.Is(err, gonvml.ERROR_LIBRARY_NOT_FOUND) {
		t.Errorf("error %q does not wrap ERROR_LIBRARY_NOT_FOUND", err)
	}
}
