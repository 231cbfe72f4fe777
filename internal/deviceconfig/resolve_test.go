package deviceconfig

import (
	"fmt"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
)

const (
	driver = "gpu.nvidia.com"
	pool   = "node-a"
	migDev = "gpu-0-mig-1g10gb-19-0"
)

// nodeDevices is the device-type lookup of a node with two GPUs and one MIG
// device.
func nodeDevices(device string) (DeviceType, bool) {
	switch device {
	case "gpu-0", "gpu-1":
		return GPU, true
	case migDev:
		return MIG, true
	}
	return "", false
}

func timeSliced(interval string) string {
	return `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"` + interval + `"}}}`
}

func migMPS(percent int) string {
	return fmt.Sprintf(`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"MigDeviceConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":%d}}}`, percent)
}

func fromClass(params string, requests ...string) resourceapi.DeviceAllocationConfiguration {
	return configEntry(resourceapi.AllocationConfigSourceClass, driver, params, requests)
}

func fromClaim(params string, requests ...string) resourceapi.DeviceAllocationConfiguration {
	return configEntry(resourceapi.AllocationConfigSourceClaim, driver, params, requests)
}

func configEntry(source resourceapi.AllocationConfigSource, driverName, params string, requests []string) resourceapi.DeviceAllocationConfiguration {
	return resourceapi.DeviceAllocationConfiguration{
		Source:   source,
		Requests: requests,
		DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{
				Driver:     driverName,
				Parameters: runtime.RawExtension{Raw: []byte(params)},
			},
		},
	}
}

func result(request, device string) resourceapi.DeviceRequestAllocationResult {
	return resourceapi.DeviceRequestAllocationResult{Request: request, Driver: driver, Pool: pool, Device: device}
}

func allocatedClaim(results []resourceapi.DeviceRequestAllocationResult, configs ...resourceapi.DeviceAllocationConfiguration) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "train"},
		Status: resourceapi.ResourceClaimStatus{
			Allocation: &resourceapi.AllocationResult{
				Devices: resourceapi.DeviceAllocationResult{Results: results, Config: configs},
			},
		},
	}
}

// summary renders a resolved device as "request device: config" so that
// expectations read like the claim.
func summary(d Device) string {
	var sharing string
	switch c := d.Config.(type) {
	case *v1beta1.GpuConfig:
		switch {
		case c.Sharing == nil:
			sharing = "exclusive"
		case c.Sharing.TimeSlicingConfig != nil:
			sharing = "TimeSlicing " + string(c.Sharing.TimeSlicingConfig.Interval)
		default:
			sharing = string(c.Sharing.Strategy)
		}
	case *v1beta1.MigDeviceConfig:
		switch {
		case c.Sharing == nil:
			sharing = "exclusive"
		case c.Sharing.MpsConfig != nil && c.Sharing.MpsConfig.DefaultActiveThreadPercentage != nil:
			sharing = fmt.Sprintf("MPS %d%%", *c.Sharing.MpsConfig.DefaultActiveThreadPercentage)
		default:
			sharing = string(c.Sharing.Strategy)
		}
	}
	return fmt.Sprintf("%s %s: %s %s", d.Request, d.Device, d.Config.Kind(), sharing)
}

