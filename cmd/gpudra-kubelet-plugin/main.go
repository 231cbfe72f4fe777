// Command gpudra-kubelet-plugin is gpudra's node plugin: it publishes the
// node's GPUs as ResourceSlices and prepares claims for the kubelet. This file
// holds flags and wiring only; the logic lives in internal/plugin.
package main

import (
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/backend"
	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/cdi/nvcdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/kubeclient"
	"github.com/gpudra/gpudra/internal/migflags"
	"github.com/gpudra/gpudra/internal/mps"
	"github.com/gpudra/gpudra/internal/nodelease"
	"github.com/gpudra/gpudra/internal/plugin"
)

type flags struct {
	driverName        string
	nodeName          string
	kubeconfig        string
	pluginDir         string
	registrarDir      string
	cdiDir            string
	checkpointPath    string
	bootIDPath        string
	podUID            string
	cleanupInterval   time.Duration
	inventoryInterval time.Duration
	shutdownTimeout   time.Duration
	hostDriverRoot    string
	healthzAddr       string
	pprofAddr         string
	apiQPS            float32
	apiBurst          int
	cdiHookPath       string
	backend           backend.Options
	mig               migflags.Flags
	mpsControl        string
	mpsLauncherSocket string
}

func main() {
	f := flags{}
	fs := pflag.NewFlagSet("gpudra-kubelet-plugin", pflag.ExitOnError)
	fs.StringVar(&f.driverName, "driver-name", "gpu.nvidia.com", "DRA driver name")
	fs.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	fs.StringVar(&f.pluginDir, "plugin-dir", "", "kubelet plugin data directory (default /var/lib/kubelet/plugins/<driver-name>)")
	fs.StringVar(&f.registrarDir, "registrar-dir", "/var/lib/kubelet/plugins_registry", "kubelet plugin registration directory")
	fs.StringVar(&f.cdiDir, "cdi-dir", "/var/run/cdi", "directory for CDI specs")
	fs.StringVar(&f.checkpointPath, "checkpoint", "", "checkpoint file (default <plugin-dir>/checkpoint.json)")
	fs.StringVar(&f.bootIDPath, "boot-id-file", "/proc/sys/kernel/random/boot_id", "file holding the node's boot ID")
	fs.StringVar(&f.podUID, "pod-uid", os.Getenv("POD_UID"), "this pod's UID; enables side-by-side rolling updates of the DaemonSet")
	fs.DurationVar(&f.cleanupInterval, "cleanup-interval", time.Minute, "how often to unprepare claims whose ResourceClaim is gone and remove orphaned CDI specs")
	fs.DurationVar(&f.inventoryInterval, "inventory-interval", 30*time.Second, "how often to read the GPU inventory again (a GPU that came back, a changed MIG layout) and republish if it changed; SIGHUP reads it at once")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 25*time.Second, "on SIGTERM, how long to wait for prepare and unprepare calls in flight (keep below the pod's termination grace period)")
	fs.StringVar(&f.hostDriverRoot, "host-driver-root", "", "where the container runtime finds the driver root (NVML mode; default --driver-root)")
	fs.StringVar(&f.cdiHookPath, "nvidia-cdi-hook-path", "/usr/bin/nvidia-cdi-hook", "host path of nvidia-cdi-hook (NVML mode)")
	fs.StringVar(&f.healthzAddr, "healthz-addr", "", "serve /healthz and /readyz on this address (e.g. :51515); off when empty")
	fs.Float32Var(&f.apiQPS, "kube-api-qps", 200, "client-side rate limit for API calls; every prepare reads its claim once, so this caps pod starts per second on the node")
	fs.IntVar(&f.apiBurst, "kube-api-burst", 400, "burst above --kube-api-qps")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's /debug/pprof on this address (e.g. 127.0.0.1:6060), to profile the plugin; off when empty")
	fs.StringVar(&f.mpsControl, "mps-control", "", "MPS control binary for claims that ask for MPS: nvidia-cuda-mps-control, or gpudra-sim-mps with the sim backend (default: the one under --driver-root, or gpudra-sim-mps next to this binary in sim mode); \"none\" refuses MPS")
	fs.StringVar(&f.mpsLauncherSocket, "mps-launcher-socket", "", "ask `gpudra mps-launcher` on this socket to start MPS daemons, so that they outlive this container; empty starts them from this process")
	f.backend.AddFlags(fs)
	f.mig.AddFlags(fs, true)
	klogFlags := goflag.NewFlagSet("klog", goflag.ExitOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	_ = fs.Parse(os.Args[1:])

	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancelCause(sigCtx)
	defer cancel(nil)
	logger := klog.Background().WithName("gpudra")
	ctx = klog.NewContext(ctx, logger)
	if err := run(ctx, cancel, f); err != nil {
		logger.Error(err, "Plugin failed")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
}

func run(ctx context.Context, cancel context.CancelCauseFunc, f flags) error {
	logger := klog.FromContext(ctx)
	if f.nodeName == "" {
		return fmt.Errorf("--node-name (or $NODE_NAME) is required")
	}
	if _, err := f.mig.ParsedMode(); err != nil {
		return err
	}
	if _, err := f.mig.Dynamic(); err != nil {
		return err
	}
	if f.pluginDir == "" {
		f.pluginDir = filepath.Join("/var/lib/kubelet/plugins", f.driverName)
	}
	if f.checkpointPath == "" {
		f.checkpointPath = filepath.Join(f.pluginDir, "checkpoint.json")
	}

	client, _, err := kubeclient.New(kubeclient.Options{Kubeconfig: f.kubeconfig, QPS: f.apiQPS, Burst: f.apiBurst})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	recorder := nodeEventRecorder(ctx, client.CoreV1().Events(""))

	f.backend.NodeName = f.nodeName
	if f.backend.Sim() && f.backend.SimStateDir == "" {
		// Where `gpudra sim` injects faults for this node.
		f.backend.SimStateDir = filepath.Join(f.pluginDir, "sim")
	}
	gpus, err := backend.Open(f.backend)
	if err != nil {
		return err
	}
	defer func() { _ = gpus.Close() }()

	var editor cdi.Editor = cdi.SimEditor{}
	if !f.backend.Sim() {
		editor, err = nvcdi.NewEditor(nvcdi.Options{
			DriverRoot: f.backend.DriverRoot, HostDriverRoot: f.hostDriverRoot,
			NVIDIACDIHookPath: f.cdiHookPath, Logger: logger.WithName("nvcdi"),
			SysfsRoot: f.backend.SysfsRoot,
		})
		if err != nil {
			return fmt.Errorf("CDI: %w", err)
		}
	}
	specs, err := cdi.NewWriter(f.cdiDir, "k8s.gpu.nvidia.com", "claim", editor)
	if err != nil {
		return fmt.Errorf("CDI: %w", err)
	}

	// One writer of node state at a time: during a rolling update the old
	// pod hands the lease over once its calls in flight are done (see
	// internal/nodelease). Everything below that reads or changes the
	// checkpoint or the CDI directory runs inside it.
	lease, err := nodelease.New(nodelease.Options{
		Dir: f.pluginDir, ID: leaseID(f.podUID), Logger: logger.WithName("nodelease"),
	})
	if err != nil {
		return err
	}
	logger.Info("Waiting for the node lease", "dir", f.pluginDir)
	exitLease, err := lease.Enter(ctx)
	if err != nil {
		return fmt.Errorf("node lease: %w", err)
	}
	driver, err := openDriver(ctx, f, gpus, specs, client, recorder, lease, cancel)
	exitLease()
	if err != nil {
		return err
	}
	go lease.Run(ctx)

	sighup := make(chan os.Signal, 1)
	signal.Notify(sighup, syscall.SIGHUP)
	defer signal.Stop(sighup)
	refresh := make(chan struct{}, 1)
	go func() {
		for range sighup {
			select {
			case refresh <- struct{}{}:
			default:
			}
		}
	}()
	go driver.RunInventoryRefresh(ctx, refresh)

	kubeletOpts := plugin.KubeletOptions{
		PluginDataDir: f.pluginDir, RegistrarDir: f.registrarDir, RollingUpdateUID: types.UID(f.podUID),
	}
	if f.healthzAddr != "" {
		srv := &http.Server{Addr: f.healthzAddr, Handler: driver.HealthHandler(kubeletOpts), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error(err, "Health endpoint failed")
			}
		}()
		defer func() { _ = srv.Close() }()
	}
	if f.pprofAddr != "" {
		srv := &http.Server{Addr: f.pprofAddr, Handler: pprofHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error(err, "pprof endpoint failed")
			}
		}()
		defer func() { _ = srv.Close() }()
	}
	helper, err := plugin.Start(ctx, driver, kubeletOpts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("Shutting down: finishing calls in flight", "cause", context.Cause(ctx))
	// Stop admitting work and let what is inside finish (bounded by the
	// pod's termination grace period), then stop serving the kubelet; the
	// kubelet retries refused calls, on the new pod during a rolling update.
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancelDrain()
	if err := lease.Close(drainCtx); err != nil {
		logger.Error(err, "Calls still in flight at shutdown")
	}
	helper.Stop()
	if cause := context.Cause(ctx); errors.Is(cause, errFatal) {
		return cause
	}
	return nil
}

