package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/internal/localstack"
	"github.com/twinsync/twinsync/pkg/iothub"
)

const (
	repoRoot  = "../.."
	namespace = "tutorial"
)

// TestTutorial plays the tutorial and checks every step, then changes the
// desired properties and checks that the device gets them and the status
// converges again. Finally it checks the hub itself holds what the
// DeviceTwin declared and the device reported.
func TestTutorial(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make test or KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/e2e/")
	}
	binDir := buildBinaries(t)
	t.Run("manifests pass flags the binaries know", func(t *testing.T) {
		checkManifestFlags(t, filepath.Join(binDir, "manager"), "config/manager/manager.yaml", "config/hub/kustomization.yaml")
		checkManifestFlags(t, filepath.Join(binDir, "hub"), "config/hub/hub.yaml")
		checkManifestFlags(t, filepath.Join(binDir, "devicesim"), "config/devicesim/deployment.yaml")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	stack, err := localstack.Start(ctx, localstack.Options{
		BinDir:   binDir,
		CRDDir:   filepath.Join(repoRoot, "config", "crd", "bases"),
		RBACDir:  filepath.Join(repoRoot, "config", "rbac"),
		WorkDir:  t.TempDir(),
		Progress: newTestWriter(t),
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	t.Cleanup(func() {
		if err := stack.Stop(); err != nil {
			t.Errorf("stop the stack: %v", err)
		}
		for _, p := range []*localstack.Process{stack.Hub, stack.Manager} {
			if exited, _ := p.Exited(); !exited {
				t.Errorf("%s still running after Stop", p.Name)
			}
		}
	})
	if err := stack.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}

	r, err := stack.PlayTutorial(ctx, filepath.Join(repoRoot, "config", "samples"), namespace, newTestWriter(t))
	if err != nil {
		t.Fatalf("tutorial: %v\nmanager log: %s", err, tail(stack.Manager.LogPath))
	}

	t.Run("provisioned", func(t *testing.T) {
		if r.Synced.Status.DeviceID != localstack.DeviceID {
			t.Errorf("status.deviceId = %q, want %q", r.Synced.Status.DeviceID, localstack.DeviceID)
		}
		if want := []string{"ca.crt", "connectionString"}; !slices.Equal(r.DeviceSecretKeys, want) {
			t.Errorf("device Secret keys = %v, want %v", r.DeviceSecretKeys, want)
		}
	})
	t.Run("queries before the device reported", func(t *testing.T) {
		checkQuery(t, r.PlantBefore, []string{localstack.DeviceID})
		checkQuery(t, r.CellularBefore, nil)
	})
	t.Run("device received power_level", func(t *testing.T) {
		var patch map[string]any
		if err := json.Unmarshal([]byte(r.DesiredPatch), &patch); err != nil {
			t.Fatalf("desired patch %q: %v", r.DesiredPatch, err)
		}
		if patch["power_level"] != float64(1) {
			t.Errorf("desired patch = %v, want power_level 1", patch)
		}
	})
	t.Run("reported mirrored and Ready", func(t *testing.T) {
		dt := r.Converged
		if got := reported(t, dt.Status.Reported); got["connectivity"] != "cellular" || got["power_level"] != float64(1) {
			t.Errorf("status.reported = %v, want connectivity=cellular and power_level=1 (acknowledged)", got)
		}
		if dt.Status.ConnectionState != "Connected" {
			t.Errorf("status.connectionState = %q, want Connected", dt.Status.ConnectionState)
		}
		// What `kubectl wait --for=condition=Ready` checks, generation included.
		ready := meta.FindStatusCondition(dt.Status.Conditions, iotv1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != dt.Generation || dt.Status.ObservedGeneration != dt.Generation {
			t.Errorf("Ready = %+v, observedGeneration %d, generation %d; want True for the current generation", ready, dt.Status.ObservedGeneration, dt.Generation)
		}
	})
	t.Run("queries after the device reported", func(t *testing.T) {
		checkQuery(t, r.PlantAfter, []string{localstack.DeviceID})
		checkQuery(t, r.CellularAfter, []string{localstack.DeviceID})
	})
	t.Run("desired change reaches the device", func(t *testing.T) {
		dt := &iotv1alpha1.DeviceTwin{}
		key := types.NamespacedName{Namespace: namespace, Name: localstack.DeviceTwinName}
		if err := stack.Client.Get(ctx, key, dt); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(dt.DeepCopy())
		dt.Spec.Desired = &apiextensionsv1.JSON{Raw: []byte(`{"power_level":2}`)}
		if err := stack.Client.Patch(ctx, dt, patch); err != nil {
			t.Fatal(err)
		}
		got, err := stack.WaitDeviceTwin(ctx, namespace, localstack.DeviceTwinName, "power_level 2 reported", func(dt *iotv1alpha1.DeviceTwin) bool {
			c := meta.FindStatusCondition(dt.Status.Conditions, iotv1alpha1.ConditionReady)
			return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == dt.Generation &&
				reportedOrNil(dt.Status.Reported)["power_level"] == float64(2)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.DesiredVersion <= r.Converged.Status.DesiredVersion {
			t.Errorf("desiredVersion %d did not move past %d", got.Status.DesiredVersion, r.Converged.Status.DesiredVersion)
		}
	})
	t.Run("the hub holds the twin", func(t *testing.T) {
		tw := hubTwin(ctx, t, stack)
		if plant := dig(tw, "tags", "location", "plant"); plant != "Redmond43" {
			t.Errorf("hub tags.location.plant = %v, want Redmond43", plant)
		}
		if region := dig(tw, "tags", "location", "region"); region != "US" {
			t.Errorf("hub tags.location.region = %v, want US", region)
		}
		if p := dig(tw, "properties", "desired", "power_level"); p != float64(2) {
			t.Errorf("hub desired power_level = %v, want 2", p)
		}
		if c := dig(tw, "properties", "reported", "connectivity"); c != "cellular" {
			t.Errorf("hub reported connectivity = %v, want cellular", c)
		}
	})
	t.Run("RBAC from markers suffices", func(t *testing.T) {
		// The manager runs as its ServiceAccount with config/rbac's roles.
		log, err := os.ReadFile(stack.Manager.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(log), "forbidden") {
			t.Errorf("the manager was refused a request; its RBAC markers miss a permission:\n%s", tail(stack.Manager.LogPath))
		}
	})
	t.Run("kubectl get table", func(t *testing.T) {
		var out strings.Builder
		if err := stack.PrintTables(ctx, &out, namespace, "devicetwins", "twinqueries"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"devicetwin.iot.twinsync.io/" + localstack.DeviceTwinName,
			"twinquery.iot.twinsync.io/" + localstack.PlantQuery,
			"twinquery.iot.twinsync.io/" + localstack.CellularQuery,
			"Connected",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, out.String())
			}
		}
	})
}

func checkQuery(t *testing.T, tq *iotv1alpha1.TwinQuery, want []string) {
	t.Helper()
	if !slices.Equal(tq.Status.DeviceIDs, want) || tq.Status.Count != int64(len(want)) {
		t.Errorf("TwinQuery %s: deviceIds %v count %d, want %v", tq.Name, tq.Status.DeviceIDs, tq.Status.Count, want)
	}
	if !meta.IsStatusConditionTrue(tq.Status.Conditions, iotv1alpha1.ConditionReady) {
		t.Errorf("TwinQuery %s is not Ready: %+v", tq.Name, tq.Status.Conditions)
	}
}

// hubTwin reads the tutorial's twin straight from the hub with the service
// client and the default hub Secret, as a JSON map.
func hubTwin(ctx context.Context, t *testing.T, stack *localstack.Stack) map[string]any {
	t.Helper()
	secret := &corev1.Secret{}
	if err := stack.Client.Get(ctx, types.NamespacedName{Namespace: localstack.SystemNamespace, Name: localstack.HubSecretName}, secret); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(stack.HubCA)
	c, err := iothub.NewFromConnectionString(string(secret.Data["connectionString"]), iothub.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	tw, err := c.GetTwin(ctx, localstack.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tw)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[p]
	}
	return v
}

func reported(t *testing.T, j *apiextensionsv1.JSON) map[string]any {
	t.Helper()
	if j == nil {
		t.Fatal("status.reported is empty")
	}
	return reportedOrNil(j)
}

func reportedOrNil(j *apiextensionsv1.JSON) map[string]any {
	var m map[string]any
	if j != nil {
		_ = json.Unmarshal(j.Raw, &m)
	}
	return m
}

// buildBinaries builds the manager, hub and device simulator into a
// temporary directory (fast when the Go build cache is warm).
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"manager", "hub", "devicesim"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
		}
	}
	return dir
}

// tail returns the end of a log file for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// testWriter sends progress to the test log, a whole line at a time
// (tabwriter writes cell by cell).
type testWriter struct {
	t       *testing.T
	pending *bytes.Buffer
}

func newTestWriter(t *testing.T) testWriter { return testWriter{t: t, pending: &bytes.Buffer{}} }

func (w testWriter) Write(p []byte) (int, error) {
	w.pending.Write(p)
	for {
		line, err := w.pending.ReadString('\n')
		if err != nil { // no newline yet: keep the fragment
			w.pending.Reset()
			w.pending.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}
