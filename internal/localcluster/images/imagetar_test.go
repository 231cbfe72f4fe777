package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// imageTar is an image-layout tar read back for inspection.
type imageTar struct {
	names    []string // outer entries, in tar order
	index    index
	manifest manifest
	config   imageConfig
	layer    []layerFile // in tar order
}

type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// readImageTar parses tarPath and checks that every blob is named by its
// content's digest, as containerd's importer will.
func readImageTar(t *testing.T, tarPath string) imageTar {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var img imageTar
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", tarPath, err)
		}
		img.names = append(img.names, hdr.Name)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = data
		if digest, ok := strings.CutPrefix(hdr.Name, "blobs/sha256/"); ok && digest != "" {
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != digest {
				t.Fatalf("blob %s has content digest %s", hdr.Name, got)
			}
		}
	}
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout = %s", got)
	}
	decodeJSON(t, files["index.json"], &img.index)
	if len(img.index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(img.index.Manifests))
	}
	decodeJSON(t, blobData(t, files, img.index.Manifests[0].Digest), &img.manifest)
	decodeJSON(t, blobData(t, files, img.manifest.Config.Digest), &img.config)
	if len(img.manifest.Layers) != 1 {
		t.Fatalf("manifest has %d layers, want 1", len(img.manifest.Layers))
	}
	layerTar := tar.NewReader(bytes.NewReader(blobData(t, files, img.manifest.Layers[0].Digest)))
	for {
		hdr, err := layerTar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		data, err := io.ReadAll(layerTar)
		if err != nil {
			t.Fatal(err)
		}
		img.layer = append(img.layer, layerFile{hdr: hdr, data: data})
	}
	return img
}

func blobData(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	data, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("blob %s missing", digest)
	}
	return data
}

func decodeJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// file returns the layer entry at name (relative, without a trailing slash).
func (img imageTar) file(t *testing.T, name string) layerFile {
	t.Helper()
	for _, f := range img.layer {
		if strings.TrimSuffix(f.hdr.Name, "/") == name {
			return f
		}
	}
	t.Fatalf("layer has no %s", name)
	return layerFile{}
}

// extract unpacks the layer under root the way a snapshotter would.
func (img imageTar) extract(t *testing.T, root string) {
	t.Helper()
	for _, f := range img.layer {
		target := filepath.Join(root, f.hdr.Name)
		var err error
		switch f.hdr.Typeflag {
		case tar.TypeDir:
			if err = os.MkdirAll(target, 0o755); err == nil {
				err = os.Chmod(target, os.FileMode(f.hdr.Mode&0o777)|modeBits(f.hdr.Mode))
			}
		case tar.TypeSymlink:
			err = os.Symlink(f.hdr.Linkname, target)
		case tar.TypeReg:
			err = os.WriteFile(target, f.data, os.FileMode(f.hdr.Mode&0o777))
		default:
			t.Fatalf("layer entry %s has type %c", f.hdr.Name, f.hdr.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func modeBits(mode int64) os.FileMode {
	var m os.FileMode
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// runInRoot runs argv with root as its file system root, as a container
// would, and returns its combined output. Unprivileged runs get a user
// namespace, where chroot is allowed.
func runInRoot(t *testing.T, root string, argv ...string) string {
	t.Helper()
	attr := &syscall.SysProcAttr{Chroot: root}
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		attr.Cloneflags = syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = attr
	cmd.Env = []string{defaultPath}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run %v in %s: %v: %s", argv, root, err, out)
	}
	return string(out)
}
