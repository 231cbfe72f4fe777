package cdi

import (
	"path/filepath"

	"github.com/gpudra/gpudra/internal/fsutil"
)

// tempPrefix names a spec's temp files. The leading dot and the ".tmp-"
// suffix keep them out of the runtime's view: CDI only reads *.json and
// *.yaml.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// writeFileAtomic replaces path with data, mode 0644 (the runtime may read
// specs as another user). check runs on the synced temp file before the
// rename; if it fails, path is left as it was.
func writeFileAtomic(path string, data []byte, check func(tmpPath string) error) error {
	return fsutil.WriteFileAtomic(path, data, fsutil.AtomicWrite{TempPrefix: tempPrefix(path), Mode: 0o644, Check: check})
}

func syncDir(dir string) error { return fsutil.SyncDir(dir) }
