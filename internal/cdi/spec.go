package cdi

import (
	"fmt"

	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// buildSpec assembles a claim's spec from the editor's edits and returns it
// with the qualified CDI device IDs, in the order of devs. It checks each
// piece as it goes so that an error can name the device at fault. The spec
// and its devices carry annotations that say which claim, request, pool and
// device they are for (see ReadClaimSpec).
func buildSpec(vendor, class string, claim ClaimRef, devs []Device, editor Editor) (*cdispec.Spec, []string, error) {
	claimUID := claim.UID
	if len(devs) == 0 {
		return nil, nil, fmt.Errorf("claim %s: no devices", claimUID)
	}
	spec := &cdispec.Spec{Kind: vendor + "/" + class, Annotations: claimAnnotations(claim)}

	claimEdits, err := editor.ClaimEdits(devs)
	if err != nil {
		return nil, nil, fmt.Errorf("claim %s: claim-wide container edits: %w", claimUID, err)
	}
	mps, err := mpsEdits(devs)
	if err != nil {
		return nil, nil, fmt.Errorf("claim %s: %w", claimUID, err)
	}
	if mps != nil {
		if claimEdits == nil {
			claimEdits = &cdispec.ContainerEdits{}
		}
		claimEdits.Env = append(claimEdits.Env, mps.Env...)
		claimEdits.Mounts = append(claimEdits.Mounts, mps.Mounts...)
	}
	if claimEdits != nil {
		if err := (&cdilib.ContainerEdits{ContainerEdits: claimEdits}).Validate(); err != nil {
			return nil, nil, fmt.Errorf("claim %s: claim-wide container edits: %w", claimUID, err)
		}
		spec.ContainerEdits = *claimEdits
	}

	ids := make([]string, 0, len(devs))
	seen := make(map[string]bool, len(devs))
	for _, dev := range devs {
		if seen[dev.Name] {
			return nil, nil, fmt.Errorf("claim %s device %s: listed twice", claimUID, dev.Name)
		}
		seen[dev.Name] = true
		name := cdiDeviceName(claimUID, dev.Name)
		if err := parser.ValidateDeviceName(name); err != nil {
			return nil, nil, fmt.Errorf("claim %s device %s: CDI device name: %w", claimUID, dev.Name, err)
		}
		edits, err := editor.DeviceEdits(dev)
		if err != nil {
			return nil, nil, fmt.Errorf("claim %s device %s: container edits: %w", claimUID, dev.Name, err)
		}
		// The CDI spec requires every device to change something; an empty
		// device would make the whole spec (and every device in it) invalid.
		if !hasEdits(edits) {
			return nil, nil, fmt.Errorf("claim %s device %s: container edits are empty", claimUID, dev.Name)
		}
		if err := (&cdilib.ContainerEdits{ContainerEdits: edits}).Validate(); err != nil {
			return nil, nil, fmt.Errorf("claim %s device %s: %w", claimUID, dev.Name, err)
		}
		spec.Devices = append(spec.Devices, cdispec.Device{Name: name, Annotations: deviceAnnotations(dev), ContainerEdits: *edits})
		ids = append(ids, parser.QualifiedName(vendor, class, name))
	}

	// The oldest version that carries every feature used lets the widest
	// range of container runtimes read the spec; the annotations make that
	// at least 0.6.0.
	version, err := cdispec.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("claim %s: CDI spec version: %w", claimUID, err)
	}
	spec.Version = version
	return spec, ids, nil
}

// cdiDeviceName is the CDI device name of a DRA device within a claim.
func cdiDeviceName(claimUID, deviceName string) string {
	return claimUID + "-" + deviceName
}

func hasEdits(e *cdispec.ContainerEdits) bool {
	return e != nil && (len(e.Env) > 0 || len(e.DeviceNodes) > 0 || len(e.NetDevices) > 0 ||
		len(e.Hooks) > 0 || len(e.Mounts) > 0 || e.IntelRdt != nil || len(e.AdditionalGIDs) > 0)
}
