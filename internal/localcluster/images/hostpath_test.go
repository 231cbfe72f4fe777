package images

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestHostPathEntries(t *testing.T) {
	// A merged-/usr tree: lib -> usr/lib, a versioned library behind its
	// soname link, and a link whose text climbs with "..".
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "usr/lib/triplet"))
	mustWrite(t, filepath.Join(root, "usr/lib/triplet/libfoo.so.1.2.3"), 0o644)
	mustSymlink(t, "usr/lib", filepath.Join(root, "lib"))
	mustSymlink(t, "libfoo.so.1.2.3", filepath.Join(root, "usr/lib/triplet/libfoo.so.1"))
	mustMkdir(t, filepath.Join(root, "usr/lib64"))
	mustSymlink(t, "../lib/triplet/libfoo.so.1", filepath.Join(root, "usr/lib64/libfoo.so.1"))
	mustSymlink(t, "loop-b", filepath.Join(root, "loop-a"))
	mustSymlink(t, "loop-a", filepath.Join(root, "loop-b"))

	tests := []struct {
		name     string
		hostPath string
		want     []Entry
		wantErr  string
	}{
		{
			name:     "plain file",
			hostPath: root + "/usr/lib/triplet/libfoo.so.1.2.3",
			want:     []Entry{File(root+"/usr/lib/triplet/libfoo.so.1.2.3", 0o644, root+"/usr/lib/triplet/libfoo.so.1.2.3")},
		},
		{
			name:     "linked parent and linked file",
			hostPath: root + "/lib/triplet/libfoo.so.1",
			want: []Entry{
				Symlink(root+"/lib", "usr/lib"),
				Symlink(root+"/usr/lib/triplet/libfoo.so.1", "libfoo.so.1.2.3"),
				File(root+"/usr/lib/triplet/libfoo.so.1.2.3", 0o644, root+"/usr/lib/triplet/libfoo.so.1.2.3"),
			},
		},
		{
			name:     "link climbing with dot-dot",
			hostPath: root + "/usr/lib64/libfoo.so.1",
			want: []Entry{
				Symlink(root+"/usr/lib64/libfoo.so.1", "../lib/triplet/libfoo.so.1"),
				Symlink(root+"/usr/lib/triplet/libfoo.so.1", "libfoo.so.1.2.3"),
				File(root+"/usr/lib/triplet/libfoo.so.1.2.3", 0o644, root+"/usr/lib/triplet/libfoo.so.1.2.3"),
			},
		},
		{name: "missing", hostPath: root + "/usr/lib/absent.so", wantErr: "no such file"},
		{name: "directory", hostPath: root + "/lib/triplet", wantErr: "want a file"},
		{name: "file as directory", hostPath: root + "/usr/lib/triplet/libfoo.so.1.2.3/x", wantErr: "is not a directory"},
		{name: "symlink loop", hostPath: root + "/loop-a", wantErr: "too many levels of symbolic links"},
		{name: "relative", hostPath: "lib/libfoo.so.1", wantErr: "must be absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hostPathEntries(tt.hostPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("hostPathEntries(%s) = %v, %v; want error containing %q", tt.hostPath, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("hostPathEntries(%s) =\n%+v\nwant\n%+v", tt.hostPath, got, tt.want)
			}
		})
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, file string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(file, []byte(filepath.Base(file)), mode); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
