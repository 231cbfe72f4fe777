package allocate

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// Layout says how a cluster's devices are described.
type Layout string

const (
	// LayoutGpudra is what gpudra's device model publishes.
	LayoutGpudra Layout = "gpudra"
	// LayoutMinimal keeps device names, the memory capacity and only the
	// attributes the case's class and claim need (Case.MinimalAttributes).
	LayoutMinimal Layout = "minimal"
)

// Cluster is the nodes of a benchmark run and the slices they publish.
type Cluster struct {
	Nodes  []*corev1.Node
	Slices []*resourceapi.ResourceSlice
	// Republish, when set, is what the nodes' plugins publish after the
	// scheduler allocated devices on them (dynamic MIG republishes the
	// placements still free). Nil: slices never change.
	Republish RepublishFunc
}

// RepublishFunc returns a node's slices given all devices allocated on it.
type RepublishFunc func(node string, allocated []string) ([]*resourceapi.ResourceSlice, error)

// BuildCluster builds n simulated nodes of a case and the ResourceSlices
// gpudra would publish for them.
func BuildCluster(ctx context.Context, c Case, n int) (*Cluster, error) {
	cl := &Cluster{}
	for i := range n {
		name := fmt.Sprintf("node-%04d", i)
		nodeSlices, err := nodeSlices(ctx, name, c.Node(i))
		if err != nil {
			return nil, fmt.Errorf("case %s: node %s: %w", c.Name, name, err)
		}
		cl.Nodes = append(cl.Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		cl.Slices = append(cl.Slices, nodeSlices...)
	}
	return cl, nil
}

func nodeSlices(ctx context.Context, nodeName string, cfg *sim.Config) ([]*resourceapi.ResourceSlice, error) {
	backend, err := sim.NewFromConfig(nodeName, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = backend.Close() }()
	inv, err := backend.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	devices, err := devicemodel.Build(inv)
	if err != nil {
		return nil, err
	}
	list := devicemodel.ResourceSlices(DriverName, nodeName, devicemodel.DriverResources(nodeName, devices))
	out := make([]*resourceapi.ResourceSlice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Minimal returns the same cluster in the minimal layout: every device
// keeps its name, its memory capacity and the listed attributes, nothing
// else. The pools, slice names and device order are unchanged.
func (cl *Cluster) Minimal(keep []resourceapi.QualifiedName) *Cluster {
	out := &Cluster{Nodes: cl.Nodes, Slices: make([]*resourceapi.ResourceSlice, len(cl.Slices))}
	for i, s := range cl.Slices {
		m := &resourceapi.ResourceSlice{TypeMeta: s.TypeMeta, ObjectMeta: *s.ObjectMeta.DeepCopy()}
		m.Spec = resourceapi.ResourceSliceSpec{
			Driver:   s.Spec.Driver,
			Pool:     s.Spec.Pool,
			NodeName: s.Spec.NodeName,
			Devices:  make([]resourceapi.Device, len(s.Spec.Devices)),
		}
		for j, d := range s.Spec.Devices {
			m.Spec.Devices[j] = minimalDevice(d, keep)
		}
		out.Slices[i] = m
	}
	return out
}

func minimalDevice(d resourceapi.Device, keep []resourceapi.QualifiedName) resourceapi.Device {
	m := resourceapi.Device{
		Name:       d.Name,
		Attributes: make(map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, len(keep)),
	}
	for name, a := range d.Attributes {
		if slices.Contains(keep, name) {
			m.Attributes[name] = *a.DeepCopy()
		}
	}
	if c, ok := d.Capacity["memory"]; ok {
		m.Capacity = map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{"memory": *c.DeepCopy()}
	}
	return m
}

// Devices counts the devices in the cluster's slices.
func (cl *Cluster) Devices() int {
	n := 0
	for _, s := range cl.Slices {
		n += len(s.Spec.Devices)
	}
	return n
}

// NodeCluster is a cluster of one simulated node named name. With dynamic
// set, the node is published by devicemodel.BuildDynamic and republished
// after every allocation on it; otherwise by devicemodel.Build, once.
func NodeCluster(ctx context.Context, name string, cfg *sim.Config, dynamic *devicemodel.DynamicOptions) (*Cluster, error) {
	if dynamic == nil {
		sl, err := nodeSlices(ctx, name, cfg)
		if err != nil {
			return nil, err
		}
		return &Cluster{Nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: name}}}, Slices: sl}, nil
	}
	backend, err := sim.NewFromConfig(name, cfg)
	if err != nil {
		return nil, err
	}
	inv, err := backend.Inventory(ctx)
	_ = backend.Close()
	if err != nil {
		return nil, err
	}
	publish := func(node string, held []string) ([]*resourceapi.ResourceSlice, error) {
		return publishDynamic(inv, *dynamic, node, held)
	}
	sl, err := publish(name, nil)
	if err != nil {
		return nil, err
	}
	return &Cluster{Nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: name}}}, Slices: sl, Republish: publish}, nil
}

// Scheduler places claims one at a time as the scheduler places pods (see
// the package comment), republishing nodes whose Cluster says so.
type Scheduler struct{ s *scheduler }

// NewScheduler schedules onto cl with kube-scheduler's feasible-node rule.
func NewScheduler(cl *Cluster) *Scheduler { return &Scheduler{s: newScheduler(cl, 0)} }

// Schedule places one claim; nil means no node fits it.
func (s *Scheduler) Schedule(ctx context.Context, claim *resourceapi.ResourceClaim) (*Placement, error) {
	if err := s.s.compile(claim); err != nil {
		return nil, err
	}
	p, err := s.s.schedule(ctx, claim)
	if err != nil || p == nil {
		return p, err
	}
	return p, s.s.republished(p.Node, p.Devices)
}

// publishDynamic is what a dynamic-MIG node publishes with held devices.
func publishDynamic(inv *gpu.Inventory, o devicemodel.DynamicOptions, node string, held []string) ([]*resourceapi.ResourceSlice, error) {
	o.Held = held
	p, err := devicemodel.BuildDynamic(inv, o)
	if err != nil {
		return nil, err
	}
	list := devicemodel.ResourceSlices(DriverName, node, p.DriverResources(node))
	out := make([]*resourceapi.ResourceSlice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}
