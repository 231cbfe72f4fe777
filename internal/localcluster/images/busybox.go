package images

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// BusyboxRef names the test image Busybox writes.
const BusyboxRef = "localhost/gpudra/busybox:1"

// hostBusybox is where Debian's busybox-static package installs the binary.
const hostBusybox = "/bin/busybox"

// defaultPath is the PATH the images set, the one container runtimes default to.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Busybox writes a small test image into workDir and returns the tar's path:
// the host's static /bin/busybox with a /bin symlink for each of its applets
// (sh, ls, cat, env, sleep, grep, ...), /tmp, and a passwd/group naming root
// and nobody so `id` and `ls -l` print names.
func Busybox(ctx context.Context, workDir string) (string, error) {
	return writeBusybox(ctx, workDir, hostBusybox)
}

func writeBusybox(ctx context.Context, workDir, busybox string) (string, error) {
	if err := checkStatic(busybox); err != nil {
		return "", fmt.Errorf("busybox image: %w (install the static build: apt-get install busybox-static)", err)
	}
	applets, err := busyboxApplets(ctx, busybox)
	if err != nil {
		return "", fmt.Errorf("busybox image: %w", err)
	}
	entries := []Entry{
		File("/bin/busybox", 0o755, busybox),
		// For scripts that start with #!/usr/bin/env.
		Symlink("/usr/bin/env", "/bin/busybox"),
		Dir("/tmp", 0o777|fs.ModeSticky),
		Dir("/root", 0o700),
		Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		Bytes("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
	}
	for _, applet := range applets {
		entries = append(entries, Symlink("/bin/"+applet, "busybox"))
	}
	tarPath := filepath.Join(workDir, tarFileName(BusyboxRef))
	if _, err := Write(Spec{
		Ref:     BusyboxRef,
		Entries: entries,
		Cmd:     []string{"sh"},
		Env:     []string{defaultPath},
	}, tarPath); err != nil {
		return "", err
	}
	return tarPath, nil
}

// checkStatic fails unless binary is an ELF program without an interpreter:
// Debian's dynamically linked busybox package also installs /bin/busybox,
// and it would not start in an image without a C library.
func checkStatic(binary string) error {
	f, err := elf.Open(binary)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", binary)
		}
	}
	return nil
}

// busyboxApplets asks the binary which applets it was built with, so every
// link in the image works.
func busyboxApplets(ctx context.Context, busybox string) ([]string, error) {
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return nil, fmt.Errorf("%s --list: %w: %s", busybox, err, exitErr.Stderr)
		}
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var applets []string
	for _, name := range strings.Fields(string(out)) {
		// busybox itself is the file, and a name with a slash would land
		// outside /bin.
		if name == "busybox" || strings.Contains(name, "/") {
			continue
		}
		applets = append(applets, name)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", busybox)
	}
	sort.Strings(applets)
	return applets, nil
}
