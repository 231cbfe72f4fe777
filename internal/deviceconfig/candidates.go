package deviceconfig

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
)

// candidate is one decoded opaque config of our driver from the allocation.
type candidate struct {
	// index is the position in status.allocation.devices.config, which is
	// how a user finds the entry we complain about.
	index     int
	fromClaim bool
	requests  []string
	// namesAll is set for a config that named every request of the claim:
	// the allocator clears Requests then ("empty means all"), but such a
	// config still counts as naming the requests (it reaches devices of any
	// type and outranks unnamed configs), unlike one the user wrote without
	// requests.
	namesAll bool
	config   v1beta1.Config
}

// String names the config in error messages.
func (c *candidate) String() string {
	source := "class"
	if c.fromClaim {
		source = "claim"
	}
	requests := "all requests"
	switch {
	case len(c.requests) > 0:
		requests = "requests " + strings.Join(c.requests, ", ")
	case c.namesAll:
		requests = "every request, by name"
	}
	return fmt.Sprintf("config #%d (from %s, %s)", c.index, source, requests)
}

// decodeCandidates parses every opaque config addressed to driverName.
// specConfigs are the claim's own configs (spec.devices.config): the
// allocator copies them into the allocation in order, but clears Requests of
// a config that names every request, so the names are taken from the spec.
func decodeCandidates(configs []resourceapi.DeviceAllocationConfiguration, specConfigs []resourceapi.DeviceClaimConfiguration, driverName string) ([]*candidate, error) {
	var candidates []*candidate
	claimConfigs := 0
	for i, entry := range configs {
		var spec *resourceapi.DeviceClaimConfiguration
		if entry.Source == resourceapi.AllocationConfigSourceClaim {
			if claimConfigs < len(specConfigs) {
				spec = &specConfigs[claimConfigs]
			}
			claimConfigs++
		}
		opaque := entry.Opaque
		if opaque == nil || opaque.Driver != driverName {
			continue
		}
		c := &candidate{index: i, requests: entry.Requests}
		switch entry.Source {
		case resourceapi.AllocationConfigSourceClass:
			// The allocator names the request on every class config; none
			// left means it named them all.
			c.namesAll = len(entry.Requests) == 0
		case resourceapi.AllocationConfigSourceClaim:
			c.fromClaim = true
			if len(entry.Requests) == 0 && spec != nil && len(spec.Requests) > 0 && sameOpaque(spec.Opaque, opaque) {
				c.requests = spec.Requests
			}
		default:
			return nil, fmt.Errorf("config #%d: unknown source %q", i, entry.Source)
		}
		config, err := v1beta1.Parse(opaque.Parameters.Raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		c.config = config
		candidates = append(candidates, c)
	}
	return candidates, nil
}

// bestCandidate returns the config that applies to a device of type typ
// allocated for request, or nil if none does.
func bestCandidate(candidates []*candidate, request string, typ DeviceType) *candidate {
	var best *candidate
	for _, c := range candidates {
		if !c.appliesTo(request, typ) {
			continue
		}
		if best == nil || c.outranks(best) {
			best = c
		}
	}
	return best
}

// appliesTo reports whether c reaches a device of type typ allocated for
// request. A config naming the request reaches it whatever its type (a wrong
// type is then the user's error); one naming no request only reaches devices
// of its type, as upstream does, so one unnamed GpuConfig in a claim that
// also gets MIG devices is not an error.
func (c *candidate) appliesTo(request string, typ DeviceType) bool {
	if !c.named() {
		return configType(c.config) == typ
	}
	return c.names(request)
}

// named reports whether the config names requests (all of them, perhaps).
func (c *candidate) named() bool { return len(c.requests) > 0 || c.namesAll }

// names reports whether c lists request, or the parent of the subrequest
// request ("req" for "req/sub").
func (c *candidate) names(request string) bool {
	if c.namesAll {
		return true
	}
	parent, _, isSubrequest := strings.Cut(request, "/")
	return slices.Contains(c.requests, request) || (isSubrequest && slices.Contains(c.requests, parent))
}

// outranks reports whether c takes precedence over other: claim over class,
// then named over unnamed, then later over earlier.
func (c *candidate) outranks(other *candidate) bool {
	if c.fromClaim != other.fromClaim {
		return c.fromClaim
	}
	if named, otherNamed := c.named(), other.named(); named != otherNamed {
		return named
	}
	return c.index > other.index
}

// sameOpaque tells whether two opaque configs are the same one.
func sameOpaque(a, b *resourceapi.OpaqueDeviceConfiguration) bool {
	return a != nil && b != nil && a.Driver == b.Driver && bytes.Equal(a.Parameters.Raw, b.Parameters.Raw)
}
