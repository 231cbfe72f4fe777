package charttest

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const (
	release   = "gpudra"
	namespace = "gpudra-system"
)

var simInventoryFile = filepath.Join("testdata", "inventory.yaml")

func TestLint(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "defaults"},
		{name: "real GPUs", args: []string{"--set", "sim.enabled=false", "--set", "nvidiaDriverRoot=/run/nvidia/driver"}},
		{name: "sim inventory", args: []string{"--set-file", "sim.config=" + simInventoryFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, tt.args...)
			if out, err := runHelm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// wantClass is what a DeviceClass must hold.
type wantClass struct {
	expression           string
	extendedResourceName string
}

func TestTemplate(t *testing.T) {
	inventory, err := os.ReadFile(simInventoryFile)
	if err != nil {
		t.Fatal(err)
	}
	defaultClasses := map[string]wantClass{
		"gpu.nvidia.com": {
			expression:           "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'",
			extendedResourceName: "nvidia.com/gpu",
		},
		"mig.nvidia.com": {
			expression: "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'mig'",
		},
	}
	hostMounts := []corev1.VolumeMount{
		{Name: "plugins", MountPath: "/var/lib/kubelet/plugins"},
		{Name: "plugins-registry", MountPath: "/var/lib/kubelet/plugins_registry"},
		{Name: "cdi", MountPath: "/var/run/cdi"},
	}
	hostVolumes := []corev1.Volume{
		hostPathVolume("plugins", "/var/lib/kubelet/plugins", corev1.HostPathDirectoryOrCreate),
		hostPathVolume("plugins-registry", "/var/lib/kubelet/plugins_registry", corev1.HostPathDirectory),
		hostPathVolume("cdi", "/var/run/cdi", corev1.HostPathDirectoryOrCreate),
	}
	simSecurity := &corev1.SecurityContext{
		Privileged:               ptr.To(false),
		AllowPrivilegeEscalation: ptr.To(false),
		RunAsUser:                ptr.To[int64](0),
		RunAsGroup:               ptr.To[int64](0),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}

	tests := []struct {
		name          string
		args          []string
		wantArgs      []string
		wantMounts    []corev1.VolumeMount
		wantVolumes   []corev1.Volume
		wantSecurity  *corev1.SecurityContext
		wantImage     string
		wantPull      corev1.PullPolicy
		wantInventory string // the sim ConfigMap's inventory.yaml; "" means no ConfigMap
		wantClasses   map[string]wantClass
		// noMPS: no mps-launcher container, no shared PID namespace.
		noMPS bool
	}{
		{
			name: "defaults: simulated DGX H100 from the local image",
			wantArgs: []string{
				"--driver-name=gpu.nvidia.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--sim-profile=dgxh100", "--cdi-dir=/var/run/cdi", "--healthz-addr=:51515", "--cleanup-interval=1m", "--mps-launcher-socket=/var/lib/kubelet/plugins/gpu.nvidia.com/mps-launcher-$(POD_UID).sock", "-v=2",
			},
			wantMounts:   hostMounts,
			wantVolumes:  hostVolumes,
			wantSecurity: simSecurity,
			wantImage:    "localhost/gpudra/gpudra:dev",
			wantPull:     corev1.PullNever,
			wantClasses:  defaultClasses,
		},
		{
			name: "dynamic MIG on a simulated DGX H100 in MIG mode",
			args: []string{
				"--set", "sim.profile=dgxh100-mig", "--set", "mig.mode=dynamic", "--set", "mig.placementsPerProfile=2",
				"--set", "mig.profiles={1g.10gb,3g.40gb}", "--set", "mig.enable=true",
			},
			wantArgs: []string{
				"--driver-name=gpu.nvidia.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--sim-profile=dgxh100-mig", "--cdi-dir=/var/run/cdi", "--healthz-addr=:51515", "--cleanup-interval=1m",
				"--mig-mode=dynamic", "--dynamic-mig-placements=2", "--dynamic-mig-profiles=1g.10gb,3g.40gb", "--enable-mig=true",
				"--mps-launcher-socket=/var/lib/kubelet/plugins/gpu.nvidia.com/mps-launcher-$(POD_UID).sock", "-v=2",
			},
			wantMounts:   hostMounts,
			wantVolumes:  hostVolumes,
			wantSecurity: simSecurity,
			wantImage:    "localhost/gpudra/gpudra:dev",
			wantPull:     corev1.PullNever,
			wantClasses:  defaultClasses,
		},
		{
			name: "real GPUs with the GPU operator's driver root",
			args: []string{
				"--set", "sim.enabled=false", "--set", "nvidiaDriverRoot=/run/nvidia/driver",
				"--set", "image.repository=registry.example.com/gpudra", "--set", "image.tag=0.1.0",
				"--set", "image.pullPolicy=IfNotPresent", "--set", "logVerbosity=4", "--set", "healthPort=9090",
			},
			wantArgs: []string{
				"--driver-name=gpu.nvidia.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--driver-root=/driver-root", "--host-driver-root=/run/nvidia/driver",
				"--cdi-dir=/var/run/cdi", "--healthz-addr=:9090", "--cleanup-interval=1m", "--mps-launcher-socket=/var/lib/kubelet/plugins/gpu.nvidia.com/mps-launcher-$(POD_UID).sock", "-v=4",
			},
			wantMounts: append(slices.Clone(hostMounts),
				corev1.VolumeMount{Name: "driver-root", MountPath: "/driver-root", ReadOnly: true}),
			wantVolumes: append(slices.Clone(hostVolumes),
				hostPathVolume("driver-root", "/run/nvidia/driver", corev1.HostPathDirectory)),
			wantSecurity: &corev1.SecurityContext{Privileged: ptr.To(true)},
			wantImage:    "registry.example.com/gpudra:0.1.0",
			wantPull:     corev1.PullIfNotPresent,
			wantClasses:  defaultClasses,
		},
		{
			name: "simulated node from an inventory file",
			args: []string{"--set-file", "sim.config=" + simInventoryFile},
			wantArgs: []string{
				"--driver-name=gpu.nvidia.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--sim-config=/etc/gpudra/sim/inventory.yaml", "--cdi-dir=/var/run/cdi", "--healthz-addr=:51515", "--cleanup-interval=1m", "--mps-launcher-socket=/var/lib/kubelet/plugins/gpu.nvidia.com/mps-launcher-$(POD_UID).sock", "-v=2",
			},
			wantMounts: append(slices.Clone(hostMounts),
				corev1.VolumeMount{Name: "sim-config", MountPath: "/etc/gpudra/sim", ReadOnly: true}),
			wantVolumes: append(slices.Clone(hostVolumes), corev1.Volume{
				Name: "sim-config",
				VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "gpudra-sim-config"},
				}},
			}),
			wantSecurity:  simSecurity,
			wantImage:     "localhost/gpudra/gpudra:dev",
			wantPull:      corev1.PullNever,
			wantInventory: string(inventory),
			wantClasses:   defaultClasses,
		},
		{
			name: "another driver name, class names and no extended resource",
			args: []string{
				"--set", "driverName=gpu.example.com",
				"--set", "deviceClasses.gpu.name=gpu.example.com", "--set", "deviceClasses.gpu.extendedResourceName=",
				"--set", "deviceClasses.mig.name=mig.example.com",
			},
			wantArgs: []string{
				"--driver-name=gpu.example.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--sim-profile=dgxh100", "--cdi-dir=/var/run/cdi", "--healthz-addr=:51515", "--cleanup-interval=1m", "--mps-launcher-socket=/var/lib/kubelet/plugins/gpu.example.com/mps-launcher-$(POD_UID).sock", "-v=2",
			},
			wantMounts:   hostMounts,
			wantVolumes:  hostVolumes,
			wantSecurity: simSecurity,
			wantImage:    "localhost/gpudra/gpudra:dev",
			wantPull:     corev1.PullNever,
			wantClasses: map[string]wantClass{
				"gpu.example.com": {expression: "device.driver == 'gpu.example.com' && device.attributes['gpu.example.com'].type == 'gpu'"},
				"mig.example.com": {expression: "device.driver == 'gpu.example.com' && device.attributes['gpu.example.com'].type == 'mig'"},
			},
		},
		{
			name: "MPS off",
			args: []string{"--set", "mps.enabled=false"},
			wantArgs: []string{
				"--driver-name=gpu.nvidia.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--sim-profile=dgxh100", "--cdi-dir=/var/run/cdi", "--healthz-addr=:51515", "--cleanup-interval=1m", "--mps-control=none", "-v=2",
			},
			wantMounts:   hostMounts,
			wantVolumes:  hostVolumes,
			wantSecurity: simSecurity,
			wantImage:    "localhost/gpudra/gpudra:dev",
			wantPull:     corev1.PullNever,
			wantClasses:  defaultClasses,
			noMPS:        true,
		},
		{
			name: "DeviceClasses owned elsewhere",
			args: []string{"--set", "deviceClasses.create=false"},
			wantArgs: []string{
				"--driver-name=gpu.nvidia.com", "--node-name=$(NODE_NAME)", "--pod-uid=$(POD_UID)",
				"--sim-profile=dgxh100", "--cdi-dir=/var/run/cdi", "--healthz-addr=:51515", "--cleanup-interval=1m", "--mps-launcher-socket=/var/lib/kubelet/plugins/gpu.nvidia.com/mps-launcher-$(POD_UID).sock", "-v=2",
			},
			wantMounts:   hostMounts,
			wantVolumes:  hostVolumes,
			wantSecurity: simSecurity,
			wantImage:    "localhost/gpudra/gpudra:dev",
			wantPull:     corev1.PullNever,
			wantClasses:  map[string]wantClass{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"template", release, chartDir, "--namespace", namespace}, tt.args...)
			out, err := runHelm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			m, err := decodeManifest(out)
			if err != nil {
				t.Fatalf("decode rendered chart: %v\n%s", err, out)
			}
			if m.DaemonSet == nil || m.ServiceAccount == nil || m.ClusterRole == nil || m.ClusterRoleBinding == nil {
				t.Fatalf("want a DaemonSet, ServiceAccount, ClusterRole and ClusterRoleBinding, got %+v", m)
			}

			checkRBAC(t, m)
			ds := m.DaemonSet
			checkUpdateStrategy(t, ds)
			pod := ds.Spec.Template.Spec
			if pod.ServiceAccountName != m.ServiceAccount.Name {
				t.Errorf("serviceAccountName = %q, want the chart's ServiceAccount %q", pod.ServiceAccountName, m.ServiceAccount.Name)
			}
			if pod.PriorityClassName != "system-node-critical" {
				t.Errorf("priorityClassName = %q, want system-node-critical", pod.PriorityClassName)
			}
			if pod.HostNetwork {
				t.Error("hostNetwork is set: the old and the new pod of a surging update would fight over the health port")
			}
			checkMPSLauncher(t, pod, tt.noMPS, tt.wantSecurity)
			c := pod.Containers[0]
			if want := []string{"/usr/bin/gpudra-kubelet-plugin"}; !slices.Equal(c.Command, want) {
				t.Errorf("command = %q, want %q", c.Command, want)
			}
			if !slices.Equal(c.Args, tt.wantArgs) {
				t.Errorf("args:\n got %q\nwant %q", c.Args, tt.wantArgs)
			}
			if c.Image != tt.wantImage || c.ImagePullPolicy != tt.wantPull {
				t.Errorf("image = %s (%s), want %s (%s)", c.Image, c.ImagePullPolicy, tt.wantImage, tt.wantPull)
			}
			checkDownwardAPI(t, c)
			checkProbes(t, c, tt.wantArgs)
			checkEqual(t, "volumeMounts", c.VolumeMounts, tt.wantMounts)
			checkEqual(t, "volumes", pod.Volumes, tt.wantVolumes)
			checkEqual(t, "securityContext", c.SecurityContext, tt.wantSecurity)
			checkSimConfig(t, m, tt.wantInventory)
			checkDeviceClasses(t, m, tt.wantClasses)
		})
	}
}

