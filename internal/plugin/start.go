package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"
)

// KubeletOptions say where the kubelet looks for the plugin.
type KubeletOptions struct {
	// PluginDataDir holds the DRA socket, e.g.
	// /var/lib/kubelet/plugins/gpu.nvidia.com.
	PluginDataDir string
	// RegistrarDir is the kubelet's plugin registration directory, e.g.
	// /var/lib/kubelet/plugins_registry.
	RegistrarDir string
	// RollingUpdateUID, when set (the pod UID), lets an old and a new plugin
	// pod serve side by side during a DaemonSet rolling update.
	RollingUpdateUID types.UID
}

// SocketPath is where the DRA helper listens: dra.sock, or dra-<uid>.sock
// during rolling updates so that two plugin pods can serve side by side.
func (o KubeletOptions) SocketPath() string {
	if o.RollingUpdateUID != "" {
		return filepath.Join(o.PluginDataDir, "dra-"+string(o.RollingUpdateUID)+".sock")
	}
	return filepath.Join(o.PluginDataDir, "dra.sock")
}

// RegistrarSocketPath is the registration socket the kubelet watches, named
// as the kubelet plugin helper names it.
func (o KubeletOptions) RegistrarSocketPath(driverName string) string {
	if o.RollingUpdateUID != "" {
		return filepath.Join(o.RegistrarDir, kubeletplugin.RollingUpdateRegistrarSocketFile(o.RegistrarDir, driverName, o.RollingUpdateUID))
	}
	return filepath.Join(o.RegistrarDir, driverName+"-reg.sock")
}

// Start registers the driver with the kubelet, publishes its devices and
// starts the cleanup loop. Calls for different claims run in parallel
// (Serialize(false)): the driver serializes per claim itself.
func Start(ctx context.Context, d *Driver, opts KubeletOptions) (*kubeletplugin.Helper, error) {
	// The helper listens in both directories but creates neither. The kubelet
	// creates the registration directory too; a plugin that starts first (or
	// runs without a kubelet, as in benchmarks) must not fail on it.
	for _, dir := range []string{opts.PluginDataDir, opts.RegistrarDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create plugin directory: %w", err)
		}
	}
	helperOpts := []kubeletplugin.Option{
		kubeletplugin.DriverName(d.cfg.DriverName),
		kubeletplugin.NodeName(d.cfg.NodeName),
		kubeletplugin.KubeClient(d.cfg.Client),
		kubeletplugin.Serialize(false),
		kubeletplugin.PluginDataDirectoryPath(opts.PluginDataDir),
		kubeletplugin.RegistrarDirectoryPath(opts.RegistrarDir),
	}
	if opts.RollingUpdateUID != "" {
		helperOpts = append(helperOpts, kubeletplugin.RollingUpdate(opts.RollingUpdateUID))
	}
	helper, err := kubeletplugin.Start(ctx, d, helperOpts...)
	if err != nil {
		return nil, fmt.Errorf("start kubelet plugin: %w", err)
	}
	registered := func() bool {
		status := helper.RegistrationStatus()
		return status != nil && status.PluginRegistered
	}
	d.registered.Store(&registered)
	d.started.Store(true)
	logger := klog.FromContext(ctx)
	created, err := d.publishFirst(ctx, d.driverResources())
	switch {
	case err != nil:
		// Not fatal: the controller publishes a second later.
		logger.Error(err, "Could not publish ahead of the slice controller")
	case created:
		d.published.Store(true)
	}
	// The controller's first sync waits about a second for its informer; the
	// kubelet can already call us meanwhile.
	go func() {
		if err := d.Publish(ctx, helper); err != nil {
			d.HandleError(ctx, err, "start ResourceSlice publishing")
			return
		}
		if err := d.waitPublished(ctx); err != nil {
			logger.Error(err, "Waiting for the published ResourceSlices")
		}
	}()
	logger.Info("Kubelet plugin started", "driver", d.cfg.DriverName, "node", d.cfg.NodeName, "devices", len(d.Devices()))
	go d.RunCleanup(ctx)
	return helper, nil
}
