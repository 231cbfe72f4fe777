package deviceconfig

import (
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

// decodeCandidates parses every opaque config of the claim's allocation
// addressed to driverName.
//
// Requests the allocator left on a config are the ones the user wrote and
// are matched by name. A claim config without requests is either one the
// user left unnamed or one the allocator cleared because it names every
// request (or the subrequest chosen for it); which one is recovered from
// spec.devices.config by content, not position: the allocator drops claim
// configs that name only subrequests it did not choose, so positions shift.
func decodeCandidates(claim *resourceapi.ResourceClaim, driverName string) ([]*candidate, error) {
	cleared := clearedClaimConfigs(claim)
	var candidates []*candidate
	for i, entry := range claim.Status.Allocation.Devices.Config {
		var origin *resourceapi.DeviceClaimConfiguration
		if entry.Source == resourceapi.AllocationConfigSourceClaim && len(entry.Requests) == 0 {
			// Consume the spec config even for other drivers' entries, so
			// that identical entries keep their order.
			origin = cleared.take(entry.Opaque)
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
			if origin != nil && len(origin.Requests) > 0 {
				c.requests = origin.Requests
				c.namesAll = true
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

// specConfigQueue holds the claim's own configs that reach the allocation
// without requests, grouped by content, each group in spec order.
type specConfigQueue struct {
	byContent map[string][]*resourceapi.DeviceClaimConfiguration
}

// clearedClaimConfigs returns the configs of spec.devices.config that the
// allocator copies with empty requests: the unnamed ones, and the named
// ones that name every request of the claim.
func clearedClaimConfigs(claim *resourceapi.ResourceClaim) *specConfigQueue {
	requests := allocatedRequests(claim)
	q := &specConfigQueue{byContent: map[string][]*resourceapi.DeviceClaimConfiguration{}}
	for i := range claim.Spec.Devices.Config {
		config := &claim.Spec.Devices.Config[i]
		if len(config.Requests) > 0 && !namesEvery(config.Requests, requests) {
			continue
		}
		key := opaqueKey(config.Opaque)
		q.byContent[key] = append(q.byContent[key], config)
	}
	return q
}

// take returns the next spec config with the given content, or nil if the
// spec has none left (then the entry is treated as unnamed, which is what
// empty requests mean in the API).
func (q *specConfigQueue) take(opaque *resourceapi.OpaqueDeviceConfiguration) *resourceapi.DeviceClaimConfiguration {
	key := opaqueKey(opaque)
	configs := q.byContent[key]
	if len(configs) == 0 {
		return nil
	}
	q.byContent[key] = configs[1:]
	return configs[0]
}

// opaqueKey identifies a config by content: driver and raw parameters.
func opaqueKey(opaque *resourceapi.OpaqueDeviceConfiguration) string {
	if opaque == nil {
		return ""
	}
	return opaque.Driver + "\x00" + string(opaque.Parameters.Raw)
}

// allocatedRequest is a request of the claim as the allocator resolved it.
type allocatedRequest struct {
	name string
	// chosen is the subrequest the allocator picked for a firstAvailable
	// request; "" for other requests.
	chosen string
}

// allocatedRequests lists the claim's requests with the subrequest chosen
// for each firstAvailable one, which the results name ("req/sub"): the
// allocator gives every request at least one device (a request for all
// devices of a selector that matches none does not fit). A claim without
// spec requests (only in tests) is described by its results.
func allocatedRequests(claim *resourceapi.ResourceClaim) []allocatedRequest {
	chosen := map[string]string{}
	var fromResults []allocatedRequest
	for _, r := range claim.Status.Allocation.Devices.Results {
		parent, sub, _ := strings.Cut(r.Request, "/")
		if _, seen := chosen[parent]; seen {
			continue
		}
		chosen[parent] = sub
		fromResults = append(fromResults, allocatedRequest{name: parent, chosen: sub})
	}
	if len(claim.Spec.Devices.Requests) == 0 {
		return fromResults
	}
	requests := make([]allocatedRequest, 0, len(claim.Spec.Devices.Requests))
	for _, r := range claim.Spec.Devices.Requests {
		requests = append(requests, allocatedRequest{name: r.Name, chosen: chosen[r.Name]})
	}
	return requests
}

// namesEvery reports whether names covers every request, as the allocator
// decides it before clearing a config's requests: by the request's name or
// the name of the subrequest chosen for it.
func namesEvery(names []string, requests []allocatedRequest) bool {
	for _, r := range requests {
		if slices.Contains(names, r.name) {
			continue
		}
		if r.chosen != "" && slices.Contains(names, r.name+"/"+r.chosen) {
			continue
		}
		return false
	}
	return true
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
