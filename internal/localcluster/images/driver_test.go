package images

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

const cgoProgram = `package main

/*
static int answer(void) { return 42; }
*/
import "C"

import "fmt"

func main() { fmt.Println("cgo answer", C.answer()) }
`

// buildCgoProgram builds a dynamically linked cgo program, the kind of
// binary gpudra ships.
func buildCgoProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(cgoProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(dir, "cgo-answer")
	cmd := exec.Command("go", "build", "-o", binary, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cgo program: %v: %s", err, out)
	}
	return binary
}

func TestDriverImageRunsCgoBinary(t *testing.T) {
	binary := buildCgoProgram(t)
	workDir := t.TempDir()
	tarPath, err := Driver(context.Background(), workDir, []string{binary}, "localhost/gpudra/gpudra:test")
	if err != nil {
		t.Fatal(err)
	}
	img := readImageTar(t, tarPath)
	if got := img.index.Manifests[0].Annotations[annotationImageName]; got != "localhost/gpudra/gpudra:test" {
		t.Errorf("image name = %q", got)
	}
	if got := img.config.Config.Cmd; len(got) != 1 || got[0] != "/usr/bin/cgo-answer" {
		t.Errorf("cmd = %v, want [/usr/bin/cgo-answer]", got)
	}
	if f := img.file(t, "usr/bin/cgo-answer"); f.hdr.Mode != 0o755 || f.hdr.Typeflag != tar.TypeReg {
		t.Errorf("/usr/bin/cgo-answer: type %c mode %o", f.hdr.Typeflag, f.hdr.Mode)
	}
	if tmp := img.file(t, "tmp"); tmp.hdr.Mode != 0o1777 {
		t.Errorf("/tmp mode = %o, want 1777", tmp.hdr.Mode)
	}

	deps, err := readDynamicInfo(binary)
	if err != nil {
		t.Fatal(err)
	}
	if deps.interpreter == "" {
		t.Fatalf("test binary %s has no interpreter; it should be dynamically linked", binary)
	}
	for _, want := range []string{deps.interpreter, "libc.so.6"} {
		if !imageResolves(img, want) {
			t.Errorf("image has no regular file behind %s", want)
		}
	}
	for _, f := range img.layer {
		if strings.Contains(f.hdr.Name, "libnvidia-ml") {
			t.Errorf("image carries %s; go-nvml dlopens it from the node", f.hdr.Name)
		}
	}

	root := t.TempDir()
	img.extract(t, root)
	if out := runInRoot(t, root, "/usr/bin/cgo-answer"); out != "cgo answer 42\n" {
		t.Errorf("binary in the image printed %q, want %q", out, "cgo answer 42\n")
	}
}

// imageResolves reports whether name (an absolute path, or a bare soname
// looked up in the default library directories) leads through the layer's
// symlinks to a regular file.
func imageResolves(img imageTar, name string) bool {
	entries := map[string]*tar.Header{}
	for _, f := range img.layer {
		entries[strings.TrimSuffix(f.hdr.Name, "/")] = f.hdr
	}
	candidates := []string{name}
	if !path.IsAbs(name) {
		candidates = nil
		for _, dir := range defaultLibraryDirs() {
			candidates = append(candidates, path.Join(dir, name))
		}
	}
	for _, candidate := range candidates {
		if hdr := resolveInLayer(entries, candidate); hdr != nil && hdr.Typeflag == tar.TypeReg {
			return true
		}
	}
	return false
}

func resolveInLayer(entries map[string]*tar.Header, name string) *tar.Header {
	pending := pathComponents(name)
	resolved := ""
	for hops := 0; len(pending) > 0 && hops < maxSymlinkHops; {
		next := path.Join(resolved, pending[0])
		pending = pending[1:]
		hdr, ok := entries[next]
		if !ok {
			return nil
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if len(pending) == 0 {
				return hdr
			}
			resolved = next
			continue
		}
		hops++
		if path.IsAbs(hdr.Linkname) {
			resolved = ""
		}
		pending = append(pathComponents(hdr.Linkname), pending...)
	}
	return nil
}

func TestDriverStaticBinaryNeedsNoLibraries(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "pause")
	if err := compilePause(context.Background(), binary); err != nil {
		t.Fatal(err)
	}
	tarPath, err := Driver(context.Background(), t.TempDir(), []string{binary}, "localhost/gpudra/static:1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range readImageTar(t, tarPath).layer {
		names = append(names, f.hdr.Name)
	}
	if want := "tmp/ usr/ usr/bin/ usr/bin/pause"; strings.Join(names, " ") != want {
		t.Errorf("layer = %v, want %s", names, want)
	}
}

func TestDriverRejects(t *testing.T) {
	dir := t.TempDir()
	one, other := filepath.Join(dir, "a", "gpudra"), filepath.Join(dir, "b", "gpudra")
	for _, p := range []string{one, other} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("not an ELF file"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		binaries []string
		wantErr  string
	}{
		{name: "no binaries", wantErr: "no binaries given"},
		{name: "same base name", binaries: []string{one, other}, wantErr: "would both be /usr/bin/gpudra"},
		{name: "missing binary", binaries: []string{filepath.Join(dir, "absent")}, wantErr: "read ELF " + filepath.Join(dir, "absent")},
		{name: "not an ELF file", binaries: []string{one}, wantErr: "read ELF " + one},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Driver(context.Background(), t.TempDir(), tt.binaries, "localhost/gpudra/gpudra:test")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Driver error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
