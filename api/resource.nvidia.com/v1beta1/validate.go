package v1beta1

import (
	"regexp"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds of an MPS pinned-memory limit. MPS takes the limit in whole MiB, so
// anything smaller would silently turn into 0 there; the upper bound keeps
// every accepted limit well inside an int64 of bytes for the code that
// applies it.
var (
	minPinnedMemoryLimit = resource.MustParse("1Mi")
	maxPinnedMemoryLimit = resource.MustParse("1Ei")
)

// maxQuantityExponent bounds the decimal exponent of a quantity before it is
// compared: comparing expands the exponent into digits, so a limit written
// as "1e999999999" would otherwise cost minutes of CPU in the webhook.
const maxQuantityExponent = 64

var (
	deviceIndexPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	uuidSuffix         = `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	gpuUUIDPattern     = regexp.MustCompile(`^GPU-` + uuidSuffix)
	migUUIDPattern     = regexp.MustCompile(`^MIG-` + uuidSuffix)
)

// Validate implements Config.
func (c *GpuConfig) Validate() error {
	if c.Sharing == nil {
		return nil
	}
	path := field.NewPath("sharing")
	errs := validateStrategy(c.Sharing.Strategy, path.Child("strategy"))
	if tsc := c.Sharing.TimeSlicingConfig; tsc != nil {
		tscPath := path.Child("timeSlicingConfig")
		if c.Sharing.Strategy != TimeSlicingStrategy {
			errs = append(errs, field.Forbidden(tscPath, "only allowed with strategy TimeSlicing"))
		}
		if _, err := tsc.Interval.ComputePolicyValue(); err != nil {
			errs = append(errs, field.NotSupported(tscPath.Child("interval"), tsc.Interval, acceptedIntervals))
		}
	}
	errs = append(errs, validateMps(c.Sharing.Strategy, c.Sharing.MpsConfig, path.Child("mpsConfig"), gpuUUIDPattern, "GPU-")...)
	return errs.ToAggregate()
}

// Validate implements Config.
func (c *MigDeviceConfig) Validate() error {
	if c.Sharing == nil {
		return nil
	}
	path := field.NewPath("sharing")
	errs := validateStrategy(c.Sharing.Strategy, path.Child("strategy"))
	errs = append(errs, validateMps(c.Sharing.Strategy, c.Sharing.MpsConfig, path.Child("mpsConfig"), migUUIDPattern, "MIG-")...)
	return errs.ToAggregate()
}

func validateStrategy(strategy SharingStrategy, path *field.Path) field.ErrorList {
	switch {
	case strategy == "":
		return field.ErrorList{field.Required(path, "")}
	case !slices.Contains(acceptedStrategies, strategy):
		return field.ErrorList{field.NotSupported(path, strategy, acceptedStrategies)}
	}
	return nil
}

// validateMps checks an mpsConfig block. uuidPattern is the UUID form a
// per-device key may take for this kind of device (uuidPrefix names it in
// the message).
func validateMps(strategy SharingStrategy, mps *MpsConfig, path *field.Path, uuidPattern *regexp.Regexp, uuidPrefix string) field.ErrorList {
	if mps == nil {
		return nil
	}
	var errs field.ErrorList
	if strategy != MpsStrategy {
		errs = append(errs, field.Forbidden(path, "only allowed with strategy MPS"))
	}
	if p := mps.DefaultActiveThreadPercentage; p != nil && (*p < 0 || *p > 100) {
		errs = append(errs, field.Invalid(path.Child("defaultActiveThreadPercentage"), *p, "must be between 0 and 100, inclusive"))
	}
	if q := mps.DefaultPinnedDeviceMemoryLimit; q != nil {
		errs = append(errs, validatePinnedLimit(*q, path.Child("defaultPinnedDeviceMemoryLimit"))...)
	}
	perDevicePath := path.Child("defaultPerDevicePinnedMemoryLimit")
	// Sorted so that the same config always yields the same message.
	keys := make([]string, 0, len(mps.DefaultPerDevicePinnedMemoryLimit))
	for key := range mps.DefaultPerDevicePinnedMemoryLimit {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		keyPath := perDevicePath.Key(key)
		if !isDeviceIndex(key) && !uuidPattern.MatchString(key) {
			errs = append(errs, field.Invalid(keyPath, key, "key must be a device index within the claim (0, 1, ...) or a "+uuidPrefix+" UUID"))
		}
		errs = append(errs, validatePinnedLimit(mps.DefaultPerDevicePinnedMemoryLimit[key], keyPath)...)
	}
	return errs
}

func isDeviceIndex(key string) bool {
	if !deviceIndexPattern.MatchString(key) {
		return false
	}
	_, err := strconv.Atoi(key)
	return err == nil
}

func validatePinnedLimit(q resource.Quantity, path *field.Path) field.ErrorList {
	// q is a copy: AsDec may change its representation, never its value.
	if scale := q.AsDec().Scale(); scale < -maxQuantityExponent || scale > maxQuantityExponent {
		// Printing the value would expand the exponent too.
		return field.ErrorList{field.Invalid(path, field.OmitValueType{}, "must be between 1Mi and 1Ei")}
	}
	switch {
	case q.Cmp(minPinnedMemoryLimit) < 0:
		return field.ErrorList{field.Invalid(path, q.String(), "must be at least 1Mi")}
	case q.Cmp(maxPinnedMemoryLimit) > 0:
		return field.ErrorList{field.Invalid(path, q.String(), "must be at most 1Ei")}
	}
	return nil
}
