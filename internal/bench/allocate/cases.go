package allocate

import (
	"fmt"
	"sort"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// Case is one kind of claim and the nodes it is scheduled on.
type Case struct {
	// Name is what the command's --cases flag takes.
	Name string
	// Description says what one claim asks for.
	Description string
	// Node describes simulated node number index. The node's name seeds its
	// UUIDs, so nodes with the same Config still have distinct devices.
	Node func(index int) *sim.Config
	// Claim builds one claim; name is unique within a run.
	Claim func(name string) *resourceapi.ResourceClaim
	// MinimalAttributes are the attributes the minimal layout keeps: "type",
	// which the DeviceClasses select on, and whatever the claim needs.
	MinimalAttributes []resourceapi.QualifiedName
}

// CELSelector picks an H100 with at least 80Gi through attributes and
// capacity, the way a user would write it.
const CELSelector = "device.attributes['gpu.nvidia.com'].productName.matches('H100') && " +
	"device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('80Gi')) >= 0"

// MIGProfile is the profile the MIG case asks for, two at a time.
const MIGProfile = "1g.10gb"

// ParentUUIDAttribute is the attribute the MIG case's constraint matches on.
const ParentUUIDAttribute resourceapi.FullyQualifiedName = DriverName + "/parentUUID"

// Cases returns the benchmark's cases in the order they are reported.
func Cases() []Case {
	dgxh100 := func(int) *sim.Config { return &sim.Config{Profile: "dgxh100"} }
	return []Case{
		{
			Name:        "gpu",
			Description: "one whole GPU from class " + GPUClass,
			Node:        dgxh100,
			Claim: func(name string) *resourceapi.ResourceClaim {
				return newClaim(name, exactRequest("gpu", GPUClass, 1, ""), nil)
			},
			MinimalAttributes: []resourceapi.QualifiedName{"type"},
		},
		{
			Name:        "cel",
			Description: "one GPU from class " + GPUClass + " selected by CEL on productName and memory",
			Node:        dgxh100,
			Claim: func(name string) *resourceapi.ResourceClaim {
				return newClaim(name, exactRequest("gpu", GPUClass, 1, CELSelector), nil)
			},
			MinimalAttributes: []resourceapi.QualifiedName{"type", "productName"},
		},
		{
			Name:        "mig",
			Description: fmt.Sprintf("two %s MIG devices from class %s on one parent GPU", MIGProfile, MIGClass),
			Node:        func(int) *sim.Config { return migNode() },
			Claim: func(name string) *resourceapi.ResourceClaim {
				return newClaim(name,
					exactRequest("mig", MIGClass, 2, fmt.Sprintf("device.attributes['%s'].profile == '%s'", DriverName, MIGProfile)),
					[]resourceapi.DeviceConstraint{{MatchAttribute: ptr.To(ParentUUIDAttribute)}})
			},
			MinimalAttributes: []resourceapi.QualifiedName{"type", "parentUUID", "profile"},
		},
	}
}

// CaseNames lists the names Cases returns, in order.
func CaseNames() []string {
	var names []string
	for _, c := range Cases() {
		names = append(names, c.Name)
	}
	return names
}

// CaseByName returns the named case.
func CaseByName(name string) (Case, error) {
	for _, c := range Cases() {
		if c.Name == name {
			return c, nil
		}
	}
	names := CaseNames()
	sort.Strings(names)
	return Case{}, fmt.Errorf("unknown case %q (valid: %v)", name, names)
}

// migNode is a DGX H100 whose eight GPUs are in MIG mode, each cut into
// four 1g.10gb devices and one 3g.40gb device (all seven compute slices).
// The 3g.40gb devices are never asked for: they are the devices the
// profile selector must look at and reject.
func migNode() *sim.Config {
	var devices []sim.MIGDeviceConfig
	for start := range 4 {
		devices = append(devices, sim.MIGDeviceConfig{Profile: MIGProfile, Placement: ptr.To(start)})
	}
	devices = append(devices, sim.MIGDeviceConfig{Profile: "3g.40gb", Placement: ptr.To(4)})
	return &sim.Config{GPUs: []sim.GPUConfig{{
		Model: "h100-sxm5-80gb", Count: ptr.To(8), MIGEnabled: true, MIGDevices: devices,
	}}}
}

func exactRequest(name, class string, count int64, selector string) resourceapi.DeviceRequest {
	req := resourceapi.DeviceRequest{
		Name: name,
		Exactly: &resourceapi.ExactDeviceRequest{
			DeviceClassName: class,
			AllocationMode:  resourceapi.DeviceAllocationModeExactCount,
			Count:           count,
		},
	}
	if selector != "" {
		req.Exactly.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: selector}}}
	}
	return req
}

// newClaim builds a claim as the API server stores it: defaults filled in,
// with a UID, since the allocator sees only stored claims.
func newClaim(name string, request resourceapi.DeviceRequest, constraints []resourceapi.DeviceConstraint) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name, UID: types.UID("bench-" + name)},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
			Requests:    []resourceapi.DeviceRequest{request},
			Constraints: constraints,
		}},
	}
}
