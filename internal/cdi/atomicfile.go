package cdi

import (
	"path/filepath"

	"github.com/gpudra/gpudra/internal/fsutil"
)

// Failpoints of writing and deleting a spec (see package failpoint).
const (
	// FailpointBeforeWrite is hit with the spec encoded, before the temp
	// file is created.
	FailpointBeforeWrite = "cdi/before-write"
	// FailpointAfterTempSync is hit once the temp file is written, fsynced
	// and validated, before it is renamed over the spec.
	FailpointAfterTempSync = "cdi/after-temp-sync"
	// FailpointAfterRename is hit once the new spec is in place, before the
	// directory is fsynced.
	FailpointAfterRename = "cdi/after-rename"
	// FailpointBeforeRemove is hit before a spec file is removed.
	FailpointBeforeRemove = "cdi/before-remove"
	// FailpointAfterRemove is hit once a spec file is removed, before the
	// directory is fsynced.
	FailpointAfterRemove = "cdi/after-remove"
)

// tempPrefix names a spec's temp files. The leading dot and the ".tmp-"
// suffix keep them out of the runtime's view: CDI only reads *.json and
// *.yaml.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// writeFileAtomic replaces path with data, mode 0644 (the runtime may read
// specs as another user). check runs on the synced temp file before the
// rename; if it fails, path is left as it was.
func writeFileAtomic(fsys fsutil.FS, path string, data []byte, check func(tmpPath string) error) error {
	return fsutil.WriteFileAtomic(fsys, path, data, fsutil.AtomicWrite{
		TempPrefix:    tempPrefix(path),
		Mode:          0o644,
		Check:         check,
		AfterTempSync: FailpointAfterTempSync,
		AfterRename:   FailpointAfterRename,
	})
}
