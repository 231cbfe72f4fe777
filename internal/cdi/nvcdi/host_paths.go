package nvcdi

import (
	"fmt"

	"github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi/transform"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// toHostPaths rewrites host paths in edits, in place, from the roots this
// process sees to the roots the container runtime sees.
func (e *Editor) toHostPaths(edits *cdispec.ContainerEdits) error {
	return applyToEdits(e.hostPaths, edits)
}

// applyToEdits runs a toolkit transformer, which works on whole specs, on
// one set of edits.
func applyToEdits(t transform.Transformer, edits *cdispec.ContainerEdits) error {
	spec := cdispec.Spec{ContainerEdits: *edits}
	if err := t.Transform(&spec); err != nil {
		return fmt.Errorf("rewrite host paths: %w", err)
	}
	*edits = spec.ContainerEdits
	return nil
}
