package cdi

import (
	"errors"
	"fmt"
	"strings"

	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
)

// Annotations that tie a spec to its claim, so that the checkpoint can be
// rebuilt from the specs on disk. The runtime ignores them.
const (
	annotationDomain = "gpudra.nvidia.com/"
	// On the spec.
	AnnotationClaimUID       = annotationDomain + "claim-uid"
	AnnotationClaimNamespace = annotationDomain + "claim-namespace"
	AnnotationClaimName      = annotationDomain + "claim-name"
	// On each device.
	AnnotationRequest = annotationDomain + "request"
	AnnotationPool    = annotationDomain + "pool"
	AnnotationDevice  = annotationDomain + "device"
	// AnnotationAdminAccess is "true" on a device with admin access.
	AnnotationAdminAccess = annotationDomain + "admin-access"
)

// ClaimRef identifies the ResourceClaim a spec is written for.
type ClaimRef struct {
	UID, Namespace, Name string
}

func (c ClaimRef) String() string {
	if c.Namespace == "" && c.Name == "" {
		return c.UID
	}
	return fmt.Sprintf("%s/%s (%s)", c.Namespace, c.Name, c.UID)
}

// ClaimSpec is what a claim's spec file says about the claim.
type ClaimSpec struct {
	Claim   ClaimRef
	Devices []SpecDevice
	// Annotated is false for a spec written before specs carried
	// annotations: Claim then has only the UID (from the file name), and
	// devices only Name (from the CDI device name) and CDIDeviceID.
	Annotated bool
}

// SpecDevice is one device of a claim's spec.
type SpecDevice struct {
	// Name is the DRA device name, e.g. "gpu-3".
	Name    string
	Request string
	Pool    string
	// AdminAccess: the device was allocated with admin access.
	AdminAccess bool
	// CDIDeviceID is the qualified CDI device ID handed to the kubelet.
	CDIDeviceID string
}

func claimAnnotations(claim ClaimRef) map[string]string {
	a := map[string]string{AnnotationClaimUID: claim.UID}
	if claim.Namespace != "" {
		a[AnnotationClaimNamespace] = claim.Namespace
	}
	if claim.Name != "" {
		a[AnnotationClaimName] = claim.Name
	}
	return a
}

func deviceAnnotations(dev Device) map[string]string {
	a := map[string]string{AnnotationDevice: dev.Name}
	if dev.Request != "" {
		a[AnnotationRequest] = dev.Request
	}
	if dev.Pool != "" {
		a[AnnotationPool] = dev.Pool
	}
	if dev.AdminAccess {
		a[AnnotationAdminAccess] = "true"
	}
	return a
}

// ReadClaimSpec reads back the spec of a claim. A missing spec is an error
// satisfying errors.Is(err, fs.ErrNotExist). A spec written by an older
// gpudra, without annotations, is read from its names (see ClaimSpec).
func (w *Writer) ReadClaimSpec(claimUID string) (ClaimSpec, error) {
	if err := validateClaimUID(claimUID); err != nil {
		return ClaimSpec{}, err
	}
	path := w.specPath(claimUID)
	data, err := w.fs.ReadFile(path)
	if err != nil {
		return ClaimSpec{}, fmt.Errorf("claim %s: read CDI spec: %w", claimUID, err)
	}
	raw, err := cdilib.ParseSpec(data)
	if err == nil && raw == nil {
		err = errors.New("empty file")
	}
	if err != nil {
		return ClaimSpec{}, fmt.Errorf("claim %s: CDI spec %s: %w", claimUID, path, err)
	}
	if want := w.vendor + "/" + w.class; raw.Kind != want {
		return ClaimSpec{}, fmt.Errorf("claim %s: CDI spec %s: kind %q, want %q", claimUID, path, raw.Kind, want)
	}

	cs := ClaimSpec{Claim: ClaimRef{UID: claimUID}}
	if uid, ok := raw.Annotations[AnnotationClaimUID]; ok {
		if uid != claimUID {
			return ClaimSpec{}, fmt.Errorf("claim %s: CDI spec %s: annotation %s is %q", claimUID, path, AnnotationClaimUID, uid)
		}
		cs.Annotated = true
		cs.Claim.Namespace = raw.Annotations[AnnotationClaimNamespace]
		cs.Claim.Name = raw.Annotations[AnnotationClaimName]
	}
	for _, d := range raw.Devices {
		dev := SpecDevice{
			Name:        d.Annotations[AnnotationDevice],
			Request:     d.Annotations[AnnotationRequest],
			Pool:        d.Annotations[AnnotationPool],
			AdminAccess: d.Annotations[AnnotationAdminAccess] == "true",
			CDIDeviceID: parser.QualifiedName(w.vendor, w.class, d.Name),
		}
		if dev.Name == "" {
			name, ok := strings.CutPrefix(d.Name, claimUID+"-")
			if !ok || name == "" {
				return ClaimSpec{}, fmt.Errorf("claim %s: CDI spec %s: device %q is not named <claim UID>-<device>", claimUID, path, d.Name)
			}
			dev.Name = name
		}
		cs.Devices = append(cs.Devices, dev)
	}
	return cs, nil
}
