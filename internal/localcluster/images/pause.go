package images

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// PauseRef is the sandbox image name containerd 2.4.2 uses; the local
// containerd is configured never to pull it, so the imported image must carry
// exactly this name.
const PauseRef = "registry.k8s.io/pause:3.10.2"

//go:embed pause/pause.c
var pauseSource []byte

// Pause compiles the pause program into workDir and writes the sandbox image
// tar there, returning its path. It needs gcc and a static C library
// (Debian: gcc, libc6-dev).
func Pause(ctx context.Context, workDir string) (string, error) {
	binary := filepath.Join(workDir, "pause")
	if err := compilePause(ctx, binary); err != nil {
		return "", err
	}
	tarPath := filepath.Join(workDir, tarFileName(PauseRef))
	if _, err := Write(Spec{
		Ref:        PauseRef,
		Entries:    []Entry{File("/pause", 0o755, binary)},
		Entrypoint: []string{"/pause"},
	}, tarPath); err != nil {
		return "", err
	}
	return tarPath, nil
}

// compilePause builds the embedded pause/pause.c as a static, stripped binary, so
// the image needs no C library of its own.
func compilePause(ctx context.Context, binary string) error {
	if err := os.MkdirAll(filepath.Dir(binary), 0o755); err != nil {
		return fmt.Errorf("pause binary %s: %w", binary, err)
	}
	cmd := exec.CommandContext(ctx, "gcc", "-static", "-Os", "-s", "-Wall", "-Werror", "-o", binary, "-x", "c", "-")
	cmd.Stdin = bytes.NewReader(pauseSource)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compile pause binary %s with gcc -static: %w: %s", binary, err, out)
	}
	return nil
}
