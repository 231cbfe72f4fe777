package nvcdi

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/nvidia-container-toolkit/pkg/lookup"
	nvcdilib "github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi"
	"github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi/transform"
	"github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi/transform/root"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/cdi"
)

// Options configure an Editor. Roots are directories as this process sees
// them; empty roots default as documented on each field.
type Options struct {
	// DriverRoot is where the driver's files are visible to this process,
	// e.g. "/" for a driver installed on the host or "/run/nvidia/driver"
	// for the GPU operator's driver container. Default "/".
	DriverRoot string
	// DevRoot is where the driver's /dev is visible to this process.
	// Default DriverRoot.
	DevRoot string
	// HostDriverRoot is where the container runtime, which reads the CDI
	// spec on the host, finds DriverRoot's files. It differs from DriverRoot
	// when the plugin runs in a container with the host's driver root
	// mounted elsewhere (host "/" mounted at "/driver-root").
	// Default DriverRoot.
	HostDriverRoot string
	// HostDevRoot is where the container runtime finds DevRoot's nodes.
	// Default HostDriverRoot when DevRoot is DriverRoot, else DevRoot.
	HostDevRoot string
	// NVIDIACDIHookPath is the host path of the nvidia-cdi-hook binary the
	// runtime runs for the spec's hooks. Default "/usr/bin/nvidia-cdi-hook".
	NVIDIACDIHookPath string
	// NvmlLib is the NVML library to query. Pass the one the GPU backend
	// uses so that both share NVML's reference-counted Init. When nil,
	// libnvidia-ml.so.1 is loaded from DriverRoot.
	NvmlLib nvml.Interface
	// Logger receives the toolkit's messages. Default klog.Background().
	Logger klog.Logger
	// MIGMinorsPath is the driver's MIG capability table; default
	// DefaultMIGMinorsPath.
	MIGMinorsPath string
	// DriverVersion returns the running driver's version. The driver-level
	// edits are cached per version and computed again when it changes (a
	// driver upgrade while the plugin runs moves every library). Default:
	// the loaded kernel module's version, from
	// <SysfsRoot>/module/nvidia/version.
	DriverVersion func() (string, error)
	// SysfsRoot is where sysfs is mounted; default "/sys".
	SysfsRoot string
}

// Editor implements cdi.Editor with the NVIDIA Container Toolkit. It is safe
// for concurrent use.
type Editor struct {
	devRoot       string
	migMinorsPath string
	driverVersion func() (string, error)
	hostPaths     transform.Transformer
	commonEdits   commonEditsCache

	// toolkitCallsMu serialises calls into the toolkit and guards the
	// fields below.
	toolkitCallsMu sync.Mutex
	toolkit        nvcdilib.Interface
	// toolkitVersion is the driver version toolkit was set up under, ""
	// if it could not be read. The toolkit keeps the driver version and
	// library directories it finds at set-up for its whole life, so the
	// edits of another version need a new toolkit.
	toolkitVersion string
	// newToolkit sets up a toolkit with the editor's options.
	newToolkit func() (nvcdilib.Interface, error)
}

var _ cdi.Editor = (*Editor)(nil)

