package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// epoch is every entry's modification time: host mtimes would make the same
// inputs give a different digest on every build.
var epoch = time.Unix(0, 0).UTC()

// writeLayer writes entries, already validated and sorted by layerEntries,
// as an uncompressed tar owned by root.
func writeLayer(w io.Writer, entries []Entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := writeLayerEntry(tw, e); err != nil {
			return fmt.Errorf("image entry /%s: %w", e.Path, err)
		}
	}
	return tw.Close()
}

func writeLayerEntry(tw *tar.Writer, e Entry) error {
	hdr := &tar.Header{Name: e.Path, ModTime: epoch, Mode: tarMode(e.Mode)}
	switch e.Kind {
	case KindDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case KindSymlink:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = e.Target
		hdr.Mode = 0o777
		return tw.WriteHeader(hdr)
	case KindFile:
		hdr.Typeflag = tar.TypeReg
		if e.HostPath == "" {
			hdr.Size = int64(len(e.Data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err := tw.Write(e.Data)
			return err
		}
		return writeHostFile(tw, hdr, e.HostPath)
	default:
		return fmt.Errorf("unknown kind %v", e.Kind)
	}
}

func writeHostFile(tw *tar.Writer, hdr *tar.Header, hostPath string) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("host file %s is a %v, not a regular file", hostPath, info.Mode().Type())
	}
	hdr.Size = info.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("copy host file %s: %w", hostPath, err)
	}
	return nil
}

// tarMode converts Go's mode bits to the Unix bits a tar header carries.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