// errFatal marks a shutdown caused by a helper failure, not by a signal.
var errFatal = errors.New("fatal kubelet plugin error")

// openDriver opens the checkpoint and builds the driver; the caller holds
// the node lease.
func openDriver(ctx context.Context, f flags, gpus gpu.Backend, specs *cdi.Writer, client kubernetes.Interface,
	recorder record.EventRecorder, lease *nodelease.Lease, cancel context.CancelCauseFunc) (*plugin.Driver, error) {
	logger := klog.FromContext(ctx)
	bootID, err := checkpoint.ReadBootID(f.bootIDPath)
	if err != nil {
		return nil, err
	}
	store, report, err := checkpoint.Open(ctx, f.checkpointPath, bootID)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if len(report.PreviousBootClaims) > 0 {
		logger.Info("Claims from a previous boot will be prepared again when the kubelet asks", "claims", report.PreviousBootClaims)
	}
	nodeRef := &corev1.ObjectReference{Kind: "Node", Name: f.nodeName}
	mpsCtl, err := mpsControl(f)
	if err != nil {
		return nil, err
	}
	if mpsCtl != nil {
		logger.Info("MPS enabled", "control", mpsCtl.Binary, "launcher", f.mpsLauncherSocket)
	}
	migMode, _ := f.mig.ParsedMode() // checked in run
	dynamic, _ := f.mig.Dynamic()
	driver, err := plugin.New(ctx, plugin.Config{
		DriverName: f.driverName, NodeName: f.nodeName, Backend: gpus, Store: store, CDI: specs,
		Client: client, CleanupInterval: f.cleanupInterval, InventoryInterval: f.inventoryInterval,
		Lease: lease, Checkpoint: report,
		Events:  nodeEvents{recorder: recorder, node: nodeRef},
		MIGMode: migMode, Dynamic: dynamic, KeepWindow: f.mig.KeepWindow, EnableMIG: f.mig.EnableMIG,
		MPS: mpsCtl,
		OnFatal: func(err error) {
			cancel(fmt.Errorf("%w: %w", errFatal, err))
		},
	})
	if err != nil {
		return nil, err
	}
	lease.SetOnAcquire(driver.Resync)
	return driver, nil
}

// leaseID names this process in the node lease's files.
func leaseID(podUID string) string {
	if podUID == "" {
		return fmt.Sprintf("pid%d", os.Getpid())
	}
	return fmt.Sprintf("%s-pid%d", podUID, os.Getpid())
}

// nodeEvents records the driver's node events on the Node object.
type nodeEvents struct {
	recorder record.EventRecorder
	node     *corev1.ObjectReference
}

func (e nodeEvents) NodeEvent(eventType, reason, message string) {
	e.recorder.Event(e.node, eventType, reason, message)
}

// nodeEventRecorder reports node-level problems as events on the Node.
func nodeEventRecorder(ctx context.Context, sink typedcorev1.EventInterface) record.EventRecorder {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: sink})
	return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "gpudra-kubelet-plugin"})
}

func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// mpsControl wires MPS from the flags (see mps.ControlFor).
func mpsControl(f flags) (*mps.Control, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable (for gpudra-sim-mps next to it): %w", err)
	}
	return mps.ControlFor(mps.Setup{
		Binary: f.mpsControl, Sim: f.backend.Sim(), Self: self, DriverRoot: f.backend.DriverRoot,
		PluginDir: f.pluginDir, LauncherSocket: f.mpsLauncherSocket,
	})
}
