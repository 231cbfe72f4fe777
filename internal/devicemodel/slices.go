package devicemodel

import (
	"fmt"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"
)

// ResourceSlices renders driver resources as the ResourceSlice objects a node
// would publish, with stable names (<node>-<driver>-<index>) instead of the
// API server's generated ones, so that the output of `gpudra discover` is the
// same bytes every time for the same node.
func ResourceSlices(driverName, nodeName string, res *resourceslice.DriverResources) *resourceapi.ResourceSliceList {
	list := &resourceapi.ResourceSliceList{
		TypeMeta: metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "ResourceSliceList"},
	}
	pool := res.Pools[nodeName]
	for i, s := range pool.Slices {
		list.Items = append(list.Items, resourceapi.ResourceSlice{
			TypeMeta:   metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "ResourceSlice"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%d", nodeName, driverName, i)},
			Spec: resourceapi.ResourceSliceSpec{
				Driver:   driverName,
				NodeName: ptr.To(nodeName),
				Pool: resourceapi.ResourcePool{
					Name:               nodeName,
					Generation:         1,
					ResourceSliceCount: int64(len(pool.Slices)),
				},
				Devices:        s.Devices,
				SharedCounters: s.SharedCounters,
			},
		})
	}
	return list
}
