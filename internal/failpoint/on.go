//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled tells whether this binary was built with failpoints.
const Enabled = true

var (
	mu     sync.Mutex
	target string
	nth    int
	hits   = map[string]int{}
	logf   *os.File
	// once, when set, is a file whose existence disarms the failpoint: the
	// crash creates it first, so a restarted process with the same
	// environment (a container the kubelet restarts) runs through.
	once string
)

func init() {
	if spec := os.Getenv("GPUDRA_FAILPOINT"); spec != "" {
		name, count, ok := strings.Cut(spec, ":")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "failpoint: GPUDRA_FAILPOINT=%q is not <name>:<n>\n", spec)
			os.Exit(2)
		}
		target, nth = name, n
	}
	once = os.Getenv("GPUDRA_FAILPOINT_ONCE")
	if path := os.Getenv("GPUDRA_FAILPOINT_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintf(os.Stderr, "failpoint: open log: %v\n", err)
			os.Exit(2)
		}
		logf = f
	}
}

// Hit records that the process reached the named step and kills it with
// SIGKILL when GPUDRA_FAILPOINT selects this hit.
func Hit(name string) {
	mu.Lock()
	defer mu.Unlock()
	hits[name]++
	if logf != nil {
		_, _ = logf.WriteString(name + "\n")
	}
	if name == target && hits[name] == nth {
		if once != "" {
			f, err := os.OpenFile(once, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return // fired before (or cannot be marked: do not loop)
			}
			_, _ = f.WriteString(name + "\n")
			_ = f.Sync()
			_ = f.Close()
		}
		if logf != nil {
			_, _ = logf.WriteString("crash " + name + "\n")
		}
		if os.Getpid() == 1 {
			// PID 1 of a container ignores signals it has no handler
			// for, SIGKILL from inside its namespace included: leave as
			// a kill would, without deferred functions or flushing.
			syscall.Exit(137)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not delivered synchronously everywhere
	}
}