func TestTemplateRejects(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{
			name:    "simulator without profile or inventory",
			args:    []string{"--set", "sim.profile="},
			wantErr: "sim.enabled needs sim.profile or sim.config",
		},
		{
			name:    "inventory for real GPUs",
			args:    []string{"--set", "sim.enabled=false", "--set-file", "sim.config=" + simInventoryFile},
			wantErr: "sim.config is set but sim.enabled is false",
		},
		{
			name:    "misspelt value",
			args:    []string{"--set", "sim.profle=dgxa100"},
			wantErr: "'profle' not allowed",
		},
		{
			name:    "unknown MIG mode",
			args:    []string{"--set", "mig.mode=auto"},
			wantErr: "mig.mode",
		},
		{
			name:    "unknown pull policy",
			args:    []string{"--set", "image.pullPolicy=Sometimes"},
			wantErr: "/image/pullPolicy",
		},
		{
			name:    "driver name that is not a DNS subdomain",
			args:    []string{"--set", "driverName=GPU_Driver"},
			wantErr: "/driverName",
		},
		{
			name:    "relative driver root",
			args:    []string{"--set", "sim.enabled=false", "--set", "nvidiaDriverRoot=run/nvidia/driver"},
			wantErr: "/nvidiaDriverRoot",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"template", release, chartDir, "--namespace", namespace}, tt.args...)
			out, err := runHelm(t, args...)
			if err == nil {
				t.Fatalf("helm template succeeded, want an error containing %q; rendered:\n%s", tt.wantErr, out)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestNotes checks that the install notes tell the user how to see the
// published devices. A client-side dry run renders them without a cluster.
func TestNotes(t *testing.T) {
	out, err := runHelm(t, "install", release, chartDir, "--namespace", namespace, "--dry-run=client")
	if err != nil {
		t.Fatal(err)
	}
	_, notes, found := strings.Cut(out, "NOTES:")
	if !found {
		t.Fatalf("no NOTES in the dry run's output:\n%s", out)
	}
	for _, want := range []string{
		"kubectl get resourceslices --field-selector spec.driver=gpu.nvidia.com",
		"SIMULATED GPUs (profile dgxh100)",
		"kubectl -n gpudra-system logs daemonset/gpudra-kubelet-plugin",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
}

// TestDeviceClassesMatchStaticManifest keeps the chart's default DeviceClasses
// identical to deployments/deviceclasses, which users apply without Helm.
func TestDeviceClassesMatchStaticManifest(t *testing.T) {
	static, err := os.ReadFile(filepath.Join(repoRoot, "deployments", "deviceclasses", "deviceclasses.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeManifest(string(static))
	if err != nil {
		t.Fatalf("decode deployments/deviceclasses: %v", err)
	}
	out, err := runHelm(t, "template", release, chartDir, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeManifest(out)
	if err != nil {
		t.Fatalf("decode rendered chart: %v", err)
	}
	if len(want.DeviceClasses) == 0 {
		t.Fatal("deployments/deviceclasses holds no DeviceClass")
	}
	checkEqual(t, "DeviceClass names", slices.Sorted(maps.Keys(got.DeviceClasses)), slices.Sorted(maps.Keys(want.DeviceClasses)))
	for name, class := range want.DeviceClasses {
		if rendered := got.DeviceClasses[name]; rendered != nil {
			checkEqual(t, "DeviceClass "+name+" spec", rendered.Spec, class.Spec)
		}
	}
}

func hostPathVolume(name, path string, pathType corev1.HostPathType) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptr.To(pathType)},
	}}
}

// checkRBAC holds the plugin to exactly the access it needs.
func checkRBAC(t *testing.T, m *manifest) {
	t.Helper()
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"resource.k8s.io"}, Resources: []string{"resourceslices"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"resource.k8s.io"}, Resources: []string{"resourceclaims"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
	checkEqual(t, "ClusterRole rules", m.ClusterRole.Rules, wantRules)
	if m.ServiceAccount.Namespace != namespace {
		t.Errorf("ServiceAccount namespace = %q, want %q", m.ServiceAccount.Namespace, namespace)
	}
	binding := m.ClusterRoleBinding
	wantRoleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: m.ClusterRole.Name}
	checkEqual(t, "ClusterRoleBinding roleRef", binding.RoleRef, wantRoleRef)
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: m.ServiceAccount.Name, Namespace: namespace}}
	checkEqual(t, "ClusterRoleBinding subjects", binding.Subjects, wantSubjects)
}

