package v1beta1

// Normalize implements Config. It also sets apiVersion and kind, so that a
// config built in code marshals into something Decode accepts.
func (c *GpuConfig) Normalize() {
	c.APIVersion, c.TypeMeta.Kind = APIVersion, GpuConfigKind
	if c.Sharing == nil {
		return
	}
	if c.Sharing.Strategy == TimeSlicingStrategy && c.Sharing.TimeSlicingConfig == nil {
		c.Sharing.TimeSlicingConfig = &TimeSlicingConfig{}
	}
	if c.Sharing.TimeSlicingConfig != nil && c.Sharing.TimeSlicingConfig.Interval == "" {
		c.Sharing.TimeSlicingConfig.Interval = DefaultTimeSlice
	}
	if c.Sharing.Strategy == MpsStrategy && c.Sharing.MpsConfig == nil {
		c.Sharing.MpsConfig = &MpsConfig{}
	}
}

// Normalize implements Config. It also sets apiVersion and kind, so that a
// config built in code marshals into something Decode accepts.
func (c *MigDeviceConfig) Normalize() {
	c.APIVersion, c.TypeMeta.Kind = APIVersion, MigDeviceConfigKind
	if c.Sharing == nil {
		return
	}
	if c.Sharing.Strategy == MpsStrategy && c.Sharing.MpsConfig == nil {
		c.Sharing.MpsConfig = &MpsConfig{}
	}
}
