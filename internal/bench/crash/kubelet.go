package crash

import (
	"context"
	"fmt"
	"slices"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
)

// callTimeout is the kubelet's deadline for one DRA call.
const callTimeout = 10 * time.Second

// claimState is what the kubelet knows of one claim: whether its last
// successful call was a prepare, which call it still owes, and what the
// plugin answered.
type claimState struct {
	claim *resourceapi.ResourceClaim
	// prepared: the last call that succeeded was a prepare.
	prepared bool
	// pending is "prepare" or "unprepare" while a call has not succeeded.
	pending string
	// ids are the CDI device IDs of the last successful prepare.
	ids []string
	// touched: a prepare was ever attempted (the kubelet unprepares such
	// claims when their pod goes).
	touched bool
	// config is the claim's opaque GpuConfig (sharing mode); "" for none.
	config string
}

// kubelet plays the kubelet's part for a set of claims.
type kubelet struct {
	client kubernetes.Interface
	driver string
	claims []*claimState
}

// call runs one prepare or unprepare for claims over plugin's socket and
// updates what the kubelet knows. An error means the call as a whole failed
// (the plugin died); a claim's own error is returned as a claim error.
func (k *kubelet) call(ctx context.Context, p *Plugin, op string, claims []*claimState) error {
	var req []*drapb.Claim
	for _, c := range claims {
		c.pending = op
		if op == "prepare" {
			c.touched = true
		}
		req = append(req, &drapb.Claim{Namespace: c.claim.Namespace, Name: c.claim.Name, Uid: string(c.claim.UID)})
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var errs []string
	switch op {
	case "prepare":
		resp, err := p.Kubelet.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: req})
		if err != nil {
			return err
		}
		for _, c := range claims {
			r := resp.Claims[string(c.claim.UID)]
			if r == nil || r.Error != "" {
				errs = append(errs, fmt.Sprintf("prepare %s: %v", c.claim.Name, r))
				continue
			}
			var ids []string
			for _, d := range r.Devices {
				ids = append(ids, d.CdiDeviceIds...)
			}
			slices.Sort(ids)
			c.ids, c.prepared, c.pending = ids, true, ""
		}
	case "unprepare":
		resp, err := p.Kubelet.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: req})
		if err != nil {
			return err
		}
		for _, c := range claims {
			r := resp.Claims[string(c.claim.UID)]
			if r == nil || r.Error != "" {
				errs = append(errs, fmt.Sprintf("unprepare %s: %v", c.claim.Name, r))
				continue
			}
			c.ids, c.prepared, c.pending = nil, false, ""
		}
	}
	if len(errs) > 0 {
		return claimErrors(errs)
	}
	return nil
}

// claimErrors are failures of single claims in a call that itself worked.
type claimErrors []string

func (e claimErrors) Error() string { return fmt.Sprint([]string(e)) }

// retryPending repeats, after a restart, every call that did not succeed,
// as the kubelet does.
func (k *kubelet) retryPending(ctx context.Context, p *Plugin) error {
	for _, op := range []string{"unprepare", "prepare"} {
		var todo []*claimState
		for _, c := range k.claims {
			if c.pending == op {
				todo = append(todo, c)
			}
		}
		if len(todo) == 0 {
			continue
		}
		if err := k.call(ctx, p, op, todo); err != nil {
			return fmt.Errorf("retry %s: %w", op, err)
		}
	}
	return nil
}

// reallocate gives an unprepared claim another device, as deallocation and
// a new scheduling decision do: the allocation is cleared, then set.
func (k *kubelet) reallocate(ctx context.Context, c *claimState, device, pool string) error {
	claims := k.client.ResourceV1().ResourceClaims(c.claim.Namespace)
	cur := c.claim.DeepCopy()
	cur.Status.Allocation = nil
	cleared, err := claims.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("deallocate %s: %w", c.claim.Name, err)
	}
	cleared.Status.Allocation = allocation(k.driver, pool, device, c.config)
	updated, err := claims.UpdateStatus(ctx, cleared, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("allocate %s: %w", c.claim.Name, err)
	}
	c.claim = updated
	return nil
}

func allocation(driver, pool, device, config string) *resourceapi.AllocationResult {
	a := &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{
		Results: []resourceapi.DeviceRequestAllocationResult{{Request: "gpu", Driver: driver, Pool: pool, Device: device}},
	}}
	if config != "" {
		a.Devices.Config = []resourceapi.DeviceAllocationConfiguration{{
			Source:   resourceapi.AllocationConfigSourceClaim,
			Requests: []string{"gpu"},
			DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{
				Driver: driver, Parameters: runtime.RawExtension{Raw: []byte(config)},
			}},
		}}
	}
	return a
}

// allocatedDevice is the claim's one allocated device.
func allocatedDevice(c *resourceapi.ResourceClaim) string {
	if c.Status.Allocation == nil || len(c.Status.Allocation.Devices.Results) == 0 {
		return ""
	}
	return c.Status.Allocation.Devices.Results[0].Device
}