func TestResolve(t *testing.T) {
	gpu0, gpu1, mig := result("gpu", "gpu-0"), result("other", "gpu-1"), result("mig", migDev)
	tests := []struct {
		name    string
		claim   *resourceapi.ResourceClaim
		want    []string
		wantErr string
	}{{
		name:  "no configs: every device is exclusive",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0, mig}),
		want:  []string{"gpu gpu-0: GpuConfig exclusive", "mig " + migDev + ": MigDeviceConfig exclusive"},
	}, {
		name: "claim config beats class config",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClaim(timeSliced("Long"), "gpu"),
			fromClass(timeSliced("Short"), "gpu")),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Long"},
	}, {
		name: "unnamed claim config beats class config, which the allocator always names",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClass(timeSliced("Short"), "gpu"),
			fromClaim(timeSliced("Medium"))),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Medium"},
	}, {
		name: "last class config wins",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClass(timeSliced("Short"), "gpu"),
			fromClass(timeSliced("Long"), "gpu")),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Long"},
	}, {
		name: "last named claim config wins",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClaim(timeSliced("Long"), "gpu"),
			fromClaim(timeSliced("Short"), "gpu", "other")),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Short"},
	}, {
		name: "last unnamed claim config wins",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClaim(timeSliced("Long")),
			fromClaim(timeSliced("Medium"))),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Medium"},
	}, {
		name: "named beats unnamed even when the unnamed one comes later",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0, gpu1},
			fromClaim(timeSliced("Short"), "gpu"),
			fromClaim(timeSliced("Long"))),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Short", "other gpu-1: GpuConfig TimeSlicing Long"},
	}, {
		name: "config naming another request does not apply",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0, gpu1},
			fromClaim(timeSliced("Short"), "other")),
		want: []string{"gpu gpu-0: GpuConfig exclusive", "other gpu-1: GpuConfig TimeSlicing Short"},
	}, {
		name: "unnamed configs reach only devices of their type",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0, mig},
			fromClaim(migMPS(30)),
			fromClaim(timeSliced("Long"))),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Long", "mig " + migDev + ": MigDeviceConfig MPS 30%"},
	}, {
		name: "unnamed GpuConfig leaves a MIG device exclusive",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0, mig},
			fromClaim(timeSliced("Short"))),
		want: []string{"gpu gpu-0: GpuConfig TimeSlicing Short", "mig " + migDev + ": MigDeviceConfig exclusive"},
	}, {
		name: "GpuConfig naming a MIG request is an error",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0, mig},
			fromClaim(timeSliced("Short"), "gpu", "mig")),
		wantErr: `claim team-a/train: config #0 (from claim, requests gpu, mig) is a GpuConfig, which applies to gpu devices, but device "gpu-0-mig-1g10gb-19-0" of request "mig" is a mig device`,
	}, {
		name: "MigDeviceConfig from a class onto a full GPU is an error",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClass(timeSliced("Short"), "gpu"),
			fromClass(migMPS(50), "gpu")),
		wantErr: `claim team-a/train: config #1 (from class, requests gpu) is a MigDeviceConfig, which applies to mig devices, but device "gpu-0" of request "gpu" is a gpu device`,
	}, {
		name: "a wrong-typed config that is outranked is harmless",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{mig},
			fromClass(timeSliced("Short"), "mig"),
			fromClaim(migMPS(20), "mig")),
		want: []string{"mig " + migDev + ": MigDeviceConfig MPS 20%"},
	}, {
		name: "other drivers' results and configs are ignored, even malformed ones",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{
			{Request: "nic", Driver: "rdma.example.com", Pool: pool, Device: "gpu-1"},
			gpu0,
		},
			configEntry(resourceapi.AllocationConfigSourceClaim, "rdma.example.com", `{"kind":"NicConfig"`, nil),
			configEntry(resourceapi.AllocationConfigSourceClaim, "rdma.example.com", migMPS(10), []string{"gpu"})),
		want: []string{"gpu gpu-0: GpuConfig exclusive"},
	}, {
		name: "configs without an opaque part are ignored",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			resourceapi.DeviceAllocationConfiguration{Source: resourceapi.AllocationConfigSourceClaim}),
		want: []string{"gpu gpu-0: GpuConfig exclusive"},
	}, {
		name: "a config naming the parent request reaches its subrequest",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("gpus/large", "gpu-0")},
			fromClaim(timeSliced("Medium"), "gpus")),
		want: []string{"gpus/large gpu-0: GpuConfig TimeSlicing Medium"},
	}, {
		name: "a config naming the subrequest reaches it",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("gpus/large", "gpu-0")},
			fromClass(timeSliced("Short"), "gpus/large")),
		want: []string{"gpus/large gpu-0: GpuConfig TimeSlicing Short"},
	}, {
		name: "a config naming a sibling subrequest or the bare subrequest name does not",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("gpus/large", "gpu-0")},
			fromClaim(timeSliced("Short"), "gpus/small"),
			fromClaim(timeSliced("Long"), "large")),
		want: []string{"gpus/large gpu-0: GpuConfig exclusive"},
	}, {
		name: "parent and subrequest names rank alike: the last one wins",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("gpus/large", "gpu-0")},
			fromClaim(timeSliced("Short"), "gpus/large"),
			fromClaim(timeSliced("Long"), "gpus")),
		want: []string{"gpus/large gpu-0: GpuConfig TimeSlicing Long"},
	}, {
		name: "the subrequest chosen decides the type check",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("accel/slice", migDev)},
			fromClaim(timeSliced("Short"), "accel/whole"),
			fromClaim(migMPS(40), "accel/slice")),
		want: []string{"accel/slice " + migDev + ": MigDeviceConfig MPS 40%"},
	}, {
		name: "decode error names the claim, the config and the field",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClass(timeSliced("Short"), "gpu"),
			fromClaim(`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThredPercentage":50}}}`, "gpu")),
		wantErr: `claim team-a/train: config #1 (from claim, requests gpu): sharing.mpsConfig.defaultActiveThredPercentage: unknown field`,
	}, {
		name: "validation error names the claim, the config and the field",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClaim(timeSliced("Forever"))),
		wantErr: `claim team-a/train: config #0 (from claim, all requests): sharing.timeSlicingConfig.interval: Unsupported value: "Forever": supported values: "Default", "Short", "Medium", "Long"`,
	}, {
		name: "a bad config is reported even if it applies to no device",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			fromClaim(`{"apiVersion":"resource.nvidia.com/v1","kind":"GpuConfig"}`, "unused")),
		wantErr: `claim team-a/train: config #0 (from claim, requests unused): apiVersion: Unsupported value: "resource.nvidia.com/v1": supported values: "resource.nvidia.com/v1beta1"`,
	}, {
		name: "unknown config source",
		claim: allocatedClaim([]resourceapi.DeviceRequestAllocationResult{gpu0},
			configEntry("FromNowhere", driver, timeSliced("Short"), nil)),
		wantErr: `claim team-a/train: config #0: unknown source "FromNowhere"`,
	}, {
		name:    "device the node does not have",
		claim:   allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("gpu", "gpu-7")}),
		wantErr: `claim team-a/train: device "gpu-7" of request "gpu" (pool "node-a") is not a device of this node`,
	}, {
		name:    "claim without allocation",
		claim:   &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "train"}},
		wantErr: "claim team-a/train is not allocated",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			devices, err := Resolve(tc.claim, driver, nodeDevices)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Resolve succeeded with %v, want error %s", devices, tc.wantErr)
				}
				if err.Error() != tc.wantErr {
					t.Fatalf("Resolve error\n got: %s\nwant: %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			got := make([]string, len(devices))
			for i, d := range devices {
				got[i] = summary(d)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Resolve =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestResolveCopiesResultFields(t *testing.T) {
	admin := result("debug", "gpu-1")
	admin.AdminAccess = ptr.To(true)
	admin.Pool = "node-b"
	claim := allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("gpu", "gpu-0"), admin})

	devices, err := Resolve(claim, driver, nodeDevices)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := []Device{
		{Request: "gpu", Pool: pool, Device: "gpu-0", AdminAccess: false},
		{Request: "debug", Pool: "node-b", Device: "gpu-1", AdminAccess: true},
	}
	if len(devices) != len(want) {
		t.Fatalf("Resolve returned %d devices, want %d", len(devices), len(want))
	}
	for i, d := range devices {
		d.Config = nil
		if d != want[i] {
			t.Errorf("device %d = %+v, want %+v", i, d, want[i])
		}
	}
}

// Devices reached by the same config entry share its value: the plugin
// starts one MPS daemon per config, as upstream does.
func TestResolveSharesConfigPerEntry(t *testing.T) {
	claim := allocatedClaim(
		[]resourceapi.DeviceRequestAllocationResult{result("a", "gpu-0"), result("b", "gpu-1"), result("c", migDev)},
		fromClaim(timeSliced("Short"), "a", "b"))
	devices, err := Resolve(claim, driver, nodeDevices)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if devices[0].Config != devices[1].Config {
		t.Errorf("gpu-0 and gpu-1 got distinct values of the same config entry")
	}
	if devices[0].Config == devices[2].Config {
		t.Errorf("the MIG device shares the GPUs' config")
	}

	unconfigured := allocatedClaim([]resourceapi.DeviceRequestAllocationResult{result("a", "gpu-0"), result("b", "gpu-1")})
	devices, err = Resolve(unconfigured, driver, nodeDevices)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if devices[0].Config != devices[1].Config {
		t.Errorf("unconfigured GPUs of one claim got distinct default values")
	}
}
