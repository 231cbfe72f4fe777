package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPauseImage(t *testing.T) {
	workDir := t.TempDir()
	tarPath, err := Pause(context.Background(), workDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(workDir, "registry.k8s.io_pause_3.10.2.tar"); tarPath != want {
		t.Errorf("Pause wrote %s, want %s", tarPath, want)
	}
	img := readImageTar(t, tarPath)
	if got := img.index.Manifests[0].Annotations[annotationImageName]; got != "registry.k8s.io/pause:3.10.2" {
		t.Errorf("image name = %q, want registry.k8s.io/pause:3.10.2", got)
	}
	if !reflect.DeepEqual(img.config.Config.Entrypoint, []string{"/pause"}) {
		t.Errorf("entrypoint = %v, want [/pause]", img.config.Config.Entrypoint)
	}
	pause := img.file(t, "pause")
	if pause.hdr.Mode != 0o755 || len(pause.data) == 0 {
		t.Errorf("/pause: mode %o, %d bytes; want an executable", pause.hdr.Mode, len(pause.data))
	}
	// Static: the image has no C library to load.
	if err := checkStatic(filepath.Join(workDir, "pause")); err != nil {
		t.Error(err)
	}
}

func TestPauseExitsCleanlyOnSignal(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "pause")
	if err := compilePause(context.Background(), binary); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(binary)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill() }()
			waitForHandler(t, cmd.Process.Pid, sig)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("pause after %v: %v, want exit status 0", sig, err)
			}
		})
	}
}

// waitForHandler waits until pid has installed a handler for sig, so the
// signal tests the handler rather than racing the program's start.
func waitForHandler(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		caught, err := caughtSignals(pid)
		if err != nil {
			t.Fatal(err)
		}
		if caught&(1<<(uint(sig)-1)) != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not install a %v handler within 10s (SigCgt %x)", pid, sig, caught)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func caughtSignals(pid int) (uint64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if value, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			return strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no SigCgt line", pid)
}
