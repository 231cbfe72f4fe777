package images

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// ldSoConf is the host's loader configuration, read for the library search
// directories that ld.so's cache would cover.
const ldSoConf = "/etc/ld.so.conf"

// runtimeDeps is what dynamically linked programs need at start.
type runtimeDeps struct {
	// interpreters are the program interpreters (PT_INTERP) as recorded,
	// e.g. /lib64/ld-linux-x86-64.so.2.
	interpreters []string
	// libraries are the host paths of every DT_NEEDED object, transitively,
	// as the search found them (directory + soname, links not followed).
	libraries []string
	// extraDirs are the directories libraries came from that the loader
	// does not search by default; without a loader cache in the image they
	// must be on LD_LIBRARY_PATH.
	extraDirs []string
}

// libraryResolver finds shared objects the way the host's ld.so would:
// RUNPATH/RPATH, then the ld.so.conf directories, then the system defaults.
// Libraries opened with dlopen (go-nvml's libnvidia-ml) are not in
// DT_NEEDED and so are not found, which is intended.
type libraryResolver struct {
	searchDirs  []string
	defaultDirs map[string]bool
}

func newLibraryResolver(confPath string) (*libraryResolver, error) {
	confDirs, err := readLdSoConf(confPath, 0)
	if err != nil {
		return nil, err
	}
	defaults := defaultLibraryDirs()
	r := &libraryResolver{defaultDirs: map[string]bool{}}
	for _, d := range defaults {
		r.defaultDirs[d] = true
	}
	seen := map[string]bool{}
	for _, d := range append(confDirs, defaults...) {
		if !seen[d] {
			seen[d] = true
			r.searchDirs = append(r.searchDirs, d)
		}
	}
	return r, nil
}

// defaultLibraryDirs are the directories glibc's loader searches without a
// cache: Debian's multiarch pair plus the classic and lib64 ones.
func defaultLibraryDirs() []string {
	var dirs []string
	if triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]; triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	return append(dirs, "/lib", "/usr/lib", "/lib64", "/usr/lib64")
}

// readLdSoConf returns the directories listed in an ld.so.conf file,
// following its include lines. A missing file lists nothing.
func readLdSoConf(confPath string, depth int) ([]string, error) {
	if depth > 8 {
		return nil, fmt.Errorf("ld.so.conf %s: includes nested too deep", confPath)
	}
	f, err := os.Open(confPath)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ld.so.conf: %w", err)
	}
	defer func() { _ = f.Close() }()
	var dirs []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line, _, _ := strings.Cut(scanner.Text(), "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0 || fields[0] == "hwcap":
		case fields[0] == "include":
			for _, pattern := range fields[1:] {
				if !filepath.IsAbs(pattern) {
					pattern = filepath.Join(filepath.Dir(confPath), pattern)
				}
				matches, err := filepath.Glob(pattern)
				if err != nil {
					return nil, fmt.Errorf("ld.so.conf %s: include %q: %w", confPath, pattern, err)
				}
				sort.Strings(matches)
				for _, m := range matches {
					included, err := readLdSoConf(m, depth+1)
					if err != nil {
						return nil, err
					}
					dirs = append(dirs, included...)
				}
			}
		default:
			for _, d := range fields {
				dirs = append(dirs, filepath.Clean(d))
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("ld.so.conf %s: %w", confPath, err)
	}
	return dirs, nil
}

// resolve walks the dynamic dependencies of programs, breadth first, each
// soname resolved once as the loader does.
func (r *libraryResolver) resolve(programs []string) (runtimeDeps, error) {
	var deps runtimeDeps
	interpreters := map[string]bool{}
	librariesBySoname := map[string]bool{}
	extraDirs := map[string]bool{}
	queue := append([]string(nil), programs...)
	for len(queue) > 0 {
		object := queue[0]
		queue = queue[1:]
		info, err := readDynamicInfo(object)
		if err != nil {
			return runtimeDeps{}, err
		}
		if info.interpreter != "" && !interpreters[info.interpreter] {
			interpreters[info.interpreter] = true
			deps.interpreters = append(deps.interpreters, info.interpreter)
		}
		for _, soname := range info.needed {
			if librariesBySoname[soname] {
				continue
			}
			libPath, err := r.find(soname, info)
			if err != nil {
				return runtimeDeps{}, fmt.Errorf("shared library %s needed by %s: %w", soname, object, err)
			}
			librariesBySoname[soname] = true
			deps.libraries = append(deps.libraries, libPath)
			if dir := filepath.Dir(libPath); !r.defaultDirs[dir] && !extraDirs[dir] {
				extraDirs[dir] = true
				deps.extraDirs = append(deps.extraDirs, dir)
			}
			queue = append(queue, libPath)
		}
	}
	return deps, nil
}

// find returns dir/soname for the first search directory holding an ELF
// object of the requester's class and machine; like ld.so, it skips objects
// of another architecture (a 32-bit libc in /usr/lib, say).
func (r *libraryResolver) find(soname string, requester dynamicInfo) (string, error) {
	if strings.Contains(soname, "/") {
		return soname, nil
	}
	dirs := append(append([]string(nil), requester.runpath...), r.searchDirs...)
	for _, dir := range dirs {
		candidate := filepath.Join(dir, soname)
		f, err := elf.Open(candidate)
		if err != nil {
			continue
		}
		matches := f.Class == requester.class && f.Machine == requester.machine
		_ = f.Close()
		if matches {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("not found for %v/%v in %s", requester.class, requester.machine, strings.Join(dirs, ":"))
}

// dynamicInfo is what the loader reads from one ELF object.
type dynamicInfo struct {
	class       elf.Class
	machine     elf.Machine
	interpreter string
	needed      []string
	runpath     []string
}

func readDynamicInfo(object string) (dynamicInfo, error) {
	f, err := elf.Open(object)
	if err != nil {
		return dynamicInfo{}, fmt.Errorf("read ELF %s: %w", object, err)
	}
	defer func() { _ = f.Close() }()
	info := dynamicInfo{class: f.Class, machine: f.Machine}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		raw := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(raw, 0); err != nil {
			return dynamicInfo{}, fmt.Errorf("read ELF %s: interpreter: %w", object, err)
		}
		info.interpreter = strings.TrimRight(string(raw), "\x00")
	}
	if info.needed, err = f.ImportedLibraries(); err != nil {
		return dynamicInfo{}, fmt.Errorf("read ELF %s: DT_NEEDED: %w", object, err)
	}
	// RUNPATH, when present, makes the loader ignore RPATH.
	paths, err := f.DynString(elf.DT_RUNPATH)
	if err == nil && len(paths) == 0 {
		paths, err = f.DynString(elf.DT_RPATH)
	}
	if err != nil {
		return dynamicInfo{}, fmt.Errorf("read ELF %s: RUNPATH: %w", object, err)
	}
	origin := filepath.Dir(object)
	for _, p := range paths {
		for _, dir := range strings.Split(p, ":") {
			dir = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(dir)
			if dir != "" {
				info.runpath = append(info.runpath, filepath.Clean(dir))
			}
		}
	}
	return info, nil
}
