package deviceconfig

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	dracel "k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
)

// The scheduler's allocator (k8s.io/dynamic-resource-allocation 1.37)
// builds status.allocation.devices.config from the class and claim configs:
//
//   - A claim config that names requests is copied only if it names a
//     request of the claim or the subrequest chosen for one; a config that
//     names only subrequests that were not chosen is dropped, so the claim
//     configs in the allocation are no longer position for position those
//     of spec.devices.config.
//   - Requests are copied as written ("gpus", "gpus/large"); a config
//     naming every request (or the chosen subrequest of it) has Requests
//     cleared ("empty means all"), like one the user left unnamed.
//
// These tests run that allocator on a one-node slice and resolve what it
// produced, so they break if either side changes.

const (
	gpuClass = "gpu.nvidia.com"
	migClass = "mig.nvidia.com"
)

// allocatorNode is the node of nodeDevices as a ResourceSlice: two GPUs and
// a MIG device.
func allocatorNode() []*resourceapi.ResourceSlice {
	device := func(name, typ string) resourceapi.Device {
		return resourceapi.Device{Name: name, Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
			"type": {StringValue: ptr.To(typ)},
		}}
	}
	return []*resourceapi.ResourceSlice{{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a-gpu.nvidia.com-0"},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   driver,
			NodeName: ptr.To(pool),
			Pool:     resourceapi.ResourcePool{Name: pool, Generation: 1, ResourceSliceCount: 1},
			Devices:  []resourceapi.Device{device("gpu-0", "gpu"), device("gpu-1", "gpu"), device(migDev, "mig")},
		},
	}}
}

// classes is a DeviceClassLister of the two classes, each optionally with
// opaque configs.
type classes map[string]*resourceapi.DeviceClass

func newClasses(gpuConfigs, migConfigs []string) classes {
	class := func(name, typ string, params []string) *resourceapi.DeviceClass {
		c := &resourceapi.DeviceClass{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: resourceapi.DeviceClassSpec{Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
				Expression: fmt.Sprintf("device.driver == %q && device.attributes[%q].type == %q", driver, driver, typ),
			}}}},
		}
		for _, p := range params {
			c.Spec.Config = append(c.Spec.Config, resourceapi.DeviceClassConfiguration{DeviceConfiguration: opaque(p)})
		}
		return c
	}
	return classes{gpuClass: class(gpuClass, "gpu", gpuConfigs), migClass: class(migClass, "mig", migConfigs)}
}

func (c classes) List() ([]*resourceapi.DeviceClass, error) {
	return []*resourceapi.DeviceClass{c[gpuClass], c[migClass]}, nil
}

func (c classes) Get(name string) (*resourceapi.DeviceClass, error) {
	if class, ok := c[name]; ok {
		return class, nil
	}
	return nil, apierrors.NewNotFound(resourceapi.Resource("deviceclasses"), name)
}

func opaque(params string) resourceapi.DeviceConfiguration {
	return resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{
		Driver: driver, Parameters: runtime.RawExtension{Raw: []byte(params)},
	}}
}

func claimConfig(params string, requests ...string) resourceapi.DeviceClaimConfiguration {
	return resourceapi.DeviceClaimConfiguration{Requests: requests, DeviceConfiguration: opaque(params)}
}

// firstAvailable is a request for one device of the first subrequest that
// fits; each subrequest is "name=class".
func firstAvailable(name string, subrequests ...string) resourceapi.DeviceRequest {
	r := resourceapi.DeviceRequest{Name: name}
	for _, s := range subrequests {
		subName, class, _ := strings.Cut(s, "=")
		r.FirstAvailable = append(r.FirstAvailable, resourceapi.DeviceSubRequest{
			Name: subName, DeviceClassName: class, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
		})
	}
	return r
}

func exactly(name, class string) resourceapi.DeviceRequest {
	return resourceapi.DeviceRequest{Name: name, Exactly: &resourceapi.ExactDeviceRequest{
		DeviceClassName: class, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
	}}
}

