//go:build failpoints

package checkpoint

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// crashChildEnv tells a re-executed test binary to run crashChild.
const crashChildEnv = "GPUDRA_CHECKPOINT_CRASH_CHILD"

// TestCrashAtEachFailpoint kills a process (SIGKILL, via package
// failpoint) at each step of a Put and checks what the next Open finds: the
// old contents or the new, and no temp file. Run with -tags failpoints.
func TestCrashAtEachFailpoint(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	for _, fp := range []string{FailpointBeforeWrite, FailpointAfterTempSync, FailpointAfterRename} {
		t.Run(strings.ReplaceAll(fp, "/", "-"), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "cp.json")
			s, _ := openT(t, path)
			if err := s.Put(context.Background(), gpuClaim("old")); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(t.TempDir(), "failpoints.log")
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAtEachFailpoint$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+path, "GPUDRA_FAILPOINT="+fp+":1", "GPUDRA_FAILPOINT_LOG="+log)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("child was not killed at %s:\n%s", fp, out)
			}
			if data, _ := os.ReadFile(log); !strings.Contains(string(data), "crash "+fp) {
				t.Fatalf("failpoint log %q does not show the crash at %s (child: %v\n%s)", data, fp, err, out)
			}
			if fp == FailpointAfterTempSync {
				if got := dirNames(t, dir); len(got) != 2 {
					t.Errorf("before reopening, directory holds %q; want the checkpoint and a temp file", got)
				}
			}
			reopened, report := openT(t, path)
			var got []string
			for _, c := range reopened.List() {
				got = append(got, c.UID)
			}
			want := []string{"old"}
			if fp == FailpointAfterRename {
				want = []string{"new", "old"}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after a crash at %s the checkpoint holds %q; want %q", fp, got, want)
			}
			if fp == FailpointAfterTempSync && len(report.StaleTempFiles) != 1 {
				t.Errorf("StaleTempFiles = %q; want the temp file of the crashed write", report.StaleTempFiles)
			}
			if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"cp.json"}) {
				t.Errorf("after reopening, directory holds %q; want only cp.json", got)
			}
		})
	}
}

// crashChild puts a claim; the failpoint kills it on the way.
func crashChild(t *testing.T, path string) {
	s, _ := openT(t, path)
	if err := s.Put(context.Background(), gpuClaim("new")); err != nil {
		t.Fatal(err)
	}
	t.Fatal("Put returned; the failpoint should have killed the process")
}