// NewEditor checks that NVML initialises and sets up the toolkit library. It
// fails on a node where NVML cannot start (no driver, wrong driver root)
// rather than letting every prepare fail later.
func NewEditor(opts Options) (*Editor, error) {
	opts = withDefaults(opts)
	tlog := toolkitLogger{logger: opts.Logger}

	nvmlLib := opts.NvmlLib
	if nvmlLib == nil {
		var err error
		if nvmlLib, err = nvmlFromDriverRoot(opts.DriverRoot, tlog); err != nil {
			return nil, err
		}
	}
	// NVML must not be called after a failed Init: the process dies on the
	// first unresolved symbol. So Init is checked before the toolkit, which
	// queries NVML from its constructor on, ever sees the library.
	if ret := nvmlLib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("initialize NVML (driver root %s): %w", opts.DriverRoot, ret)
	}
	if ret := nvmlLib.Shutdown(); ret != nvml.SUCCESS {
		opts.Logger.Error(ret, "Shutting down NVML after the start-up check")
	}

	newToolkit := func() (nvcdilib.Interface, error) {
		toolkit, err := nvcdilib.New(
			nvcdilib.WithMode(nvcdilib.ModeNvml),
			nvcdilib.WithNvmlLib(nvmlLib),
			nvcdilib.WithDriverRoot(opts.DriverRoot),
			nvcdilib.WithDevRoot(opts.DevRoot),
			nvcdilib.WithNVIDIACDIHookPath(opts.NVIDIACDIHookPath),
			nvcdilib.WithLogger(tlog),
			// One discovery path, NVML, the one the GPU backend and the
			// tests use; nvsandboxutils would be a second, untested one.
			nvcdilib.WithFeatureFlags(nvcdilib.FeatureDisableNvsandboxUtils),
		)
		if err != nil {
			return nil, fmt.Errorf("set up the NVIDIA container toolkit for driver root %s: %w", opts.DriverRoot, err)
		}
		return toolkit, nil
	}
	// The version is read before the toolkit is set up: a driver change in
	// between makes the first claim set up another toolkit, which is
	// harmless; the other order could keep a stale one.
	toolkitVersion, err := opts.DriverVersion()
	if err != nil {
		toolkitVersion = ""
	}
	toolkit, err := newToolkit()
	if err != nil {
		return nil, err
	}

	return &Editor{
		devRoot:       opts.DevRoot,
		migMinorsPath: opts.MIGMinorsPath,
		driverVersion: opts.DriverVersion,
		hostPaths: root.NewDriverTransformer(
			root.WithDriverRoot(opts.DriverRoot),
			root.WithTargetDriverRoot(opts.HostDriverRoot),
			root.WithDevRoot(opts.DevRoot),
			root.WithTargetDevRoot(opts.HostDevRoot),
		),
		toolkit:        toolkit,
		toolkitVersion: toolkitVersion,
		newToolkit:     newToolkit,
	}, nil
}

func withDefaults(opts Options) Options {
	if opts.DriverRoot == "" {
		opts.DriverRoot = "/"
	}
	opts.DriverRoot = filepath.Clean(opts.DriverRoot)
	if opts.DevRoot == "" {
		opts.DevRoot = opts.DriverRoot
	}
	opts.DevRoot = filepath.Clean(opts.DevRoot)
	if opts.HostDriverRoot == "" {
		opts.HostDriverRoot = opts.DriverRoot
	}
	opts.HostDriverRoot = filepath.Clean(opts.HostDriverRoot)
	if opts.HostDevRoot == "" {
		// A dev root inside the driver root moves with it; a separate one
		// (the host's /dev) is where it is.
		opts.HostDevRoot = opts.DevRoot
		if opts.DevRoot == opts.DriverRoot {
			opts.HostDevRoot = opts.HostDriverRoot
		}
	}
	opts.HostDevRoot = filepath.Clean(opts.HostDevRoot)
	if opts.NVIDIACDIHookPath == "" {
		opts.NVIDIACDIHookPath = "/usr/bin/nvidia-cdi-hook"
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = klog.Background()
	}
	if opts.MIGMinorsPath == "" {
		opts.MIGMinorsPath = DefaultMIGMinorsPath
	}
	if opts.SysfsRoot == "" {
		opts.SysfsRoot = "/sys"
	}
	if opts.DriverVersion == nil {
		path := filepath.Join(opts.SysfsRoot, "module", "nvidia", "version")
		opts.DriverVersion = func() (string, error) { return readDriverVersion(path) }
	}
	return opts
}

// readDriverVersion reads the loaded kernel module's version, e.g.
// "550.54.15".
func readDriverVersion(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("driver version: %w", err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("driver version: %s is empty", path)
	}
	return v, nil
}

// nvmlFromDriverRoot loads libnvidia-ml.so.1 from the driver root, the way
// the toolkit would, so that the start-up check and the toolkit use the same
// library.
func nvmlFromDriverRoot(driverRoot string, tlog toolkitLogger) (nvml.Interface, error) {
	candidates, err := lookup.NewLibraryLocator(
		lookup.WithRoot(driverRoot),
		lookup.WithLogger(tlog),
	).Locate("libnvidia-ml.so.1")
	if err != nil {
		return nil, fmt.Errorf("find libnvidia-ml.so.1 under driver root %s: %w", driverRoot, err)
	}
	return nvml.New(nvml.WithLibraryPath(candidates[0])), nil
}
