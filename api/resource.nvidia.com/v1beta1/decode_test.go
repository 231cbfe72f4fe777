package v1beta1

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// fromYAML converts a config written the way users write it into the JSON
// the API server hands us in RawExtension.Raw.
func fromYAML(t *testing.T, in string) []byte {
	t.Helper()
	out, err := yaml.YAMLToJSON([]byte(in))
	if err != nil {
		t.Fatalf("test input is not YAML: %v", err)
	}
	return out
}

const header = "apiVersion: resource.nvidia.com/v1beta1\n"

func TestParseAccepts(t *testing.T) {
	gpuMeta := metav1.TypeMeta{APIVersion: APIVersion, Kind: GpuConfigKind}
	migMeta := metav1.TypeMeta{APIVersion: APIVersion, Kind: MigDeviceConfigKind}
	tests := []struct {
		name string
		yaml string
		want Config
	}{{
		name: "no sharing block means exclusive",
		yaml: header + "kind: GpuConfig\n",
		want: &GpuConfig{TypeMeta: gpuMeta},
	}, {
		name: "time-slicing without a config gets the Default interval",
		yaml: header + "kind: GpuConfig\nsharing:\n  strategy: TimeSlicing\n",
		want: &GpuConfig{TypeMeta: gpuMeta, Sharing: &GpuSharing{
			Strategy:          TimeSlicingStrategy,
			TimeSlicingConfig: &TimeSlicingConfig{Interval: DefaultTimeSlice},
		}},
	}, {
		name: "time-slicing with an empty config gets the Default interval",
		yaml: header + "kind: GpuConfig\nsharing:\n  strategy: TimeSlicing\n  timeSlicingConfig: {}\n",
		want: &GpuConfig{TypeMeta: gpuMeta, Sharing: &GpuSharing{
			Strategy:          TimeSlicingStrategy,
			TimeSlicingConfig: &TimeSlicingConfig{Interval: DefaultTimeSlice},
		}},
	}, {
		name: "time-slicing with an interval keeps it",
		yaml: header + "kind: GpuConfig\nsharing:\n  strategy: TimeSlicing\n  timeSlicingConfig:\n    interval: Long\n",
		want: &GpuConfig{TypeMeta: gpuMeta, Sharing: &GpuSharing{
			Strategy:          TimeSlicingStrategy,
			TimeSlicingConfig: &TimeSlicingConfig{Interval: LongTimeSlice},
		}},
	}, {
		name: "MPS with every field, as the upstream README writes it",
		yaml: header + `kind: GpuConfig
sharing:
  strategy: MPS
  mpsConfig:
    defaultActiveThreadPercentage: 50
    defaultPinnedDeviceMemoryLimit: 10Gi
    defaultPerDevicePinnedMemoryLimit:
      "0": 5Gi
      GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c: 1024Mi
`,
		want: &GpuConfig{TypeMeta: gpuMeta, Sharing: &GpuSharing{
			Strategy: MpsStrategy,
			MpsConfig: &MpsConfig{
				DefaultActiveThreadPercentage:  ptr.To(50),
				DefaultPinnedDeviceMemoryLimit: ptr.To(resource.MustParse("10Gi")),
				DefaultPerDevicePinnedMemoryLimit: map[string]resource.Quantity{
					"0": resource.MustParse("5Gi"),
					"GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c": resource.MustParse("1Gi"),
				},
			},
		}},
	}, {
		name: "MPS without a config gets an empty one",
		yaml: header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n",
		want: &GpuConfig{TypeMeta: gpuMeta, Sharing: &GpuSharing{Strategy: MpsStrategy, MpsConfig: &MpsConfig{}}},
	}, {
		name: "a null sharing block is exclusive",
		yaml: header + "kind: GpuConfig\nsharing: null\n",
		want: &GpuConfig{TypeMeta: gpuMeta},
	}, {
		name: "MIG device, exclusive",
		yaml: header + "kind: MigDeviceConfig\n",
		want: &MigDeviceConfig{TypeMeta: migMeta},
	}, {
		name: "MIG device, time-sliced (the parent's policy applies)",
		yaml: header + "kind: MigDeviceConfig\nsharing:\n  strategy: TimeSlicing\n",
		want: &MigDeviceConfig{TypeMeta: migMeta, Sharing: &MigDeviceSharing{Strategy: TimeSlicingStrategy}},
	}, {
		name: "MIG device, MPS keyed by MIG UUID",
		yaml: header + `kind: MigDeviceConfig
sharing:
  strategy: MPS
  mpsConfig:
    defaultPerDevicePinnedMemoryLimit:
      MIG-2e4e7a4c-0e61-5d8a-9c3b-6f1f4c1b7d2a: 2Gi
`,
		want: &MigDeviceConfig{TypeMeta: migMeta, Sharing: &MigDeviceSharing{
			Strategy: MpsStrategy,
			MpsConfig: &MpsConfig{DefaultPerDevicePinnedMemoryLimit: map[string]resource.Quantity{
				"MIG-2e4e7a4c-0e61-5d8a-9c3b-6f1f4c1b7d2a": resource.MustParse("2Gi"),
			}},
		}},
	}, {
		name: "thread percentage bounds are inclusive",
		yaml: header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultActiveThreadPercentage: 100\n",
		want: &GpuConfig{TypeMeta: gpuMeta, Sharing: &GpuSharing{
			Strategy:  MpsStrategy,
			MpsConfig: &MpsConfig{DefaultActiveThreadPercentage: ptr.To(100)},
		}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(fromYAML(t, tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("Parse =\n%#v\nwant\n%#v", got, tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{{
		name:    "empty parameters",
		json:    "  ",
		wantErr: "parameters are empty: want a JSON object with apiVersion and kind",
	}, {
		name:    "not JSON",
		json:    `{"apiVersion":`,
		wantErr: "invalid JSON at byte 14: unexpected end of JSON input",
	}, {
		name:    "trailing comma",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig",}`,
		wantErr: "invalid JSON at byte 64: invalid character '}' looking for beginning of object key string",
	}, {
		name:    "not an object",
		json:    `["GpuConfig"]`,
		wantErr: `parameters: Invalid value: ["GpuConfig"]: must be an object`,
	}, {
		name:    "no apiVersion",
		json:    `{"kind":"GpuConfig"}`,
		wantErr: `apiVersion: Required value: must be "resource.nvidia.com/v1beta1"`,
	}, {
		name:    "apiVersion of another version",
		json:    `{"apiVersion":"resource.nvidia.com/v1","kind":"GpuConfig"}`,
		wantErr: `apiVersion: Unsupported value: "resource.nvidia.com/v1": supported values: "resource.nvidia.com/v1beta1"`,
	}, {
		name:    "apiVersion is not a string",
		json:    `{"apiVersion":1,"kind":"GpuConfig"}`,
		wantErr: `apiVersion: Invalid value: 1: must be a string`,
	}, {
		name:    "no kind",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1"}`,
		wantErr: `kind: Required value: must be one of "GpuConfig", "MigDeviceConfig"`,
	}, {
		name:    "unknown kind",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"ImexChannelConfig"}`,
		wantErr: `kind: Unsupported value: "ImexChannelConfig": supported values: "GpuConfig", "MigDeviceConfig"`,
	}, {
		name:    "kind in the wrong case",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"gpuConfig"}`,
		wantErr: `kind: Unsupported value: "gpuConfig": supported values: "GpuConfig", "MigDeviceConfig"`,
	}, {
		name:    "misspelt MPS field",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThredPercentage":50}}}`,
		wantErr: "sharing.mpsConfig.defaultActiveThredPercentage: unknown field",
	}, {
		name:    "field names are case-sensitive",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","Sharing":{"strategy":"MPS"}}`,
		wantErr: "Sharing: unknown field",
	}, {
		name:    "time-slicing config on a MIG device",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"MigDeviceConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Long"}}}`,
		wantErr: "sharing.timeSlicingConfig: unknown field",
	}, {
		name:    "several unknown fields are reported together",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","foo":1,"sharing":{"strategy":"MPS","bar":2}}`,
		wantErr: "[foo: unknown field, sharing.bar: unknown field]",
	}, {
		name:    "duplicate field",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","strategy":"TimeSlicing"}}`,
		wantErr: "sharing.strategy: duplicate field",
	}, {
		name:    "duplicate kind",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"MigDeviceConfig","kind":"GpuConfig"}`,
		wantErr: "kind: duplicate field",
	}, {
		name:    "strategy is not a string",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":1}}`,
		wantErr: "sharing.strategy: Invalid value: 1: must be a string",
	}, {
		name:    "sharing is not an object",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":"MPS"}`,
		wantErr: `sharing: Invalid value: "MPS": must be an object`,
	}, {
		name:    "thread percentage is a string",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":"50%"}}}`,
		wantErr: `sharing.mpsConfig.defaultActiveThreadPercentage: Invalid value: "50%": must be an integer`,
	}, {
		name:    "thread percentage is a fraction",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":12.5}}}`,
		wantErr: `sharing.mpsConfig.defaultActiveThreadPercentage: Invalid value: 12.5: must be an integer`,
	}, {
		name:    "memory limit is not a quantity",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultPinnedDeviceMemoryLimit":"10GB"}}}`,
		wantErr: `sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: Invalid value: "10GB": must be a quantity such as 512Mi or 10Gi`,
	}, {
		name:    "per-device memory limit is not a quantity",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultPerDevicePinnedMemoryLimit":{"0":"1Gi","1":true}}}}`,
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[1]: Invalid value: true: must be a quantity such as 512Mi or 10Gi`,
	}, {
		name:    "per-device limits are not a map",
		json:    `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultPerDevicePinnedMemoryLimit":["1Gi"]}}}`,
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit: Invalid value: ["1Gi"]: must be an object`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Decode([]byte(tc.json))
			if err == nil {
				t.Fatalf("Decode accepted it: %#v", cfg)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("Decode error\n got: %s\nwant: %s", err, tc.wantErr)
			}
		})
	}
}

func TestComputePolicyValue(t *testing.T) {
	tests := []struct {
		interval TimeSliceInterval
		want     int
		wantErr  string
	}{
		{interval: "", want: 0},
		{interval: DefaultTimeSlice, want: 0},
		{interval: ShortTimeSlice, want: 1},
		{interval: MediumTimeSlice, want: 2},
		{interval: LongTimeSlice, want: 3},
		{interval: "long", wantErr: `time-slice interval "long" is not one of ["Default" "Short" "Medium" "Long"]`},
	}
	for _, tc := range tests {
		t.Run(string(tc.interval), func(t *testing.T) {
			got, err := tc.interval.ComputePolicyValue()
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ComputePolicyValue error = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ComputePolicyValue = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestDefaultsAreValid(t *testing.T) {
	for _, cfg := range []Config{DefaultGpuConfig(), DefaultMigDeviceConfig()} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("default %s does not validate: %v", cfg.Kind(), err)
		}
	}
}
