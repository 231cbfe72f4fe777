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
		if logf != nil {
			_, _ = logf.WriteString("crash " + name + "\n")
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not delivered synchronously everywhere
	}
}
