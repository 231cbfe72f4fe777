//go:build failpoints

package cdi

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
)

// crashChildEnv tells a re-executed test binary to run crashChild.
const crashChildEnv = "GPUDRA_CDI_CRASH_CHILD"

// TestCrashAtEachFailpoint kills a process (SIGKILL, via package
// failpoint) at each step of replacing and of deleting a spec, and checks
// what the runtime and the restarted plugin find. Run with -tags failpoints.
func TestCrashAtEachFailpoint(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	tests := []struct {
		failpoint string
		// wantDevices is the number of devices in the spec the runtime
		// sees after the crash: 1 the old spec, 2 the new, 0 none.
		wantDevices int
		wantStale   bool
	}{
		{FailpointBeforeWrite, 1, false},
		{FailpointAfterTempSync, 1, true},
		{FailpointAfterRename, 2, false},
		{FailpointBeforeRemove, 2, false},
		{FailpointAfterRemove, 0, false},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.failpoint, "/", "-"), func(t *testing.T) {
			w, dir := newTestWriter(t, SimEditor{})
			if _, err := w.WriteClaimSpec(context.Background(), testClaim(gpuClaimUID), gpuClaimDevices()[1:]); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(t.TempDir(), "failpoints.log")
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAtEachFailpoint$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "GPUDRA_FAILPOINT="+tt.failpoint+":1", "GPUDRA_FAILPOINT_LOG="+log)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("child was not killed at %s:\n%s", tt.failpoint, out)
			}
			if data, _ := os.ReadFile(log); !strings.Contains(string(data), "crash "+tt.failpoint) {
				t.Fatalf("failpoint log %q does not show the crash at %s (child: %v\n%s)", data, tt.failpoint, err, out)
			}

			cache, err := cdilib.NewCache(cdilib.WithSpecDirs(dir), cdilib.WithAutoRefresh(false))
			if err != nil {
				t.Fatal(err)
			}
			if errs := cache.GetErrors(); len(errs) != 0 {
				t.Errorf("the runtime's CDI cache reports %v", errs)
			}
			if got := len(cache.ListDevices()); got != tt.wantDevices {
				t.Errorf("the runtime sees %d devices (%q); want %d", got, cache.ListDevices(), tt.wantDevices)
			}
			removed, err := w.RemoveStaleTempFiles()
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantStale != (len(removed) == 1) {
				t.Errorf("RemoveStaleTempFiles removed %q; want a temp file: %v", removed, tt.wantStale)
			}
			want := []string{filepath.Base(specFile(dir, gpuClaimUID))}
			if tt.wantDevices == 0 {
				want = nil
			}
			if got := dirEntries(t, dir); !reflect.DeepEqual(got, want) {
				t.Errorf("directory holds %q; want %q", got, want)
			}
		})
	}
}

// crashChild rewrites the claim's spec with both devices, then deletes it;
// the failpoint kills it on the way.
func crashChild(t *testing.T, dir string) {
	w, err := NewWriter(dir, DefaultVendor, DefaultClass, SimEditor{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := w.WriteClaimSpec(ctx, testClaim(gpuClaimUID), gpuClaimDevices()); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteClaimSpec(ctx, gpuClaimUID); err != nil {
		t.Fatal(err)
	}
	t.Fatal("the failpoint should have killed the process")
}
