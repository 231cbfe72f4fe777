package devicemodel

import (
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// ShareStep is the granularity of a memory share: a claim asks for whole
// GiB of a GPU's memory.
var ShareStep = resource.MustParse("1Gi")

// ShareMemory makes the whole GPUs among devices shareable by memory
// (consumable capacity, DRAConsumableCapacity): several claims may be
// allocated one GPU, each taking the memory it asks for in
// capacity.requests.memory, in steps of ShareStep, until the GPU's memory
// is used up. A claim that asks for no memory takes all of it, so a
// manifest written for whole GPUs still gets a GPU to itself. MIG devices
// are left as they are. devices is changed in place.
func ShareMemory(devices []resourceapi.Device) {
	for i := range devices {
		d := &devices[i]
		if a, ok := d.Attributes["type"]; !ok || a.StringValue == nil || *a.StringValue != TypeGPU {
			continue
		}
		mem, ok := d.Capacity["memory"]
		if !ok {
			continue
		}
		all := mem.Value.DeepCopy()
		mem.RequestPolicy = &resourceapi.CapacityRequestPolicy{
			Default: &all,
			ValidRange: &resourceapi.CapacityRequestPolicyRange{
				Min:  ptr.To(ShareStep.DeepCopy()),
				Max:  ptr.To(all.DeepCopy()),
				Step: ptr.To(ShareStep.DeepCopy()),
			},
		}
		d.Capacity["memory"] = mem
		d.AllowMultipleAllocations = ptr.To(true)
	}
}
