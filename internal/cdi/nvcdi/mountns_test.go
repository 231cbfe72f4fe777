package nvcdi

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// inMountNamespaceEnv marks the child process that runs a test in its own
// mount namespace.
const inMountNamespaceEnv = "GPUDRA_NVCDI_TEST_IN_MOUNT_NAMESPACE"

// inPrivateMountNamespace lets a test change host paths the toolkit reads
// without an option to redirect them (/proc/driver/nvidia-caps). In the
// parent it reruns the calling top-level test in a child process with a
// private mount namespace, fails t if the child fails or does not run the
// test, and returns false. In the child it returns true: the test body runs
// there. Root needs only the mount namespace; other users also need
// unprivileged user namespaces.
func inPrivateMountNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inMountNamespaceEnv) == "1" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inMountNamespaceEnv+"=1")
	// Go makes every mount in the new namespace private, so nothing done in
	// the child reaches the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a private mount namespace (needs root or unprivileged user namespaces): %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not run in the child process:\n%s", t.Name(), out)
	}
	t.Logf("%s passed in a private mount namespace:\n%s", t.Name(), out)
	return false
}

// fakeProcDriverFile replaces /proc/driver, in the child's private mount
// namespace only, with a tmpfs holding one file at rel with content.
func fakeProcDriverFile(t *testing.T, rel, content string) {
	t.Helper()
	if os.Getenv(inMountNamespaceEnv) != "1" {
		t.Fatal("fakeProcDriverFile outside a private mount namespace would change the host")
	}
	const procDriver = "/proc/driver"
	if err := unix.Mount("tmpfs", procDriver, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", procDriver, err)
	}
	path := filepath.Join(procDriver, rel)
	mkdirFor(t, path)
	if err := os.WriteFile(path, []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
}
