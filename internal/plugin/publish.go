package plugin

import (
	"context"
	"fmt"
	"strconv"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// publishFirst creates the node's ResourceSlices directly when the node has
// none yet, so a starting node is schedulable at once.
//
// Why: the shared resourceslice controller (behind kubeletplugin's
// PublishResources) starts an informer and then checks every full second
// whether it has synced, so its first publish always comes about 1 s after
// start. The slices written here are exactly what the controller would
// write — same generateName (index prefix, driver, node), pool generation 1,
// Node owner — so when its informer syncs it matches them by index, finds
// them equal and leaves them alone; all later reconciliation (updates,
// deletions, republishing after someone removes a slice) stays with the
// controller. When the node already has slices (a plugin restart), nothing
// is written here: they are visible already, and the controller updates
// them if they differ.
//
// It reports whether it created the slices.
func (d *Driver) publishFirst(ctx context.Context, res *resourceslice.DriverResources) (bool, error) {
	client := d.cfg.Client.ResourceV1().ResourceSlices()
	existing, err := client.List(ctx, metav1.ListOptions{
		FieldSelector: "spec.driver=" + d.cfg.DriverName + ",spec.nodeName=" + d.cfg.NodeName,
	})
	if err != nil {
		return false, fmt.Errorf("list existing ResourceSlices: %w", err)
	}
	if len(existing.Items) > 0 {
		return false, nil
	}
	node, err := d.cfg.Client.CoreV1().Nodes().Get(ctx, d.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("get node: %w", err)
	}
	pool := res.Pools[d.cfg.NodeName]
	indexLen := sliceIndexLength(len(pool.Slices))
	for i, s := range pool.Slices {
		slice := &resourceapi.ResourceSlice{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: fmt.Sprintf("%0*x-%s-%s-", indexLen, i, d.cfg.DriverName, d.cfg.NodeName),
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID, Controller: ptr.To(true),
				}},
			},
			Spec: resourceapi.ResourceSliceSpec{
				Driver:   d.cfg.DriverName,
				NodeName: ptr.To(d.cfg.NodeName),
				Pool: resourceapi.ResourcePool{
					Name: d.cfg.NodeName, Generation: 1, ResourceSliceCount: int64(len(pool.Slices)),
				},
				Devices:        s.Devices,
				SharedCounters: s.SharedCounters,
			},
		}
		if _, err := client.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			return false, fmt.Errorf("create ResourceSlice %d of %d: %w", i+1, len(pool.Slices), err)
		}
	}
	klog.FromContext(ctx).V(2).Info("Published ResourceSlices ahead of the slice controller", "slices", len(pool.Slices))
	return true, nil
}

// publishPoll is how often waitPublished looks at the node's slices.
const publishPoll = 250 * time.Millisecond

// waitPublished marks the driver published once the node's slices in the
// API server hold exactly the devices this process handed to the slice
// controller (its own publish, or slices left by an earlier pod that the
// controller found equal). Readiness waits for it.
func (d *Driver) waitPublished(ctx context.Context) error {
	client := d.cfg.Client.ResourceV1().ResourceSlices()
	for {
		want := map[string]bool{}
		for _, dev := range d.Devices() {
			want[dev.Name] = true
		}
		list, err := client.List(ctx, metav1.ListOptions{
			FieldSelector: "spec.driver=" + d.cfg.DriverName + ",spec.nodeName=" + d.cfg.NodeName,
		})
		if err == nil && publishedDevices(list.Items, want) {
			d.published.Store(true)
			klog.FromContext(ctx).V(2).Info("ResourceSlices published", "devices", len(want))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(publishPoll):
		}
	}
}

// publishedDevices tells whether the newest complete generation of the
// pool in slices lists exactly the devices in want.
func publishedDevices(slices []resourceapi.ResourceSlice, want map[string]bool) bool {
	var gen int64 = -1
	for _, s := range slices {
		gen = max(gen, s.Spec.Pool.Generation)
	}
	got := map[string]bool{}
	count := 0
	var expected int64
	for _, s := range slices {
		if s.Spec.Pool.Generation != gen {
			continue
		}
		count++
		expected = s.Spec.Pool.ResourceSliceCount
		for _, dev := range s.Spec.Devices {
			got[dev.Name] = true
		}
	}
	if gen < 0 || int64(count) != expected || len(got) != len(want) {
		return false
	}
	for name := range want {
		if !got[name] {
			return false
		}
	}
	return true
}

// sliceIndexLength mirrors the resourceslice controller's name prefix: the
// slice index in hex, at least 5 digits.
func sliceIndexLength(numSlices int) int {
	return max(5, len(strconv.FormatInt(int64(numSlices-1), 16)))
}
