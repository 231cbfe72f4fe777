package crash

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The harness must be able to fail: a spec deleted behind the plugin's
// back after the recovery is reported as a violation naming the claim.
// (make test runs the harness itself for 50 runs against the real
// plugin; this checks that it would see a broken invariant.)
func TestHarnessReportsBrokenState(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and starts an API server")
	}
	bin := filepath.Join(t.TempDir(), "gpudra-kubelet-plugin")
	build := exec.Command("go", "build", "-tags", "failpoints", "-o", bin, "../../../cmd/gpudra-kubelet-plugin")
	build.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_CFLAGS=-Wno-deprecated-declarations")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	broke := 0
	res, err := Run(context.Background(), Options{
		Cluster: ClusterOptions{Repo: "../../.."},
		// WorkDir stays the default (/tmp): a t.TempDir() path is too long
		// for the plugin's unix sockets.
		Binary: bin, Runs: 3, Seed: 7,
		Break: func(opts PluginOptions) {
			specs, _ := filepath.Glob(filepath.Join(opts.CDIDir(), "*.json"))
			if len(specs) > 0 {
				broke++
				_ = os.Remove(specs[0])
			}
		},
		Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if broke == 0 {
		t.Fatal("no run left a prepared claim to break; the test checks nothing")
	}
	if len(res.Violations) < broke {
		t.Fatalf("%d specs deleted, %d violations: %+v", broke, len(res.Violations), res.Violations)
	}
	for _, v := range res.Violations {
		if !strings.Contains(v.What, "spec") {
			t.Errorf("violation does not name the spec: %+v", v)
		}
	}
	if res.Runs != 3 || !strings.HasPrefix(res.Summary(), "runs=3 steps=") {
		t.Errorf("summary %q", res.Summary())
	}
}
