package devicemodel

import (
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

func TestShareMemoryMakesWholeGPUsShareable(t *testing.T) {
	gpuDev := resourceapi.Device{
		Name:       "gpu-0",
		Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{"type": {StringValue: ptr.To(TypeGPU)}},
		Capacity:   map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{"memory": {Value: resource.MustParse("80Gi")}},
	}
	migDev := resourceapi.Device{
		Name:       "gpu-1-mig-1g10gb-19-0",
		Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{"type": {StringValue: ptr.To(TypeMIG)}},
		Capacity:   map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{"memory": {Value: resource.MustParse("10Gi")}},
	}
	devices := []resourceapi.Device{gpuDev, migDev}
	ShareMemory(devices)

	g := devices[0]
	if !ptr.Deref(g.AllowMultipleAllocations, false) {
		t.Error("the GPU does not allow multiple allocations")
	}
	p := g.Capacity["memory"].RequestPolicy
	if p == nil || p.Default == nil || p.ValidRange == nil {
		t.Fatalf("memory request policy %+v", p)
	}
	for name, got := range map[string]*resource.Quantity{"default": p.Default, "min": p.ValidRange.Min, "max": p.ValidRange.Max, "step": p.ValidRange.Step} {
		want := map[string]string{"default": "80Gi", "min": "1Gi", "max": "80Gi", "step": "1Gi"}[name]
		if got == nil || got.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("%s = %v, want %s", name, got, want)
		}
	}
	if v := g.Capacity["memory"].Value; v.Cmp(resource.MustParse("80Gi")) != 0 {
		t.Errorf("capacity changed to %s", v.String())
	}
	m := devices[1]
	if m.AllowMultipleAllocations != nil || m.Capacity["memory"].RequestPolicy != nil {
		t.Errorf("a MIG device was made shareable: %+v", m)
	}
	// The default is a copy: changing it does not change the capacity.
	p.Default.Set(1)
	if v := devices[0].Capacity["memory"].Value; v.Cmp(resource.MustParse("80Gi")) != 0 {
		t.Error("the default shares memory with the capacity")
	}
}
