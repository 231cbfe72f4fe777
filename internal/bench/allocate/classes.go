package allocate

import (
	"fmt"
	"sort"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// DriverName is the driver the benchmark's slices and classes name. The
// classes below select on it, so it is not a knob.
const DriverName = "gpu.nvidia.com"

// Class names, as in deployments/deviceclasses.
const (
	GPUClass = "gpu.nvidia.com"
	MIGClass = "mig.nvidia.com"
)

// DeviceClasses returns the classes of deployments/deviceclasses. They are
// built here rather than read from that file so the benchmark binary runs
// from anywhere; a test checks the two agree.
func DeviceClasses() []*resourceapi.DeviceClass {
	return []*resourceapi.DeviceClass{
		deviceClass(GPUClass, "gpu", ptr.To("nvidia.com/gpu")),
		deviceClass(MIGClass, "mig", nil),
	}
}

func deviceClass(name, deviceType string, extendedResourceName *string) *resourceapi.DeviceClass {
	return &resourceapi.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourceapi.DeviceClassSpec{
			Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
				Expression: fmt.Sprintf("device.driver == '%s' && device.attributes['%s'].type == '%s'", DriverName, DriverName, deviceType),
			}}},
			ExtendedResourceName: extendedResourceName,
		},
	}
}

// ClassLister serves a fixed set of DeviceClasses to the allocator, as the
// scheduler's informer-backed lister does.
type ClassLister map[string]*resourceapi.DeviceClass

// NewClassLister serves the given classes by name.
func NewClassLister(classes []*resourceapi.DeviceClass) ClassLister {
	l := make(ClassLister, len(classes))
	for _, c := range classes {
		l[c.Name] = c
	}
	return l
}

func (l ClassLister) List() ([]*resourceapi.DeviceClass, error) {
	out := make([]*resourceapi.DeviceClass, 0, len(l))
	for _, c := range l {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (l ClassLister) Get(name string) (*resourceapi.DeviceClass, error) {
	c, ok := l[name]
	if !ok {
		return nil, fmt.Errorf("DeviceClass %s not found", name)
	}
	return c, nil
}
