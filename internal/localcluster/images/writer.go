package images

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
)

// Spec describes a single-layer Linux image for the host's architecture.
type Spec struct {
	// Ref is the fully qualified, tagged name the image is imported under,
	// such as registry.k8s.io/pause:3.10.2 or localhost/gpudra/busybox:1.
	Ref string
	// Entries is the content of the image's only layer.
	Entries []Entry

	Entrypoint []string
	Cmd        []string
	// Env holds KEY=value pairs.
	Env        []string
	WorkingDir string
}

// blob is one content-addressed file of the layout, either in memory or in a
// temporary file (the layer, which can be hundreds of megabytes).
type blob struct {
	digest string
	size   int64
	data   []byte
	file   *os.File
}

// Write writes spec as an OCI image-layout tar at tarPath and returns the
// image manifest's digest ("sha256:..."), which is also the target digest
// containerd records for the imported image.
//
// The same spec and the same host file contents always give the same bytes:
// entries are sorted, owned by uid/gid 0 and dated at the Unix epoch, and no
// creation time is recorded. The file appears at tarPath only when complete.
func Write(spec Spec, tarPath string) (string, error) {
	tag, err := referenceTag(spec.Ref)
	if err != nil {
		return "", err
	}
	entries, err := layerEntries(spec.Entries)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	dir := filepath.Dir(tarPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}

	layer, err := writeLayerBlob(dir, entries)
	if err != nil {
		return "", fmt.Errorf("image %s: layer: %w", spec.Ref, err)
	}
	defer func() {
		_ = layer.file.Close()
		_ = os.Remove(layer.file.Name())
	}()

	config, err := jsonBlob(imageConfig{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: runtimeConfig{
			Entrypoint: spec.Entrypoint,
			Cmd:        spec.Cmd,
			Env:        spec.Env,
			WorkingDir: spec.WorkingDir,
		},
		// The layer is uncompressed, so its digest is also its diff ID.
		RootFS: rootFS{Type: "layers", DiffIDs: []string{layer.digest}},
	})
	if err != nil {
		return "", fmt.Errorf("image %s: config: %w", spec.Ref, err)
	}
	imageManifest, err := jsonBlob(manifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        descriptor{MediaType: mediaTypeConfig, Digest: config.digest, Size: config.size},
		Layers:        []descriptor{{MediaType: mediaTypeLayer, Digest: layer.digest, Size: layer.size}},
	})
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", spec.Ref, err)
	}
	imageIndex, err := json.Marshal(index{
		SchemaVersion: 2,
		MediaType:     mediaTypeIndex,
		Manifests: []descriptor{{
			MediaType: mediaTypeManifest,
			Digest:    imageManifest.digest,
			Size:      imageManifest.size,
			Platform:  &platform{Architecture: runtime.GOARCH, OS: "linux"},
			Annotations: map[string]string{
				annotationImageName: spec.Ref,
				annotationRefName:   tag,
			},
		}},
	})
	if err != nil {
		return "", fmt.Errorf("image %s: index: %w", spec.Ref, err)
	}
	layout, err := json.Marshal(ociLayout{ImageLayoutVersion: ociLayoutVersion})
	if err != nil {
		return "", fmt.Errorf("image %s: oci-layout: %w", spec.Ref, err)
	}

	blobs := []blob{config, imageManifest, layer}
	if err := writeLayoutTar(tarPath, layout, imageIndex, blobs); err != nil {
		return "", fmt.Errorf("image %s: write %s: %w", spec.Ref, tarPath, err)
	}
	return imageManifest.digest, nil
}

func jsonBlob(v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), size: int64(len(data)), data: data}, nil
}

// writeLayerBlob writes the layer to a temporary file in dir, hashing it on
// the way: the outer tar needs the digest in the blob's name before the
// content can follow.
func writeLayerBlob(dir string, entries []Entry) (blob, error) {
	f, err := os.CreateTemp(dir, ".layer-*.tar")
	if err != nil {
		return blob{}, err
	}
	hash := sha256.New()
	buf := bufio.NewWriterSize(io.MultiWriter(f, hash), 1<<20)
	err = writeLayer(buf, entries)
	if err == nil {
		err = buf.Flush()
	}
	var size int64
	if err == nil {
		size, err = f.Seek(0, io.SeekCurrent)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return blob{}, err
	}
	return blob{digest: "sha256:" + hex.EncodeToString(hash.Sum(nil)), size: size, file: f}, nil
}

// writeLayoutTar writes the image layout with its names in sorted order and
// renames it into place only once it is complete.
func writeLayoutTar(tarPath string, layout, imageIndex []byte, blobs []blob) error {
	out, err := os.CreateTemp(filepath.Dir(tarPath), "."+filepath.Base(tarPath)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		_ = out.Close()
		_ = os.Remove(out.Name()) // fails harmlessly once renamed
	}()
	buf := bufio.NewWriterSize(out, 1<<20)
	tw := tar.NewWriter(buf)

	sort.Slice(blobs, func(i, j int) bool { return blobs[i].digest < blobs[j].digest })
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, b := range blobs {
		name := "blobs/sha256/" + b.digest[len("sha256:"):]
		if err := writeTarFile(tw, name, b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := writeTarFile(tw, "index.json", blob{data: imageIndex, size: int64(len(imageIndex))}); err != nil {
		return err
	}
	if err := writeTarFile(tw, "oci-layout", blob{data: layout, size: int64(len(layout))}); err != nil {
		return err
	}

	if err := tw.Close(); err != nil {
		return err
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	if err := out.Chmod(0o644); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), tarPath)
}

func writeTarFile(tw *tar.Writer, name string, b blob) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: b.size, ModTime: epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if b.file == nil {
		_, err := tw.Write(b.data)
		return err
	}
	if _, err := b.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.CopyN(tw, b.file, b.size)
	return err
}
