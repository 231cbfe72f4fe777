package v1beta1

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/json"
)

// Parse decodes, normalizes and validates one opaque config: what both the
// webhook and the kubelet plugin need.
func Parse(raw []byte) (Config, error) {
	cfg, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode strictly decodes the JSON parameters of an opaque config (as found
// in runtime.RawExtension.Raw). The result is neither normalized nor
// validated.
//
// Errors name the field path relative to the parameters object, for example
// "sharing.mpsConfig.defaultActiveThredPercentage: unknown field". Several
// problems found in one pass are reported together.
func Decode(raw []byte) (Config, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("parameters are empty: want a JSON object with apiVersion and kind")
	}
	var meta metav1.TypeMeta
	if err := json.UnmarshalCaseSensitivePreserveInts(raw, &meta); err != nil {
		return nil, describeDecodeError(raw, &meta, err)
	}
	cfg, err := newConfigFor(meta)
	if err != nil {
		return nil, err
	}
	strictErrs, err := json.UnmarshalStrict(raw, cfg)
	if err != nil {
		return nil, describeDecodeError(raw, cfg, err)
	}
	if len(strictErrs) > 0 {
		errs := make([]error, 0, len(strictErrs))
		for _, e := range strictErrs {
			errs = append(errs, describeStrictError(e))
		}
		return nil, utilerrors.NewAggregate(errs)
	}
	return cfg, nil
}

// newConfigFor returns an empty config of the kind meta names.
func newConfigFor(meta metav1.TypeMeta) (Config, error) {
	apiVersionPath, kindPath := field.NewPath("apiVersion"), field.NewPath("kind")
	switch {
	case meta.APIVersion == "":
		return nil, field.Required(apiVersionPath, "must be "+strconv.Quote(APIVersion))
	case meta.APIVersion != APIVersion:
		return nil, field.NotSupported(apiVersionPath, meta.APIVersion, []string{APIVersion})
	}
	switch meta.Kind {
	case GpuConfigKind:
		return &GpuConfig{}, nil
	case MigDeviceConfigKind:
		return &MigDeviceConfig{}, nil
	case "":
		return nil, field.Required(kindPath, "must be one of "+quotedList(acceptedKinds))
	default:
		return nil, field.NotSupported(kindPath, meta.Kind, acceptedKinds)
	}
}

// describeDecodeError turns a fatal decoding error into one that names the
// bad field. The decoder's own type errors carry the path in a type we cannot
// reach, and errors from a field's UnmarshalJSON (resource.Quantity) carry
// none, so the path is found again by walking raw alongside target.
func describeDecodeError(raw []byte, target any, err error) error {
	if isSyntax, offset := json.SyntaxErrorOffset(err); isSyntax {
		return fmt.Errorf("invalid JSON at byte %d: %w", offset, err)
	}
	if located := findBadValue(raw, target); located != nil {
		return located
	}
	return fmt.Errorf("decode parameters: %w", err)
}

// describeStrictError rewrites the decoder's `unknown field "a.b"` into the
// `a.b: unknown field` form that the rest of our messages use.
func describeStrictError(err error) error {
	var fieldErr json.FieldError
	if !errors.As(err, &fieldErr) {
		return err
	}
	path := fieldErr.FieldPath()
	problem := strings.TrimSuffix(err.Error(), " "+strconv.Quote(path))
	return fmt.Errorf("%s: %s", path, problem)
}

func quotedList[T ~string](values []T) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(string(v))
	}
	return strings.Join(quoted, ", ")
}
