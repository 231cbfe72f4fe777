package deviceconfig

import (
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The 1.37 allocator copies a claim's configs into the allocation but clears
// Requests of one that names every request of the claim ("empty means
// all"), and does the same to class configs, which it always names. Such a
// config still names its requests: it reaches devices of any type (so a
// wrong type is an error, not silently skipped) and outranks unnamed ones.
func TestResolveRecoversNamesTheAllocatorCleared(t *testing.T) {
	gpuConfig := `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig"}`
	specConfig := func(params string, requests ...string) resourceapi.DeviceClaimConfiguration {
		return resourceapi.DeviceClaimConfiguration{
			Requests: requests,
			DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{
				Driver: driver, Parameters: runtime.RawExtension{Raw: []byte(params)},
			}},
		}
	}
	tests := []struct {
		name    string
		spec    []resourceapi.DeviceClaimConfiguration
		status  []resourceapi.DeviceAllocationConfiguration
		results []resourceapi.DeviceRequestAllocationResult
		want    string // summary of the devices, or the error
	}{
		{
			name:    "GpuConfig naming the only request, a MIG one, is an error",
			spec:    []resourceapi.DeviceClaimConfiguration{specConfig(gpuConfig, "mig")},
			status:  []resourceapi.DeviceAllocationConfiguration{fromClaim(gpuConfig)},
			results: []resourceapi.DeviceRequestAllocationResult{result("mig", migDev)},
			want:    `claim team-a/train: config #0 (from claim, requests mig) is a GpuConfig, which applies to gpu devices, but device "gpu-0-mig-1g10gb-19-0" of request "mig" is a mig device`,
		},
		{
			name:    "a config the user left unnamed stays unnamed",
			spec:    []resourceapi.DeviceClaimConfiguration{specConfig(gpuConfig)},
			status:  []resourceapi.DeviceAllocationConfiguration{fromClaim(gpuConfig)},
			results: []resourceapi.DeviceRequestAllocationResult{result("mig", migDev)},
			want:    "mig gpu-0-mig-1g10gb-19-0: MigDeviceConfig exclusive",
		},
		{
			name: "a cleared named config outranks a later unnamed one",
			spec: []resourceapi.DeviceClaimConfiguration{specConfig(timeSliced("Long"), "gpu"), specConfig(timeSliced("Short"))},
			status: []resourceapi.DeviceAllocationConfiguration{
				fromClaim(timeSliced("Long")), fromClaim(timeSliced("Short")),
			},
			results: []resourceapi.DeviceRequestAllocationResult{result("gpu", "gpu-0")},
			want:    "gpu gpu-0: GpuConfig TimeSlicing Long",
		},
		{
			// The allocator keeps the spec's order today; matching by
			// content does not depend on it.
			name:    "cleared configs are told apart by content, not position",
			spec:    []resourceapi.DeviceClaimConfiguration{specConfig(gpuConfig, "mig"), specConfig(migMPS(30))},
			status:  []resourceapi.DeviceAllocationConfiguration{fromClaim(migMPS(30)), fromClaim(gpuConfig)},
			results: []resourceapi.DeviceRequestAllocationResult{result("mig", migDev)},
			want:    `claim team-a/train: config #1 (from claim, requests mig) is a GpuConfig, which applies to gpu devices, but device "gpu-0-mig-1g10gb-19-0" of request "mig" is a mig device`,
		},
		{
			name:    "identical configs, one named and one not, keep their order",
			spec:    []resourceapi.DeviceClaimConfiguration{specConfig(gpuConfig), specConfig(gpuConfig, "mig")},
			status:  []resourceapi.DeviceAllocationConfiguration{fromClaim(gpuConfig), fromClaim(gpuConfig)},
			results: []resourceapi.DeviceRequestAllocationResult{result("mig", migDev)},
			want:    `claim team-a/train: config #1 (from claim, requests mig) is a GpuConfig, which applies to gpu devices, but device "gpu-0-mig-1g10gb-19-0" of request "mig" is a mig device`,
		},
		{
			name:    "a class config of the wrong type on the only request is an error",
			status:  []resourceapi.DeviceAllocationConfiguration{fromClass(gpuConfig)},
			results: []resourceapi.DeviceRequestAllocationResult{result("mig", migDev)},
			want:    `claim team-a/train: config #0 (from class, every request, by name) is a GpuConfig, which applies to gpu devices, but device "gpu-0-mig-1g10gb-19-0" of request "mig" is a mig device`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claim := allocatedClaim(tc.results, tc.status...)
			claim.Spec.Devices.Config = tc.spec
			devices, err := Resolve(claim, driver, nodeDevices)
			got := ""
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
