package checkpoint

import (
	"path/filepath"

	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/fsutil"
)

// Failpoints of a checkpoint write (see package failpoint).
const (
	// FailpointBeforeWrite is hit with the new contents encoded, before the
	// temp file is created.
	FailpointBeforeWrite = "checkpoint/before-write"
	// FailpointAfterTempSync is hit once the temp file is written and
	// fsynced, before it is renamed over the checkpoint.
	FailpointAfterTempSync = "checkpoint/after-temp-sync"
	// FailpointAfterRename is hit once the temp file has replaced the
	// checkpoint, before the directory is fsynced.
	FailpointAfterRename = "checkpoint/after-rename"
)

// tempPrefix names the temp files writeFileAtomic leaves behind when the
// process dies between creating and renaming one.
func tempPrefix(path string) string { return filepath.Base(path) + ".tmp-" }

// writeFileAtomic replaces path with data so that after a crash at any point
// path holds either the old or the new contents, and once it returns the new
// contents survive a power loss.
func writeFileAtomic(fsys fsutil.FS, path string, data []byte) error {
	failpoint.Hit(FailpointBeforeWrite)
	return fsutil.WriteFileAtomic(fsys, path, data, fsutil.AtomicWrite{
		TempPrefix:    tempPrefix(path),
		AfterTempSync: FailpointAfterTempSync,
		AfterRename:   FailpointAfterRename,
	})
}

// removeStaleTempFiles deletes the temp files a crashed writer left next to
// path. The target itself is intact: rename is atomic.
func removeStaleTempFiles(fsys fsutil.FS, path string) ([]string, error) {
	return fsutil.RemoveTempFiles(fsys, filepath.Dir(path), tempPrefix(path))
}
