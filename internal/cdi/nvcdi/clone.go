package nvcdi

import (
	"encoding/json"
	"fmt"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// cloneEdits deep-copies edits. A JSON round trip copies every field the
// CDI spec defines, including ones added in later spec versions, which a
// hand-written copy would silently drop.
func cloneEdits(edits *cdispec.ContainerEdits) (*cdispec.ContainerEdits, error) {
	data, err := json.Marshal(edits)
	if err != nil {
		return nil, fmt.Errorf("copy container edits: %w", err)
	}
	var clone cdispec.ContainerEdits
	if err := json.Unmarshal(data, &clone); err != nil {
		return nil, fmt.Errorf("copy container edits: %w", err)
	}
	return &clone, nil
}
