package cdi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/fsutil"
)

// Defaults matching the upstream NVIDIA DRA driver, so that CDI IDs look the
// same to anything that inspects them.
const (
	DefaultDir    = "/var/run/cdi"
	DefaultVendor = "k8s.gpu.nvidia.com"
	DefaultClass  = "claim"
)

// specExt is the encoding of our spec files. JSON is what the runtime's
// YAML parser reads fastest and what operators grep.
const specExt = ".json"

// Writer writes, deletes and lists the per-claim CDI specs in one
// directory. It is safe for concurrent use on different claims; callers
// serialize work on the same claim.
type Writer struct {
	dir    string
	vendor string
	class  string
	editor Editor
	fs     fsutil.FS
}

// WriterOption configures NewWriter.
type WriterOption func(*Writer)

// WithFS makes the writer use fsys instead of fsutil.OS; tests pass an
// fsfault.FS to fail single steps. The spec check before the rename reads
// the temp file by its OS path, so fsys must act on the real file system.
func WithFS(fsys fsutil.FS) WriterOption {
	return func(w *Writer) { w.fs = fsys }
}

// NewWriter returns a Writer for the CDI directory dir, naming devices
// "<vendor>/<class>=<claimUID>-<deviceName>", with editor deciding what each
// device puts into a container.
func NewWriter(dir, vendor, class string, editor Editor, opts ...WriterOption) (*Writer, error) {
	if dir == "" {
		return nil, errors.New("CDI writer: empty directory")
	}
	if err := parser.ValidateVendorName(vendor); err != nil {
		return nil, fmt.Errorf("CDI writer: %w", err)
	}
	if err := parser.ValidateClassName(class); err != nil {
		return nil, fmt.Errorf("CDI writer: %w", err)
	}
	if editor == nil {
		return nil, errors.New("CDI writer: no editor")
	}
	w := &Writer{dir: dir, vendor: vendor, class: class, editor: editor, fs: fsutil.OS}
	for _, opt := range opts {
		opt(w)
	}
	return w, nil
}

// WriteClaimSpec writes the spec for a claim's devices, replacing any
// earlier one, and returns the CDI device IDs in the order of devs. The spec
// records the claim and each device's request and pool (see ReadClaimSpec).
func (w *Writer) WriteClaimSpec(ctx context.Context, claim ClaimRef, devs []Device) ([]string, error) {
	claimUID := claim.UID
	if err := validateClaimUID(claimUID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("claim %s: CDI spec: %w", claimUID, err)
	}
	spec, ids, err := buildSpec(w.vendor, w.class, claim, devs, w.editor)
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("claim %s: encode CDI spec: %w", claimUID, err)
	}
	data = append(data, '\n')

	if err := w.fs.MkdirAll(w.dir, 0o755); err != nil {
		return nil, fmt.Errorf("claim %s: CDI directory: %w", claimUID, err)
	}
	path := w.specPath(claimUID)
	// Validate the exact bytes the runtime will read, with the parser it
	// will read them with, before they become visible.
	validate := func(tmpPath string) error {
		if _, err := cdilib.ReadSpec(tmpPath, 0); err != nil {
			return fmt.Errorf("CDI spec rejected: %w", err)
		}
		return nil
	}
	failpoint.Hit(FailpointBeforeWrite)
	if err := writeFileAtomic(w.fs, path, data, validate); err != nil {
		return nil, fmt.Errorf("claim %s: write CDI spec: %w", claimUID, err)
	}
	klog.FromContext(ctx).V(5).Info("Wrote CDI spec", "claim", claim.String(), "path", path, "devices", ids)
	return ids, nil
}

// DeleteClaimSpec removes a claim's spec. A missing spec is not an error.
func (w *Writer) DeleteClaimSpec(ctx context.Context, claimUID string) error {
	if err := validateClaimUID(claimUID); err != nil {
		return err
	}
	path := w.specPath(claimUID)
	failpoint.Hit(FailpointBeforeRemove)
	err := w.fs.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s: delete CDI spec: %w", claimUID, err)
	}
	failpoint.Hit(FailpointAfterRemove)
	if err := fsutil.SyncDir(w.fs, w.dir); err != nil {
		return fmt.Errorf("claim %s: delete CDI spec: %w", claimUID, err)
	}
	klog.FromContext(ctx).V(5).Info("Deleted CDI spec", "claimUID", claimUID, "path", path)
	return nil
}

// ListClaimSpecs returns the UIDs of the claims that have a spec in the
// directory, sorted, so that specs of claims no longer prepared can be
// deleted. Other vendors' and classes' files are not listed.
func (w *Writer) ListClaimSpecs() ([]string, error) {
	entries, err := w.fs.ReadDir(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list CDI specs: %w", err)
	}
	prefix := w.specNamePrefix()
	var uids []string
	// ReadDir sorts by file name; with a common prefix that sorts the UIDs.
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, specExt) {
			continue
		}
		uid := strings.TrimSuffix(strings.TrimPrefix(name, prefix), specExt)
		if validateClaimUID(uid) == nil {
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

// RemoveStaleTempFiles deletes temp files left by writes that a crash
// interrupted. Call it before any WriteClaimSpec: it cannot tell a stale
// temp file from one being written.
func (w *Writer) RemoveStaleTempFiles() ([]string, error) {
	entries, err := w.fs.ReadDir(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list CDI directory: %w", err)
	}
	prefix := "." + w.specNamePrefix()
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, prefix) || !strings.Contains(name, specExt+".tmp-") {
			continue
		}
		path := filepath.Join(w.dir, name)
		if err := w.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove stale CDI temp file %s: %w", path, err)
		}
		removed = append(removed, path)
	}
	return removed, nil
}

// specPath is the claim's spec file, named with the CDI library's
// convention for specs whose lifetime is tied to something else.
func (w *Writer) specPath(claimUID string) string {
	return filepath.Join(w.dir, cdilib.GenerateTransientSpecName(w.vendor, w.class, claimUID)+specExt)
}

// specNamePrefix is what GenerateTransientSpecName puts before the claim UID.
func (w *Writer) specNamePrefix() string {
	return cdilib.GenerateSpecName(w.vendor, w.class) + "_"
}

// validateClaimUID rejects UIDs that would not make a CDI device name or
// that could point outside the CDI directory. Kubernetes UIDs always pass.
func validateClaimUID(uid string) error {
	if err := parser.ValidateDeviceName(uid); err != nil {
		return fmt.Errorf("claim %q: not usable in a CDI spec: %w", uid, err)
	}
	return nil
}