// allocate runs the scheduler's allocator for claim on the node and stores
// the result in the claim's status.
func allocate(t *testing.T, claim *resourceapi.ResourceClaim, lister classes) {
	t.Helper()
	ctx := context.Background()
	features := structured.Features{PrioritizedList: true}
	state := structured.AllocatedState{AllocatedDevices: sets.New[structured.DeviceID]()}
	alloc, err := structured.NewAllocator(ctx, features, state, lister, allocatorNode(), dracel.NewCache(10, dracel.Features{}))
	if err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: pool}}
	results, err := alloc.Allocate(ctx, node, []*resourceapi.ResourceClaim{claim})
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	if len(results) != 1 {
		t.Fatal("the claim does not fit on the node")
	}
	claim.Status.Allocation = &results[0]
}

// allocationConfigs renders status.allocation.devices.config as
// "source[requests] kind sharing", to pin what the allocator produced.
func allocationConfigs(t *testing.T, configs []resourceapi.DeviceAllocationConfiguration) string {
	t.Helper()
	var parts []string
	for _, c := range configs {
		source := "claim"
		if c.Source == resourceapi.AllocationConfigSourceClass {
			source = "class"
		}
		config, err := decodeForSummary(c.Opaque.Parameters.Raw)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s[%s] %s", source, strings.Join(c.Requests, ","), config))
	}
	return strings.Join(parts, "; ")
}

func decodeForSummary(raw []byte) (string, error) {
	config, err := v1beta1.Parse(raw)
	if err != nil {
		return "", err
	}
	_, sharing, _ := strings.Cut(summary(Device{Config: config}), ": ")
	return sharing, nil
}

