package charttest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// repoRoot is relative to this package's directory, where `go test` runs it.
const repoRoot = "../../.."

var chartDir = filepath.Join(repoRoot, "deployments", "helm", "gpudra")

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBinary builds helm once per test binary. A cold build takes minutes;
// later runs find it in the cache keyed by hack/helm's go.mod and go.sum.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(repoRoot, "hack", "helm", "build.sh"))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			helmErr = fmt.Errorf("hack/helm/build.sh: %w\n%s", err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		helmPath = lines[len(lines)-1]
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

// runHelm runs helm with its state directories in a temporary directory and
// no kubeconfig, so nothing of the user's Helm setup or cluster is touched.
// It returns stdout, and an error carrying stderr when helm fails.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), helmBinary(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// manifest is what the chart rendered, one typed object per kind it may hold.
type manifest struct {
	DaemonSet          *appsv1.DaemonSet
	ServiceAccount     *corev1.ServiceAccount
	ClusterRole        *rbacv1.ClusterRole
	ClusterRoleBinding *rbacv1.ClusterRoleBinding
	ConfigMaps         map[string]*corev1.ConfigMap
	DeviceClasses      map[string]*resourcev1.DeviceClass
}

var documentSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifest decodes `helm template` output. Every object must be of a
// kind the chart is expected to render, and decode strictly (no unknown or
// duplicate fields) into its API type.
func decodeManifest(out string) (*manifest, error) {
	m := &manifest{ConfigMaps: map[string]*corev1.ConfigMap{}, DeviceClasses: map[string]*resourcev1.DeviceClass{}}
	for i, doc := range documentSeparator.Split(out, -1) {
		var typeMeta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &typeMeta); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if typeMeta == (metav1.TypeMeta{}) {
			// Only comments, such as "# Source:" lines of an empty template.
			continue
		}
		gvk := typeMeta.APIVersion + ", Kind=" + typeMeta.Kind
		var err error
		switch gvk {
		case "apps/v1, Kind=DaemonSet":
			m.DaemonSet, err = decodeSingleton(doc, m.DaemonSet)
		case "v1, Kind=ServiceAccount":
			m.ServiceAccount, err = decodeSingleton(doc, m.ServiceAccount)
		case "rbac.authorization.k8s.io/v1, Kind=ClusterRole":
			m.ClusterRole, err = decodeSingleton(doc, m.ClusterRole)
		case "rbac.authorization.k8s.io/v1, Kind=ClusterRoleBinding":
			m.ClusterRoleBinding, err = decodeSingleton(doc, m.ClusterRoleBinding)
		case "v1, Kind=ConfigMap":
			err = decodeNamed(doc, m.ConfigMaps, func(c *corev1.ConfigMap) string { return c.Name })
		case "resource.k8s.io/v1, Kind=DeviceClass":
			err = decodeNamed(doc, m.DeviceClasses, func(c *resourcev1.DeviceClass) string { return c.Name })
		default:
			err = fmt.Errorf("unexpected object %s", gvk)
		}
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, gvk, err)
		}
	}
	return m, nil
}

// decodeSingleton decodes a kind the chart renders at most once.
func decodeSingleton[T any](doc string, previous *T) (*T, error) {
	if previous != nil {
		return nil, fmt.Errorf("rendered twice")
	}
	obj := new(T)
	if err := decodeStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// decodeNamed decodes a kind the chart may render several of, by name.
func decodeNamed[T any](doc string, into map[string]*T, name func(*T) string) error {
	obj := new(T)
	if err := decodeStrict(doc, obj); err != nil {
		return err
	}
	if _, dup := into[name(obj)]; dup {
		return fmt.Errorf("%s rendered twice", name(obj))
	}
	into[name(obj)] = obj
	return nil
}

// decodeStrict decodes like the API server: field names match case-sensitively,
// and unknown or duplicate fields are errors. sigs.k8s.io/yaml's UnmarshalStrict
// alone is not enough, since encoding/json would take "mountpath" for
// "mountPath", while the API server drops it.
func decodeStrict(doc string, into any) error {
	jsonDoc, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(jsonDoc, into)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}
