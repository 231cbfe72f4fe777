package images

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// Driver writes the gpudra image into workDir and returns the tar's path:
// each of binaries (host paths) at /usr/bin/<base name>, the program
// interpreter and every shared library they link, found as the host's
// loader finds them and kept at the same paths with the same symlinks, and
// /tmp. tag is the image reference, e.g. localhost/gpudra/gpudra:dev.
//
// libnvidia-ml is deliberately absent: go-nvml dlopens it, and on a GPU node
// the CDI spec mounts the host driver's copy. The default command runs the
// first binary; pods are expected to set their own.
func Driver(ctx context.Context, workDir string, binaries []string, tag string) (string, error) {
	if len(binaries) == 0 {
		return "", fmt.Errorf("driver image %s: no binaries given", tag)
	}
	entries := []Entry{Dir("/tmp", 0o777|fs.ModeSticky)}
	byName := map[string]string{}
	for _, binary := range binaries {
		name := filepath.Base(binary)
		if other, taken := byName[name]; taken {
			return "", fmt.Errorf("driver image %s: binaries %s and %s would both be /usr/bin/%s", tag, other, binary, name)
		}
		byName[name] = binary
		entries = append(entries, File("/usr/bin/"+name, 0o755, binary))
	}

	resolver, err := newLibraryResolver(ldSoConf)
	if err != nil {
		return "", fmt.Errorf("driver image %s: %w", tag, err)
	}
	deps, err := resolver.resolve(binaries)
	if err != nil {
		return "", fmt.Errorf("driver image %s: %w", tag, err)
	}
	for _, hostPath := range append(deps.interpreters, deps.libraries...) {
		pathEntries, err := hostPathEntries(hostPath)
		if err != nil {
			return "", fmt.Errorf("driver image %s: %w", tag, err)
		}
		entries = append(entries, pathEntries...)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("driver image %s: %w", tag, err)
	}

	env := []string{defaultPath}
	if len(deps.extraDirs) > 0 {
		env = append(env, "LD_LIBRARY_PATH="+strings.Join(deps.extraDirs, ":"))
	}
	tarPath := filepath.Join(workDir, tarFileName(tag))
	if _, err := Write(Spec{
		Ref:     tag,
		Entries: entries,
		Cmd:     []string{"/usr/bin/" + filepath.Base(binaries[0])},
		Env:     env,
	}, tarPath); err != nil {
		return "", err
	}
	return tarPath, nil
}
