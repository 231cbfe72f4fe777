package nvcdi

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

func TestNewEditorRefusesNodeWhereNVMLDoesNotStart(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_NO_PERMISSION} {
		t.Run(ret.Error(), func(t *testing.T) {
			// Only Init is implemented: any other NVML call panics, as the
			// real library kills the process after a failed Init.
			lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
			n := newFakeNode(t)
			opts := n.options(t)
			opts.NvmlLib = lib

			_, err := NewEditor(opts)
			if !errors.Is(err, ret) {
				t.Fatalf("NewEditor error = %v, want one wrapping %v", err, ret)
			}
			if !strings.Contains(err.Error(), n.root) {
				t.Errorf("error %q does not name the driver root %s", err, n.root)
			}
		})
	}
}

// TestNewEditorLoadsNVMLFromDriverRoot uses the real go-nvml library on a
// driver root whose libnvidia-ml.so.1 cannot be loaded: Init fails, and any
// further NVML call would end the test process.
func TestNewEditorLoadsNVMLFromDriverRoot(t *testing.T) {
	tests := []struct {
		name    string
		root    func(t *testing.T) string
		wantErr string
	}{
		{
			name:    "no libnvidia-ml.so.1",
			root:    func(t *testing.T) string { return t.TempDir() },
			wantErr: "find libnvidia-ml.so.1",
		},
		{
			name:    "libnvidia-ml.so.1 that does not load",
			root:    func(t *testing.T) string { return newFakeNode(t).root },
			wantErr: "initialize NVML",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.root(t)
			_, err := NewEditor(Options{DriverRoot: root, Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), root) {
				t.Fatalf("NewEditor error = %v, want %q naming driver root %s", err, tc.wantErr, root)
			}
		})
	}
}

func TestNVMLInitAndShutdownStayBalanced(t *testing.T) {
	n := newFakeNode(t)
	var mu sync.Mutex
	var inits, shutdowns int
	n.nvml.InitFunc = func() nvml.Return {
		mu.Lock()
		defer mu.Unlock()
		inits++
		return nvml.SUCCESS
	}
	n.nvml.ShutdownFunc = func() nvml.Return {
		mu.Lock()
		defer mu.Unlock()
		shutdowns++
		return nvml.SUCCESS
	}

	e, err := NewEditor(n.options(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ClaimEdits(nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := e.DeviceEdits(n.gpuDevice(i)); err != nil {
			t.Fatal(err)
		}
	}

	if inits == 0 || inits != shutdowns {
		t.Errorf("NVML Init called %d times, Shutdown %d times; want equal and non-zero (the GPU backend's own Init must stay in force)", inits, shutdowns)
	}
}

func TestDeviceEditsStopAtFailedNVMLInit(t *testing.T) {
	n := newFakeNode(t)
	e, err := NewEditor(n.options(t))
	if err != nil {
		t.Fatal(err)
	}
	// The driver goes away after start-up: Init fails from now on, and
	// nothing else may be called.
	n.nvml.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
	calledAfterFailedInit := func(method string) { t.Errorf("NVML %s called after a failed Init", method) }
	n.nvml.ShutdownFunc = func() nvml.Return { calledAfterFailedInit("Shutdown"); return nvml.SUCCESS }
	n.nvml.DeviceGetHandleByUUIDFunc = func(string) (nvml.Device, nvml.Return) {
		calledAfterFailedInit("DeviceGetHandleByUUID")
		return nil, nvml.ERROR_UNINITIALIZED
	}
	n.nvml.DeviceGetHandleByIndexFunc = func(int) (nvml.Device, nvml.Return) {
		calledAfterFailedInit("DeviceGetHandleByIndex")
		return nil, nvml.ERROR_UNINITIALIZED
	}

	dev := n.gpuDevice(0)
	_, err = e.DeviceEdits(dev)
	if !errors.Is(err, nvml.ERROR_DRIVER_NOT_LOADED) {
		t.Fatalf("DeviceEdits error = %v, want one wrapping %v", err, nvml.ERROR_DRIVER_NOT_LOADED)
	}
	for _, want := range []string{dev.Name, dev.UUID()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestEditorConcurrentUse is meant for the race detector: claims are
// prepared in parallel.
func TestEditorConcurrentUse(t *testing.T) {
	n := newFakeNode(t)
	e, err := NewEditor(n.options(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(n.gpus))
	for i := range n.gpus {
		wg.Go(func() {
			if _, err := e.ClaimEdits(nil); err != nil {
				errs[i] = err
				return
			}
			dev := n.gpuDevice(i)
			edits, err := e.DeviceEdits(dev)
			if err != nil {
				errs[i] = err
				return
			}
			if got, want := deviceNodePaths(edits), fmt.Sprintf("/dev/nvidia%d", dev.GPU.Minor); len(got) != 1 || got[0] != want {
				errs[i] = fmt.Errorf("%s: device nodes %v, want [%s]", dev.Name, got, want)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
