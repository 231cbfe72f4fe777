package images

import (
	"archive/tar"
	"context"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBusyboxImage(t *testing.T) {
	workDir := t.TempDir()
	tarPath, err := Busybox(context.Background(), workDir)
	if err != nil {
		t.Fatal(err)
	}
	img := readImageTar(t, tarPath)
	if got := img.index.Manifests[0].Annotations[annotationImageName]; got != BusyboxRef {
		t.Errorf("image name = %q, want %s", got, BusyboxRef)
	}
	if !reflect.DeepEqual(img.config.Config.Cmd, []string{"sh"}) {
		t.Errorf("cmd = %v, want [sh]", img.config.Config.Cmd)
	}
	if busybox := img.file(t, "bin/busybox"); busybox.hdr.Typeflag != tar.TypeReg || busybox.hdr.Mode != 0o755 {
		t.Errorf("/bin/busybox: type %c mode %o, want an executable file", busybox.hdr.Typeflag, busybox.hdr.Mode)
	}
	for _, applet := range []string{"sh", "ls", "cat", "env", "sleep", "echo", "grep", "test", "wc", "head", "tail",
		"mkdir", "rm", "true", "false", "date", "id", "ps"} {
		link := img.file(t, "bin/"+applet)
		if link.hdr.Typeflag != tar.TypeSymlink || link.hdr.Linkname != "busybox" {
			t.Errorf("/bin/%s: type %c -> %q, want a symlink to busybox", applet, link.hdr.Typeflag, link.hdr.Linkname)
		}
	}
	if tmp := img.file(t, "tmp"); tmp.hdr.Mode != 0o1777 {
		t.Errorf("/tmp mode = %o, want 1777", tmp.hdr.Mode)
	}

	// The links work: a shell pipeline runs inside the unpacked image.
	root := t.TempDir()
	img.extract(t, root)
	out := runInRoot(t, root, "/bin/sh", "-c", "echo hello | wc -c; id -un; /usr/bin/env true && echo env-ok")
	if want := "6\nroot\nenv-ok\n"; out != want {
		t.Errorf("shell in the image printed %q, want %q", out, want)
	}
}

func TestBusyboxNeedsStaticBinary(t *testing.T) {
	dynamic, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		binary  string
		wantErr string
	}{
		{name: "missing", binary: filepath.Join(t.TempDir(), "busybox"), wantErr: "no such file"},
		{name: "dynamically linked", binary: dynamic, wantErr: "dynamically linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := writeBusybox(context.Background(), t.TempDir(), tt.binary)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "apt-get install busybox-static") {
				t.Fatalf("writeBusybox(%s) error = %v, want %q and the apt-get hint", tt.binary, err, tt.wantErr)
			}
		})
	}
}
