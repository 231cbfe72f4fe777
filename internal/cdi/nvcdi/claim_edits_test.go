package nvcdi

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

func TestClaimEdits(t *testing.T) {
	n := newFakeNode(t)
	opts := n.options(t)
	e, err := NewEditor(opts)
	if err != nil {
		t.Fatal(err)
	}
	edits, err := e.ClaimEdits(nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, node := range []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"} {
		t.Run("device node "+node, func(t *testing.T) {
			got := findDeviceNode(edits, node)
			if got == nil {
				t.Fatalf("no device node %s in %v", node, deviceNodePaths(edits))
			}
			if want := n.path(node); got.HostPath != want {
				t.Errorf("host path %q, want %q", got.HostPath, want)
			}
		})
	}
	for _, file := range []string{
		"/" + libDir + "/libcuda.so." + driverVersion,
		"/" + libDir + "/libnvidia-ml.so." + driverVersion,
		"/" + libDir + "/libnvidia-ptxjitcompiler.so." + driverVersion,
		"/usr/bin/nvidia-smi",
		"/lib/firmware/nvidia/" + driverVersion + "/gsp_ga10x.bin",
	} {
		t.Run("mount "+file, func(t *testing.T) {
			got := findMount(edits, file)
			if got == nil {
				t.Fatalf("no mount at %s", file)
			}
			if want := n.path(file); got.HostPath != want {
				t.Errorf("host path %q, want %q", got.HostPath, want)
			}
			if !slices.Contains(got.Options, "ro") {
				t.Errorf("options %v, want read-only", got.Options)
			}
		})
	}
	for _, hook := range []string{"update-ldcache", "create-symlinks"} {
		t.Run("hook "+hook, func(t *testing.T) {
			got := findHook(edits, hook)
			if got == nil {
				t.Fatalf("no %s hook", hook)
			}
			if got.Path != opts.NVIDIACDIHookPath {
				t.Errorf("hook path %q, want %q", got.Path, opts.NVIDIACDIHookPath)
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		var visible []string
		for _, env := range edits.Env {
			if strings.HasPrefix(env, "NVIDIA_VISIBLE_DEVICES=") {
				visible = append(visible, env)
			}
		}
		if want := []string{visibleDevicesVoid}; !slices.Equal(visible, want) {
			t.Errorf("NVIDIA_VISIBLE_DEVICES entries %v, want %v", visible, want)
		}
	})
}

func TestClaimEditsAreComputedOnce(t *testing.T) {
	n := newFakeNode(t)
	e, err := NewEditor(n.options(t))
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.ClaimEdits(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Were the edits computed again, these would be missing from them.
	for _, file := range []string{libDir + "/libnvidia-ptxjitcompiler.so." + driverVersion, "usr/bin/nvidia-smi"} {
		if err := os.Remove(n.path(file)); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	later := make([]*cdispec.ContainerEdits, 4)
	errs := make([]error, len(later))
	for i := range later {
		wg.Go(func() { later[i], errs[i] = e.ClaimEdits(nil) })
	}
	wg.Wait()
	for i := range later {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !reflect.DeepEqual(later[i], first) {
			t.Errorf("call %d returned edits that differ from the first call's:\n%+v\nwant\n%+v", i+2, later[i], first)
		}
	}
}

func TestClaimEditsAreNotCachedWithoutControlNodes(t *testing.T) {
	for _, missing := range requiredControlNodes {
		t.Run(missing, func(t *testing.T) {
			n := newFakeNode(t)
			if err := os.Remove(n.path(missing)); err != nil {
				t.Fatal(err)
			}
			e, err := NewEditor(n.options(t))
			if err != nil {
				t.Fatal(err)
			}

			_, err = e.ClaimEdits(nil)
			if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), n.root) {
				t.Fatalf("ClaimEdits error = %v, want one naming %s and dev root %s", err, missing, n.root)
			}

			// The node appears (the module is loaded): the next claim gets it.
			n.charDevice(t, missing)
			edits, err := e.ClaimEdits(nil)
			if err != nil {
				t.Fatal(err)
			}
			if findDeviceNode(edits, missing) == nil {
				t.Errorf("no device node %s in %v after it appeared", missing, deviceNodePaths(edits))
			}
		})
	}
}

func TestClaimEditsReturnPrivateCopies(t *testing.T) {
	n := newFakeNode(t)
	e, err := NewEditor(n.options(t))
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.ClaimEdits(nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cloneEdits(first)
	if err != nil {
		t.Fatal(err)
	}

	first.Env = append(first.Env[:0], "CALLER=1")
	first.DeviceNodes[0].Path = "/dev/changed"
	first.Mounts[0].Options[0] = "rw"
	first.Hooks[0].Args[0] = "changed"

	second, err := e.ClaimEdits(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, want) {
		t.Errorf("a caller's changes leaked into the cached edits:\n%+v\nwant\n%+v", second, want)
	}
}

func findDeviceNode(edits *cdispec.ContainerEdits, path string) *cdispec.DeviceNode {
	for _, n := range edits.DeviceNodes {
		if n.Path == path {
			return n
		}
	}
	return nil
}

func findMount(edits *cdispec.ContainerEdits, containerPath string) *cdispec.Mount {
	for _, m := range edits.Mounts {
		if filepath.Clean(m.ContainerPath) == containerPath {
			return m
		}
	}
	return nil
}

// findHook finds an nvidia-cdi-hook by subcommand.
func findHook(edits *cdispec.ContainerEdits, subcommand string) *cdispec.Hook {
	for _, h := range edits.Hooks {
		if slices.Contains(h.Args, subcommand) {
			return h
		}
	}
	return nil
}

// TestClaimEditsAfterADriverUpgradeMountTheNewDriver upgrades the fake
// node's driver while the editor runs, as the GPU operator does: the old
// libraries and firmware go, the new ones come, NVML and the kernel module
// report the new version. The next claim must mount the new driver. The
// toolkit keeps the version it found when it was set up, so recomputing
// the edits with the same toolkit is not enough.
func TestClaimEditsAfterADriverUpgradeMountTheNewDriver(t *testing.T) {
	const newVersion = "560.35.03"
	n := newFakeNode(t)
	opts := n.options(t)
	version := driverVersion
	opts.DriverVersion = func() (string, error) { return version, nil }
	e, err := NewEditor(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ClaimEdits(nil); err != nil {
		t.Fatal(err)
	}

	n.upgradeDriver(t, driverVersion, newVersion)
	version = newVersion
	edits, err := e.ClaimEdits(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		if findMount(edits, "/"+libDir+"/"+lib+"."+newVersion) == nil {
			t.Errorf("no mount of the new driver's %s.%s", lib, newVersion)
		}
		if m := findMount(edits, "/"+libDir+"/"+lib+"."+driverVersion); m != nil {
			t.Errorf("mount of the old driver's %s, gone from the node: %+v", lib, m)
		}
	}
	if findMount(edits, "/lib/firmware/nvidia/"+newVersion+"/gsp_ga10x.bin") == nil {
		t.Errorf("no mount of the new driver's firmware")
	}
}
