package nvml

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/contract"
)

// fakeSMIEnv, when set, makes the test binary act as nvidia-smi: it takes
// `compute-policy -i <uuid> --set-timeslice=<n>` as the real one does and
// records the time slice per UUID in the JSON file the variable names.
// fakeSMIGPUs lists the UUIDs it accepts, comma separated.
const (
	fakeSMIEnv  = "GPUDRA_FAKE_NVIDIA_SMI_STATE"
	fakeSMIGPUs = "GPUDRA_FAKE_NVIDIA_SMI_GPUS"
)

func TestMain(m *testing.M) {
	if state := os.Getenv(fakeSMIEnv); state != "" {
		if err := fakeNvidiaSMI(state, os.Getenv(fakeSMIGPUs), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var setTimeSliceArg = regexp.MustCompile(`^--set-timeslice=([0-9]+)$`)

func fakeNvidiaSMI(state, gpus string, args []string) error {
	if len(args) != 4 || args[0] != "compute-policy" || args[1] != "-i" {
		return fmt.Errorf("fake nvidia-smi: unexpected arguments %q", args)
	}
	uuid, m := args[2], setTimeSliceArg.FindStringSubmatch(args[3])
	if m == nil {
		return fmt.Errorf("fake nvidia-smi: unexpected argument %q", args[3])
	}
	n, _ := strconv.Atoi(m[1])
	if n > 3 {
		return fmt.Errorf("Invalid timeslice value %d", n)
	}
	if !regexp.MustCompile(`(^|,)` + regexp.QuoteMeta(uuid) + `(,|$)`).MatchString(gpus) {
		return fmt.Errorf("No devices were found matching %s", uuid)
	}
	slices, err := readFakeSMIState(state)
	if err != nil {
		return err
	}
	slices[uuid] = gpu.TimeSlice(n)
	data, _ := json.Marshal(slices)
	return os.WriteFile(state, data, 0o644)
}

func readFakeSMIState(path string) (map[string]gpu.TimeSlice, error) {
	out := map[string]gpu.TimeSlice{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	return out, json.Unmarshal(data, &out)
}

// settingsHardware teaches a mock server's devices to keep a compute mode
// (the mock panics on SetComputeMode), to answer IsMigDeviceHandle, and
// the server to hand out a MIG device's handle by its UUID, as NVML does.
func settingsHardware(srv *server.Server) {
	var mu sync.Mutex
	byUUID := srv.DeviceGetHandleByUUIDFunc
	srv.DeviceGetHandleByUUIDFunc = func(uuid string) (gonvml.Device, gonvml.Return) {
		if d, ret := byUUID(uuid); ret == gonvml.SUCCESS {
			return d, gonvml.SUCCESS
		}
		for i, d := range srv.Devices {
			for _, h := range mockMIGHandles(i, d.(*server.Device)) {
				if u, _ := h.GetUUID(); u == uuid {
					return h, gonvml.SUCCESS
				}
			}
		}
		return nil, gonvml.ERROR_NOT_FOUND
	}
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		mode := gonvml.COMPUTEMODE_DEFAULT
		dev.GetComputeModeFunc = func() (gonvml.ComputeMode, gonvml.Return) {
			mu.Lock()
			defer mu.Unlock()
			return mode, gonvml.SUCCESS
		}
		dev.SetComputeModeFunc = func(m gonvml.ComputeMode) gonvml.Return {
			mu.Lock()
			defer mu.Unlock()
			if m > gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS {
				return gonvml.ERROR_INVALID_ARGUMENT
			}
			mode = m
			return gonvml.SUCCESS
		}
		dev.IsMigDeviceHandleFunc = func() (bool, gonvml.Return) { return false, gonvml.SUCCESS }
	}
}

// TestSettingsContract runs the settings contract on a mock DGX H100 with
// GPU 0 in MIG mode, with the test binary as nvidia-smi.
func TestSettingsContract(t *testing.T) {
	contract.RunSettings(t, func(t *testing.T) contract.SettingsNode {
		srv := dgxh100.New()
		fillMockGaps(t, srv)
		newMIGHardware(t, srv, 0)
		settingsHardware(srv)
		state := filepath.Join(t.TempDir(), "smi.json")
		uuids := ""
		for i := range srv.Devices {
			uuids += mockUUID(i) + ","
		}
		t.Setenv(fakeSMIEnv, state)
		t.Setenv(fakeSMIGPUs, uuids)
		open := func(t *testing.T) contract.SettingsBackend {
			b, err := New(Options{Lib: srv, SysfsRoot: t.TempDir(), NvidiaSMI: os.Args[0]})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		}
		return contract.SettingsNode{
			Backend: open(t),
			Reopen:  open,
			TimeSlice: func(t *testing.T, uuid string) gpu.TimeSlice {
				slices, err := readFakeSMIState(state)
				if err != nil {
					t.Fatal(err)
				}
				return slices[uuid] // never set: the GPU's Default
			},
		}
	})
}

// TestSetTimeSliceFailures: nvidia-smi missing under the driver root, or
// failing, is an error that says what ran and what it printed.
func TestSetTimeSliceFailures(t *testing.T) {
	srv := dgxh100.New()
	fillMockGaps(t, srv)
	settingsHardware(srv)
	root := t.TempDir()
	b, err := New(Options{Lib: srv, SysfsRoot: t.TempDir(), DriverRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	err = b.SetTimeSlice(t.Context(), mockUUID(2), gpu.TimeSliceShort)
	wantErrText(t, err, "set time slice of "+mockUUID(2)+" to Short", "nvidia-smi not found under driver root "+root, filepath.Join(root, "usr/bin/nvidia-smi"))

	// An nvidia-smi under the driver root that refuses.
	bin := filepath.Join(root, "usr", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho 'Unable to set timeslice: Insufficient Permissions' >&2\nexit 4\n"
	if err := os.WriteFile(filepath.Join(bin, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err = b.SetTimeSlice(t.Context(), mockUUID(2), gpu.TimeSliceShort)
	wantErrText(t, err, "compute-policy -i "+mockUUID(2)+" --set-timeslice=1", "exit status 4", "Insufficient Permissions")
}

func wantErrText(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !regexp.MustCompile(regexp.QuoteMeta(p)).MatchString(err.Error()) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
