package v1beta1

import "testing"

func TestParseRejectsInvalid(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{{
		name:    "no strategy",
		yaml:    header + "kind: GpuConfig\nsharing: {}\n",
		wantErr: "sharing.strategy: Required value",
	}, {
		name:    "unknown strategy",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: Exclusive\n",
		wantErr: `sharing.strategy: Unsupported value: "Exclusive": supported values: "TimeSlicing", "MPS"`,
	}, {
		name:    "strategy in the wrong case",
		yaml:    header + "kind: MigDeviceConfig\nsharing:\n  strategy: mps\n",
		wantErr: `sharing.strategy: Unsupported value: "mps": supported values: "TimeSlicing", "MPS"`,
	}, {
		name:    "unknown interval",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: TimeSlicing\n  timeSlicingConfig:\n    interval: VeryLong\n",
		wantErr: `sharing.timeSlicingConfig.interval: Unsupported value: "VeryLong": supported values: "Default", "Short", "Medium", "Long"`,
	}, {
		name:    "time-slicing config with MPS",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  timeSlicingConfig:\n    interval: Short\n",
		wantErr: "sharing.timeSlicingConfig: Forbidden: only allowed with strategy TimeSlicing",
	}, {
		name:    "MPS config with time-slicing",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: TimeSlicing\n  mpsConfig:\n    defaultActiveThreadPercentage: 10\n",
		wantErr: "sharing.mpsConfig: Forbidden: only allowed with strategy MPS",
	}, {
		name:    "MPS config with time-slicing on a MIG device",
		yaml:    header + "kind: MigDeviceConfig\nsharing:\n  strategy: TimeSlicing\n  mpsConfig: {}\n",
		wantErr: "sharing.mpsConfig: Forbidden: only allowed with strategy MPS",
	}, {
		name:    "thread percentage above 100",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultActiveThreadPercentage: 101\n",
		wantErr: "sharing.mpsConfig.defaultActiveThreadPercentage: Invalid value: 101: must be between 0 and 100, inclusive",
	}, {
		name:    "negative thread percentage",
		yaml:    header + "kind: MigDeviceConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultActiveThreadPercentage: -1\n",
		wantErr: "sharing.mpsConfig.defaultActiveThreadPercentage: Invalid value: -1: must be between 0 and 100, inclusive",
	}, {
		name:    "zero memory limit",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPinnedDeviceMemoryLimit: 0\n",
		wantErr: `sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: Invalid value: "0": must be at least 1Mi`,
	}, {
		name:    "negative memory limit",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPinnedDeviceMemoryLimit: -1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: Invalid value: "-1Gi": must be at least 1Mi`,
	}, {
		name:    "memory limit below what MPS can express",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPinnedDeviceMemoryLimit: 1000Ki\n",
		wantErr: `sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: Invalid value: "1000Ki": must be at least 1Mi`,
	}, {
		name:    "memory limit above any GPU",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPinnedDeviceMemoryLimit: 2Ei\n",
		wantErr: `sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: Invalid value: "2Ei": must be at most 1Ei`,
	}, {
		name:    "memory limit with a huge exponent is rejected without expanding it",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPinnedDeviceMemoryLimit: 1e999999999\n",
		wantErr: `sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: Invalid value: must be between 1Mi and 1Ei`,
	}, {
		name:    "memory limit with a tiny exponent rounds to zero",
		yaml:    header + "kind: MigDeviceConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      \"0\": 1e-999999999\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[0]: Invalid value: "0": must be at least 1Mi`,
	}, {
		name:    "per-device key is neither index nor UUID",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      gpu-0: 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[gpu-0]: Invalid value: "gpu-0": key must be a device index within the claim (0, 1, ...) or a GPU- UUID`,
	}, {
		name:    "per-device key is a negative index",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      \"-1\": 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[-1]: Invalid value: "-1": key must be a device index within the claim (0, 1, ...) or a GPU- UUID`,
	}, {
		name:    "per-device key has a leading zero",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      \"01\": 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[01]: Invalid value: "01": key must be a device index within the claim (0, 1, ...) or a GPU- UUID`,
	}, {
		name:    "per-device key overflows",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      \"99999999999999999999\": 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[99999999999999999999]: Invalid value: "99999999999999999999": key must be a device index within the claim (0, 1, ...) or a GPU- UUID`,
	}, {
		name:    "MIG UUID on a full GPU",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      MIG-2e4e7a4c-0e61-5d8a-9c3b-6f1f4c1b7d2a: 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[MIG-2e4e7a4c-0e61-5d8a-9c3b-6f1f4c1b7d2a]: Invalid value: "MIG-2e4e7a4c-0e61-5d8a-9c3b-6f1f4c1b7d2a": key must be a device index within the claim (0, 1, ...) or a GPU- UUID`,
	}, {
		name:    "GPU UUID on a MIG device",
		yaml:    header + "kind: MigDeviceConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c: 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c]: Invalid value: "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c": key must be a device index within the claim (0, 1, ...) or a MIG- UUID`,
	}, {
		name:    "truncated UUID",
		yaml:    header + "kind: GpuConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      GPU-4cf8db2d: 1Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[GPU-4cf8db2d]: Invalid value: "GPU-4cf8db2d": key must be a device index within the claim (0, 1, ...) or a GPU- UUID`,
	}, {
		name:    "zero per-device limit",
		yaml:    header + "kind: MigDeviceConfig\nsharing:\n  strategy: MPS\n  mpsConfig:\n    defaultPerDevicePinnedMemoryLimit:\n      \"1\": 0Gi\n",
		wantErr: `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[1]: Invalid value: "0": must be at least 1Mi`,
	}, {
		name: "every problem is reported, in a stable order",
		yaml: header + `kind: GpuConfig
sharing:
  strategy: TimeSlicing
  mpsConfig:
    defaultActiveThreadPercentage: 200
    defaultPerDevicePinnedMemoryLimit:
      b: 1Gi
      a: 0
`,
		wantErr: `[sharing.mpsConfig: Forbidden: only allowed with strategy MPS, ` +
			`sharing.mpsConfig.defaultActiveThreadPercentage: Invalid value: 200: must be between 0 and 100, inclusive, ` +
			`sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[a]: Invalid value: "a": key must be a device index within the claim (0, 1, ...) or a GPU- UUID, ` +
			`sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[a]: Invalid value: "0": must be at least 1Mi, ` +
			`sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[b]: Invalid value: "b": key must be a device index within the claim (0, 1, ...) or a GPU- UUID]`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(fromYAML(t, tc.yaml))
			if err == nil {
				t.Fatalf("Parse accepted it: %#v", cfg)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("Parse error\n got: %s\nwant: %s", err, tc.wantErr)
			}
		})
	}
}
