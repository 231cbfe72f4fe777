package localcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Host paths a full cluster uses outside Root (standard paths, so that the
// DRA plugin and its Helm chart need no special settings).
const (
	kubeletRoot = "/var/lib/kubelet"
	cdiRunDir   = "/var/run/cdi"
)

// Clean stops the cluster and removes everything it left: processes (by
// PID), mounts, state under Root, and for a full cluster the kubelet
// directory, CDI specs, the pod bridge and the iptables chains the cluster
// created (KUBE-*, CNI-*; nothing else is touched).
func (c *Cluster) Clean(ctx context.Context) error {
	full := c.Full
	if s, err := LoadState(c.Root); err == nil {
		full = full || s.Full
	}
	if err := c.Down(ctx); err != nil {
		return err
	}
	// Components whose state file was lost still have PID files.
	for _, name := range fullComponents {
		if err := stopStale(filepath.Join(c.Root, "pids", name+".pid"), name); err != nil {
			return err
		}
	}
	dirs := []string{c.Root}
	if full {
		dirs = append(dirs, kubeletRoot)
	}
	for _, dir := range dirs {
		if err := unmountUnder(dir); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(c.Root, 0o755); err != nil {
		return err
	}
	if !full {
		return nil
	}
	if err := os.RemoveAll(cdiRunDir); err != nil {
		return err
	}
	if err := deleteBridge(); err != nil {
		return err
	}
	return removeIptablesChains()
}

// removeAllPods force-removes every pod sandbox through the CRI, so the
// shims, mounts and network namespaces go away with them.
func (c *Cluster) removeAllPods() {
	sock := ContainerdSocket(c.Root)
	if _, err := os.Stat(sock); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin("crictl"), "--runtime-endpoint=unix://"+sock, "--timeout=30s", "rmp", "--all", "--force")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.logf("removing pods: %v: %s", err, bytes.TrimSpace(out))
	}
}

// stopShims kills runc shims (and what runs under them) started by this
// cluster's containerd, identified by the containerd address on their
// command line, which is unique to Root.
func (c *Cluster) stopShims() {
	addr := ContainerdSocket(c.Root)
	procs, err := listProcs()
	if err != nil {
		return
	}
	for pid, p := range procs {
		if filepath.Base(p.argv0) != "containerd-shim-runc-v2" || !p.hasArg(addr) {
			continue
		}
		for _, child := range descendants(procs, pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

type procInfo struct {
	ppid  int
	argv0 string
	args  []string
}

func (p procInfo) hasArg(a string) bool {
	for _, x := range p.args {
		if x == a {
			return true
		}
	}
	return false
}

func listProcs() (map[int]procInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := map[int]procInfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// stat: pid (comm) state ppid ...; comm may contain spaces.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		procs[pid] = procInfo{ppid: ppid, argv0: args[0], args: args}
	}
	return procs, nil
}

// descendants lists pid's descendants, deepest first.
func descendants(procs map[int]procInfo, pid int) []int {
	var out []int
	for child, p := range procs {
		if p.ppid == pid {
			out = append(out, descendants(procs, child)...)
			out = append(out, child)
		}
	}
	return out
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first (pod volumes, overlay roots, network namespaces, shm).
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	prefix := filepath.Clean(dir)
	var points []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == prefix || strings.HasPrefix(mp, prefix+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	return scanner.Err()
}

// unescapeMount decodes mountinfo's octal escapes (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func createBridge() error {
	if err := deleteBridge(); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", bridgeIP + "/24", "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func deleteBridge() error {
	if !exists("/sys/class/net/" + bridgeName) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", bridgeName).CombinedOutput(); err != nil {
		return fmt.Errorf("delete bridge %s: %w: %s", bridgeName, err, out)
	}
	return nil
}

// removeIptablesChains deletes the rules that jump to KUBE-* or CNI-* chains
// and then those chains, in the filter, nat and mangle tables. Whole tables
// are never flushed: other rules on the machine are not ours.
func removeIptablesChains() error {
	if !onPath("iptables") {
		return nil
	}
	ours := func(chain string) bool { return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-") }
	for _, table := range []string{"filter", "nat", "mangle"} {
		out, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		if err != nil {
			continue
		}
		var chains []string
		var jumps [][]string
		for _, line := range strings.Split(string(out), "\n") {
			f := splitRule(line)
			switch {
			case len(f) == 2 && f[0] == "-N" && ours(f[1]):
				chains = append(chains, f[1])
			case len(f) > 2 && f[0] == "-A" && !ours(f[1]):
				for i := 0; i+1 < len(f); i++ {
					if f[i] == "-j" && ours(f[i+1]) {
						jumps = append(jumps, append([]string{"-w", "-t", table, "-D"}, f[1:]...))
					}
				}
			}
		}
		for _, args := range jumps {
			_ = exec.Command("iptables", args...).Run()
		}
		for _, chain := range chains {
			_ = exec.Command("iptables", "-w", "-t", table, "-F", chain).Run()
		}
		for _, chain := range chains {
			_ = exec.Command("iptables", "-w", "-t", table, "-X", chain).Run()
		}
	}
	return nil
}

// splitRule splits a line of `iptables -S` into arguments: fields separated
// by spaces, where a double-quoted field (comments) may hold spaces and
// backslash-escaped quotes.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case inQuote && ch == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote, have = !inQuote, true
		case ch == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func onPath(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}
