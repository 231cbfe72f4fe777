package images

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	hostFile := filepath.Join(dir, "tool")
	if err := os.WriteFile(hostFile, []byte("#!/bin/sh\necho tool\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Ref: "localhost/gpudra/test:v1",
		Entries: []Entry{
			File("/usr/local/bin/tool", 0o755, hostFile),
			Bytes("/etc/motd", 0o644, []byte("hello\n")),
			Dir("/tmp", 0o777|fs.ModeSticky),
			Symlink("/bin", "usr/local/bin"),
			Symlink("/bin", "usr/local/bin"), // identical duplicates merge
		},
		Entrypoint: []string{"/usr/local/bin/tool"},
		Cmd:        []string{"--flag"},
		Env:        []string{"A=1"},
		WorkingDir: "/tmp",
	}
	tarPath := filepath.Join(dir, "out", "image.tar")
	manifestDigest, err := Write(spec, tarPath)
	if err != nil {
		t.Fatal(err)
	}
	img := readImageTar(t, tarPath)

	wantNames := []string{"blobs/", "blobs/sha256/"}
	var blobNames []string
	for _, d := range []string{img.manifest.Config.Digest, img.manifest.Layers[0].Digest, manifestDigest} {
		blobNames = append(blobNames, "blobs/sha256/"+strings.TrimPrefix(d, "sha256:"))
	}
	sort.Strings(blobNames)
	wantNames = append(append(wantNames, blobNames...), "index.json", "oci-layout")
	if !reflect.DeepEqual(img.names, wantNames) {
		t.Errorf("tar entries = %v, want %v", img.names, wantNames)
	}

	wantIndexEntry := descriptor{
		MediaType: mediaTypeManifest,
		Digest:    manifestDigest,
		Size:      img.index.Manifests[0].Size,
		Platform:  &platform{Architecture: runtime.GOARCH, OS: "linux"},
		Annotations: map[string]string{
			"io.containerd.image.name":          "localhost/gpudra/test:v1",
			"org.opencontainers.image.ref.name": "v1",
		},
	}
	if !reflect.DeepEqual(img.index.Manifests[0], wantIndexEntry) || img.index.MediaType != mediaTypeIndex || img.index.SchemaVersion != 2 {
		t.Errorf("index = %+v, want one manifest %+v", img.index, wantIndexEntry)
	}
	if img.manifest.MediaType != mediaTypeManifest || img.manifest.Config.MediaType != mediaTypeConfig || img.manifest.Layers[0].MediaType != mediaTypeLayer {
		t.Errorf("manifest media types = %+v", img.manifest)
	}
	wantConfig := imageConfig{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config:       runtimeConfig{Entrypoint: spec.Entrypoint, Cmd: spec.Cmd, Env: spec.Env, WorkingDir: "/tmp"},
		RootFS:       rootFS{Type: "layers", DiffIDs: []string{img.manifest.Layers[0].Digest}},
	}
	if !reflect.DeepEqual(img.config, wantConfig) {
		t.Errorf("config = %+v, want %+v", img.config, wantConfig)
	}

	// Sorted, parents implied, owned by root, dated at the epoch.
	wantLayer := []struct {
		name     string
		typeflag byte
		mode     int64
		linkname string
		data     string
	}{
		{"bin", tar.TypeSymlink, 0o777, "usr/local/bin", ""},
		{"etc/", tar.TypeDir, 0o755, "", ""},
		{"etc/motd", tar.TypeReg, 0o644, "", "hello\n"},
		{"tmp/", tar.TypeDir, 0o1777, "", ""},
		{"usr/", tar.TypeDir, 0o755, "", ""},
		{"usr/local/", tar.TypeDir, 0o755, "", ""},
		{"usr/local/bin/", tar.TypeDir, 0o755, "", ""},
		{"usr/local/bin/tool", tar.TypeReg, 0o755, "", "#!/bin/sh\necho tool\n"},
	}
	if len(img.layer) != len(wantLayer) {
		t.Fatalf("layer has %d entries, want %d", len(img.layer), len(wantLayer))
	}
	for i, want := range wantLayer {
		got := img.layer[i]
		if got.hdr.Name != want.name || got.hdr.Typeflag != want.typeflag || got.hdr.Mode != want.mode ||
			got.hdr.Linkname != want.linkname || string(got.data) != want.data {
			t.Errorf("layer entry %d = %s type %c mode %o link %q data %q, want %+v",
				i, got.hdr.Name, got.hdr.Typeflag, got.hdr.Mode, got.hdr.Linkname, got.data, want)
		}
		if got.hdr.Uid != 0 || got.hdr.Gid != 0 || got.hdr.Uname != "" || got.hdr.Gname != "" || !got.hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("layer entry %s: uid %d gid %d uname %q gname %q mtime %v, want root at the epoch",
				got.hdr.Name, got.hdr.Uid, got.hdr.Gid, got.hdr.Uname, got.hdr.Gname, got.hdr.ModTime)
		}
	}

	leftovers, err := filepath.Glob(filepath.Join(dir, "out", ".*"))
	if err != nil || len(leftovers) != 0 {
		t.Errorf("temporary files left next to the tar: %v %v", leftovers, err)
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	hostFile := filepath.Join(dir, "data")
	spec := func(content string) Spec {
		return Spec{
			Ref: "localhost/gpudra/determinism:1",
			Entries: []Entry{
				Symlink("/b", "a"),
				File("/a", 0o644, hostFile),
				Dir("/d", 0o700),
			},
			Env: []string{"X=" + content},
		}
	}
	write := func(name, content string, mtime time.Time) (string, []byte) {
		t.Helper()
		if err := os.WriteFile(hostFile, []byte("payload"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(hostFile, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		tarPath := filepath.Join(dir, name)
		digest, err := Write(spec(content), tarPath)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		return digest, data
	}

	firstDigest, firstBytes := write("first.tar", "same", time.Unix(1000, 0))
	secondDigest, secondBytes := write("second.tar", "same", time.Unix(2_000_000, 0))
	if firstDigest != secondDigest || string(firstBytes) != string(secondBytes) {
		t.Errorf("same inputs, different host mtimes: digests %s and %s (bytes equal: %v)",
			firstDigest, secondDigest, string(firstBytes) == string(secondBytes))
	}
	otherDigest, _ := write("other.tar", "different", time.Unix(1000, 0))
	if otherDigest == firstDigest {
		t.Errorf("different config gave the same digest %s", otherDigest)
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{
			name:    "short reference",
			spec:    Spec{Ref: "busybox:1", Entries: []Entry{Bytes("/a", 0o644, nil)}},
			wantErr: "must start with a registry domain",
		},
		{
			name:    "relative path",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Bytes("a", 0o644, nil)}},
			wantErr: `image entry "a": path must be absolute`,
		},
		{
			name:    "root as entry",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Dir("/", 0o755)}},
			wantErr: "root directory",
		},
		{
			name:    "conflicting duplicates",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Bytes("/a", 0o644, []byte("1")), Bytes("/a", 0o644, []byte("2"))}},
			wantErr: "image entry /a: given twice",
		},
		{
			name:    "entry under a symlink",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Symlink("/lib", "usr/lib"), Bytes("/lib/libc.so.6", 0o644, nil)}},
			wantErr: "image entry /lib/libc.so.6: its parent /lib is a symlink",
		},
		{
			name:    "entry under a file",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Bytes("/a", 0o644, nil), Bytes("/a/b", 0o644, nil)}},
			wantErr: "its parent /a is a file",
		},
		{
			name:    "type bits in mode",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Bytes("/a", fs.ModeDir|0o755, nil)}},
			wantErr: "has type bits",
		},
		{
			name:    "symlink without target",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{Symlink("/a", "")}},
			wantErr: "symlink without target",
		},
		{
			name:    "missing host file",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{File("/a", 0o644, filepath.Join(dir, "absent"))}},
			wantErr: "image entry /a: open " + filepath.Join(dir, "absent"),
		},
		{
			name:    "host directory as file",
			spec:    Spec{Ref: "localhost/x:1", Entries: []Entry{File("/a", 0o644, dir)}},
			wantErr: "not a regular file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tarPath := filepath.Join(dir, "image.tar")
			_, err := Write(tt.spec, tarPath)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Write error = %v, want it to contain %q", err, tt.wantErr)
			}
			if _, statErr := os.Stat(tarPath); !os.IsNotExist(statErr) {
				t.Errorf("a failed Write left %s behind (stat: %v)", tarPath, statErr)
			}
		})
	}
}

func TestReferenceTag(t *testing.T) {
	tests := []struct {
		ref     string
		wantTag string
		wantErr string
	}{
		{ref: "registry.k8s.io/pause:3.10.2", wantTag: "3.10.2"},
		{ref: "localhost/gpudra/busybox:1", wantTag: "1"},
		{ref: "localhost:5000/a/b:dev", wantTag: "dev"},
		{ref: "myhost:5000/a:latest", wantTag: "latest"},
		{ref: "busybox:1", wantErr: "registry domain"},
		{ref: "gpudra/busybox:1", wantErr: "registry domain"},
		{ref: "localhost/gpudra/busybox", wantErr: "missing :tag"},
		{ref: "localhost/Gpudra:1", wantErr: "must be lowercase"},
		{ref: "localhost/gpudra:", wantErr: "invalid tag"},
		{ref: "localhost/gpudra@sha256:00", wantErr: "digests are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			tag, err := referenceTag(tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("referenceTag(%q) = %q, %v; want error containing %q", tt.ref, tag, err, tt.wantErr)
				}
				return
			}
			if err != nil || tag != tt.wantTag {
				t.Fatalf("referenceTag(%q) = %q, %v; want %q", tt.ref, tag, err, tt.wantTag)
			}
		})
	}
}