func TestResolveMatchesConfigsToFirstAvailableRequestsByName(t *testing.T) {
	mps40 := migMPS(40)
	tests := []struct {
		name         string
		requests     []resourceapi.DeviceRequest
		configs      []resourceapi.DeviceClaimConfiguration
		classConfigs []string // of the gpu class
		// wantAllocation pins the allocator's output that the case is about.
		wantAllocation string
		want           string // the resolved devices, or the error
	}{
		{
			name:     "a config the allocator dropped does not shift the names of the next ones",
			requests: []resourceapi.DeviceRequest{firstAvailable("accel", "whole="+gpuClass, "slice="+migClass)},
			configs: []resourceapi.DeviceClaimConfiguration{
				claimConfig(mps40, "accel/slice"),
				claimConfig(timeSliced("Long"), "accel/whole"),
				claimConfig(timeSliced("Short")),
			},
			wantAllocation: "claim[] GpuConfig TimeSlicing Long; claim[] GpuConfig TimeSlicing Short",
			// The config naming accel/whole outranks the unnamed one.
			want: "accel/whole gpu-0: GpuConfig TimeSlicing Long",
		},
		{
			name:     "a dropped config with the same parameters does not lend its requests",
			requests: []resourceapi.DeviceRequest{firstAvailable("accel", "whole="+gpuClass, "slice="+migClass)},
			configs: []resourceapi.DeviceClaimConfiguration{
				claimConfig(mps40, "accel/slice"),
				claimConfig(mps40, "accel/whole"),
			},
			wantAllocation: "claim[] MigDeviceConfig MPS 40%",
			want:           `claim team-a/train: config #0 (from claim, requests accel/whole) is a MigDeviceConfig, which applies to mig devices, but device "gpu-0" of request "accel/whole" is a gpu device`,
		},
		{
			name:     "a dropped config does not take the place of an unnamed one",
			requests: []resourceapi.DeviceRequest{firstAvailable("accel", "whole="+gpuClass, "slice="+migClass)},
			configs: []resourceapi.DeviceClaimConfiguration{
				claimConfig(timeSliced("Long"), "accel/slice"),
				claimConfig(timeSliced("Long")),
			},
			wantAllocation: "claim[] GpuConfig TimeSlicing Long",
			want:           "accel/whole gpu-0: GpuConfig TimeSlicing Long",
		},
		{
			name: "a config naming the request reaches the subrequest chosen for it",
			requests: []resourceapi.DeviceRequest{
				firstAvailable("accel", "whole="+gpuClass, "slice="+migClass),
				exactly("other", gpuClass),
			},
			configs:        []resourceapi.DeviceClaimConfiguration{claimConfig(timeSliced("Medium"), "accel")},
			wantAllocation: "claim[accel] GpuConfig TimeSlicing Medium",
			want:           "accel/whole gpu-0: GpuConfig TimeSlicing Medium; other gpu-1: GpuConfig exclusive",
		},
		{
			name: "a config naming a subrequest reaches only that subrequest",
			requests: []resourceapi.DeviceRequest{
				firstAvailable("accel", "whole="+gpuClass, "slice="+migClass),
				firstAvailable("more", "whole="+gpuClass, "slice="+migClass),
			},
			configs: []resourceapi.DeviceClaimConfiguration{
				claimConfig(timeSliced("Short"), "more/slice"),
				claimConfig(timeSliced("Medium"), "accel/whole"),
			},
			wantAllocation: "claim[accel/whole] GpuConfig TimeSlicing Medium",
			want:           "accel/whole gpu-0: GpuConfig TimeSlicing Medium; more/whole gpu-1: GpuConfig exclusive",
		},
		{
			name: "the second subrequest chosen when the first does not fit",
			requests: []resourceapi.DeviceRequest{
				exactly("a", gpuClass), exactly("b", gpuClass),
				firstAvailable("accel", "whole="+gpuClass, "slice="+migClass),
			},
			configs: []resourceapi.DeviceClaimConfiguration{
				claimConfig(timeSliced("Long"), "accel/whole"),
				claimConfig(mps40, "accel/slice", "a", "b"),
				claimConfig(migMPS(10)),
			},
			wantAllocation: "claim[] MigDeviceConfig MPS 40%; claim[] MigDeviceConfig MPS 10%",
			want:           `claim team-a/train: config #0 (from claim, requests accel/slice, a, b) is a MigDeviceConfig, which applies to mig devices, but device "gpu-0" of request "a" is a gpu device`,
		},
		{
			name:           "a class config reaches only the requests of its class",
			requests:       []resourceapi.DeviceRequest{firstAvailable("accel", "slice="+migClass, "whole="+gpuClass), exactly("other", gpuClass)},
			classConfigs:   []string{timeSliced("Short")},
			configs:        []resourceapi.DeviceClaimConfiguration{claimConfig(mps40, "accel/whole")},
			wantAllocation: "class[other] GpuConfig TimeSlicing Short",
			want:           "accel/slice " + migDev + ": MigDeviceConfig exclusive; other gpu-0: GpuConfig TimeSlicing Short",
		},
		{
			name:           "a class config of the chosen subrequest names it",
			requests:       []resourceapi.DeviceRequest{firstAvailable("accel", "whole="+gpuClass, "slice="+migClass), exactly("other", migClass)},
			classConfigs:   []string{timeSliced("Short")},
			configs:        []resourceapi.DeviceClaimConfiguration{claimConfig(timeSliced("Long"))},
			wantAllocation: "class[accel/whole] GpuConfig TimeSlicing Short; claim[] GpuConfig TimeSlicing Long",
			want:           "accel/whole gpu-0: GpuConfig TimeSlicing Long; other " + migDev + ": MigDeviceConfig exclusive",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claim := &resourceapi.ResourceClaim{
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "train"},
				Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
					Requests: tc.requests,
					Config:   tc.configs,
				}},
			}
			allocate(t, claim, newClasses(tc.classConfigs, nil))
			if got := allocationConfigs(t, claim.Status.Allocation.Devices.Config); got != tc.wantAllocation {
				t.Fatalf("the allocator produced configs\n  %s\nwant\n  %s\n(the case no longer shows what it is about)", got, tc.wantAllocation)
			}

			devices, err := Resolve(claim, driver, nodeDevices)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				var parts []string
				for _, d := range devices {
					parts = append(parts, summary(d))
				}
				got = strings.Join(parts, "; ")
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
