package checkpoint

import (
	"path/filepath"

	"github.com/gpudra/gpudra/internal/fsutil"
)

// tempPrefix names the temp files writeFileAtomic leaves behind when the
// process dies between creating and renaming one.
func tempPrefix(path string) string { return filepath.Base(path) + ".tmp-" }

// writeFileAtomic replaces path with data so that after a crash at any point
// path holds either the old or the new contents, and once it returns the new
// contents survive a power loss.
func writeFileAtomic(path string, data []byte) error {
	return fsutil.WriteFileAtomic(path, data, fsutil.AtomicWrite{TempPrefix: tempPrefix(path)})
}

func syncDir(dir string) error { return fsutil.SyncDir(dir) }

// removeStaleTempFiles deletes the temp files a crashed writer left next to
// path. The target itself is intact: rename is atomic.
func removeStaleTempFiles(path string) ([]string, error) {
	return fsutil.RemoveTempFiles(filepath.Dir(path), tempPrefix(path))
}