// checkUpdateStrategy wants a surge update: the DRA helper runs the new
// plugin pod next to the old one, so a node is never without a plugin.
func checkUpdateStrategy(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	want := appsv1.DaemonSetUpdateStrategy{
		Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{
			MaxSurge:       ptr.To(intstr.FromInt32(1)),
			MaxUnavailable: ptr.To(intstr.FromInt32(0)),
		},
	}
	checkEqual(t, "updateStrategy", ds.Spec.UpdateStrategy, want)
	selector := ds.Spec.Selector.MatchLabels
	for k, v := range selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("pod template label %s = %q, the selector wants %q", k, ds.Spec.Template.Labels[k], v)
		}
	}
}

// checkDownwardAPI wants NODE_NAME and POD_UID, which the args expand.
func checkDownwardAPI(t *testing.T, c corev1.Container) {
	t.Helper()
	want := []corev1.EnvVar{
		{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "POD_UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
	}
	checkEqual(t, "env", c.Env, want)
}

// checkProbes wants liveness on /healthz and readiness on /readyz, both on the
// port the plugin is told to serve them on.
func checkProbes(t *testing.T, c corev1.Container, args []string) {
	t.Helper()
	var port string
	for _, arg := range args {
		if v, ok := strings.CutPrefix(arg, "--healthz-addr=:"); ok {
			port = v
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "healthz" || strconv.Itoa(int(c.Ports[0].ContainerPort)) != port {
		t.Errorf("ports = %+v, want one port named healthz on %s", c.Ports, port)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an HTTP GET probe, got %+v", p.name, p.probe)
			continue
		}
		want := corev1.HTTPGetAction{Path: p.path, Port: intstr.FromString("healthz")}
		checkEqual(t, p.name, *p.probe.HTTPGet, want)
	}
}

// checkSimConfig wants the inventory in a ConfigMap, and its hash on the pod
// template so that a changed inventory rolls the pods.
func checkSimConfig(t *testing.T, m *manifest, wantInventory string) {
	t.Helper()
	annotation := m.DaemonSet.Spec.Template.Annotations["checksum/sim-config"]
	if wantInventory == "" {
		if len(m.ConfigMaps) != 0 || annotation != "" {
			t.Errorf("no sim config given, yet ConfigMaps %v and checksum %q", m.ConfigMaps, annotation)
		}
		return
	}
	cm := m.ConfigMaps["gpudra-sim-config"]
	if cm == nil || len(m.ConfigMaps) != 1 {
		t.Fatalf("want only the ConfigMap gpudra-sim-config, got %v", m.ConfigMaps)
	}
	if cm.Namespace != namespace {
		t.Errorf("ConfigMap namespace = %q, want %q", cm.Namespace, namespace)
	}
	// YAML block scalars keep one final newline.
	if got := cm.Data["inventory.yaml"]; strings.TrimRight(got, "\n") != strings.TrimRight(wantInventory, "\n") {
		t.Errorf("inventory.yaml:\n%s\nwant:\n%s", got, wantInventory)
	}
	sum := sha256.Sum256([]byte(wantInventory))
	if want := hex.EncodeToString(sum[:]); annotation != want {
		t.Errorf("checksum/sim-config = %q, want %q", annotation, want)
	}
}

func checkDeviceClasses(t *testing.T, m *manifest, want map[string]wantClass) {
	t.Helper()
	if len(m.DeviceClasses) != len(want) {
		t.Errorf("DeviceClasses %v, want %d", slices.Sorted(maps.Keys(m.DeviceClasses)), len(want))
	}
	for name, w := range want {
		class := m.DeviceClasses[name]
		if class == nil {
			t.Errorf("DeviceClass %s not rendered", name)
			continue
		}
		if len(class.Spec.Selectors) != 1 || class.Spec.Selectors[0].CEL == nil || class.Spec.Selectors[0].CEL.Expression != w.expression {
			t.Errorf("DeviceClass %s selectors = %+v, want the single CEL expression %q", name, class.Spec.Selectors, w.expression)
		}
		if got := ptr.Deref(class.Spec.ExtendedResourceName, ""); got != w.extendedResourceName {
			t.Errorf("DeviceClass %s extendedResourceName = %q, want %q", name, got, w.extendedResourceName)
		}
		if len(class.Spec.Config) != 0 {
			t.Errorf("DeviceClass %s has config %+v, want none", name, class.Spec.Config)
		}
	}
}

// checkEqual compares deeply and shows both sides as YAML when they differ.
func checkEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	gotYAML, _ := yaml.Marshal(got)
	wantYAML, _ := yaml.Marshal(want)
	t.Errorf("%s:\n got:\n%s\nwant:\n%s", what, gotYAML, wantYAML)
}

// checkMPSLauncher: with MPS the pod has the plugin first and the
// mps-launcher next to it, serving the socket the plugin is given, in one
// PID namespace; without, the plugin alone.
func checkMPSLauncher(t *testing.T, pod corev1.PodSpec, noMPS bool, security *corev1.SecurityContext) {
	t.Helper()
	if noMPS {
		if len(pod.Containers) != 1 || ptr.Deref(pod.ShareProcessNamespace, false) {
			t.Fatalf("MPS off: %d containers, shareProcessNamespace %v; want the plugin alone", len(pod.Containers), pod.ShareProcessNamespace)
		}
		return
	}
	if len(pod.Containers) != 2 || pod.Containers[0].Name != "plugin" || pod.Containers[1].Name != "mps-launcher" {
		t.Fatalf("want containers plugin and mps-launcher, got %d", len(pod.Containers))
	}
	if !ptr.Deref(pod.ShareProcessNamespace, false) {
		t.Error("shareProcessNamespace is off: the plugin cannot see the daemons the launcher starts")
	}
	l := pod.Containers[1]
	var socket string
	for _, a := range pod.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--mps-launcher-socket="); ok {
			socket = v
		}
	}
	if want := []string{"/usr/bin/gpudra", "mps-launcher", "--socket=" + socket}; socket == "" || !slices.Equal(l.Command, want) {
		t.Errorf("launcher command %q, want %q", l.Command, want)
	}
	if l.Image != pod.Containers[0].Image {
		t.Errorf("launcher image %s, plugin image %s; want one image", l.Image, pod.Containers[0].Image)
	}
	if len(l.VolumeMounts) == 0 || l.VolumeMounts[0].MountPath != "/var/lib/kubelet/plugins" {
		t.Errorf("launcher mounts %+v, want the plugins directory (where the daemons' directories are)", l.VolumeMounts)
	}
	checkEqual(t, "launcher securityContext", l.SecurityContext, security)
}
