// Package v1beta1 holds the opaque device configs users put in ResourceClaims
// and DeviceClasses under `opaque.driver: gpu.nvidia.com`, in exactly the
// shape the upstream NVIDIA DRA driver accepts (apiVersion
// resource.nvidia.com/v1beta1, kinds GpuConfig and MigDeviceConfig), so
// manifests written for it keep working.
//
// The contract, in the order a caller uses it:
//
//   - Decode turns the opaque parameters (JSON) into a Config. It is strict:
//     a wrong apiVersion, an unknown kind, unknown or duplicate fields and
//     values of the wrong JSON type are errors naming the field path.
//   - Normalize fills in the defaults (no sharing block = exclusive use;
//     TimeSlicing without an interval = Default).
//   - Validate checks the normalized values and names each bad field.
//
// Parse does all three. Nothing here touches a GPU or the API server; the
// webhook (at admission) and the kubelet plugin (at prepare) both call it, so
// a config is judged the same way in both places.
package v1beta1

const (
	// GroupName is the API group of the opaque configs.
	GroupName = "resource.nvidia.com"
	// Version is the only version this package decodes.
	Version = "v1beta1"
	// APIVersion is what a config's apiVersion field must say.
	APIVersion = GroupName + "/" + Version

	// GpuConfigKind configures a full GPU.
	GpuConfigKind = "GpuConfig"
	// MigDeviceConfigKind configures a MIG device.
	MigDeviceConfigKind = "MigDeviceConfig"
)

// acceptedKinds lists the kinds Decode accepts, in the order error messages
// name them.
var acceptedKinds = []string{GpuConfigKind, MigDeviceConfigKind}
