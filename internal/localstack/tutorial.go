package localstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// The tutorial's objects, as config/samples declares them.
const (
	// DeviceTwinName is the DeviceTwin object.
	DeviceTwinName = "mydeviceid"
	// DeviceID is the device on the hub.
	DeviceID = "myDeviceId"
	// DeviceSecretName is the Secret the operator writes the device
	// connection string to.
	DeviceSecretName = "mydeviceid-device"
	// PlantQuery lists the devices in plant Redmond43.
	PlantQuery = "redmond43"
	// CellularQuery lists the devices in Redmond43 on a cellular connection.
	CellularQuery = "redmond43-cellular"
)

// StepTimeout bounds each step of the tutorial once the stack is up.
const StepTimeout = 60 * time.Second

// TutorialResult is what the tutorial observed, for tests to assert on.
type TutorialResult struct {
	// Synced is the DeviceTwin right after the operator applied it.
	Synced *iotv1alpha1.DeviceTwin
	// DeviceSecretKeys are the keys of the provisioning Secret.
	DeviceSecretKeys []string
	// PlantBefore and CellularBefore are the queries' results before the
	// device reported; PlantAfter and CellularAfter after.
	PlantBefore, CellularBefore, PlantAfter, CellularAfter *iotv1alpha1.TwinQuery
	// DesiredPatch is the desired patch the device simulator printed (JSON).
	DesiredPatch string
	// Converged is the DeviceTwin once the device reported.
	Converged *iotv1alpha1.DeviceTwin
}

// PlayTutorial plays "Get started with device twins" declaratively in
// namespace: it applies the manifests in samplesDir, waits for the operator
// to provision and sync the device, reads both queries, runs the device
// simulator on the provisioned Secret, and reads both queries again. Each
// step is printed to out and must happen within StepTimeout.
func (s *Stack) PlayTutorial(ctx context.Context, samplesDir, namespace string, out io.Writer) (*TutorialResult, error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	r := &TutorialResult{}

	say("\n==> 1. kubectl apply -k %s (namespace %s)", samplesDir, namespace)
	applied, err := s.ApplyManifests(ctx, samplesDir, namespace)
	if err != nil {
		return r, err
	}
	for _, a := range applied {
		say("    %s created", a)
	}

	say("\n==> 2. the operator creates the device identity, applies tags and desired properties, writes the device Secret")
	if r.Synced, err = s.WaitDeviceTwin(ctx, namespace, DeviceTwinName, "Synced=True", func(dt *iotv1alpha1.DeviceTwin) bool {
		return conditionTrue(dt.Status.Conditions, iotv1alpha1.ConditionSynced, dt.Generation)
	}); err != nil {
		return r, err
	}
	synced := meta.FindStatusCondition(r.Synced.Status.Conditions, iotv1alpha1.ConditionSynced)
	say("    DeviceTwin %s: device %s, Synced=True (%s), twin version %d", DeviceTwinName, r.Synced.Status.DeviceID, synced.Message, r.Synced.Status.Version)
	say("    tags %s, desired %s", jsonOf(r.Synced.Spec.Tags), jsonOf(r.Synced.Spec.Desired))
	secret, err := s.WaitSecret(ctx, namespace, DeviceSecretName, "connectionString")
	if err != nil {
		return r, err
	}
	for k := range secret.Data {
		r.DeviceSecretKeys = append(r.DeviceSecretKeys, k)
	}
	slices.Sort(r.DeviceSecretKeys)
	say("    Secret %s written with keys %s (values not shown: they are credentials)", DeviceSecretName, strings.Join(r.DeviceSecretKeys, ", "))

	say("\n==> 3. the tutorial's queries, before the device connects")
	if r.PlantBefore, err = s.RefreshQuery(ctx, namespace, PlantQuery, []string{DeviceID}); err != nil {
		return r, err
	}
	say("    %-20s %s", PlantQuery+":", describeQuery(r.PlantBefore))
	if r.CellularBefore, err = s.RefreshQuery(ctx, namespace, CellularQuery, nil); err != nil {
		return r, err
	}
	say("    %-20s %s", CellularQuery+":", describeQuery(r.CellularBefore))

	say("\n==> 4. the device simulator connects with the Secret and reports connectivity=cellular")
	patches := make(chan string, 16)
	dev, err := s.StartDevice(ctx, namespace, DeviceSecretName, func(msg map[string]any) {
		if msg["msg"] == "desired properties received" {
			p, _ := msg["patch"].(string)
			select {
			case patches <- p:
			default:
			}
		}
	}, "--report=connectivity=cellular", "--ack-desired", "--log-patches")
	if err != nil {
		return r, err
	}
	err = s.waitProcess(ctx, dev, "the device simulator to receive desired properties", func(context.Context) (bool, string) {
		select {
		case r.DesiredPatch = <-patches:
			return true, ""
		default:
			return false, "no desired patch logged yet; see " + dev.LogPath
		}
	})
	if err != nil {
		return r, err
	}
	say("    device received the desired properties: %s", r.DesiredPatch)
	if r.Converged, err = s.WaitDeviceTwin(ctx, namespace, DeviceTwinName, "the reported connectivity=cellular in status", func(dt *iotv1alpha1.DeviceTwin) bool {
		return reportedValue(dt, "connectivity") == "cellular" && conditionTrue(dt.Status.Conditions, iotv1alpha1.ConditionConverged, dt.Generation)
	}); err != nil {
		return r, err
	}
	say("    DeviceTwin %s: reported %s, connection %s, Converged=True", DeviceTwinName, jsonOf(r.Converged.Status.Reported), r.Converged.Status.ConnectionState)

	say("\n==> 5. the tutorial's queries, after the device reported")
	if r.PlantAfter, err = s.RefreshQuery(ctx, namespace, PlantQuery, []string{DeviceID}); err != nil {
		return r, err
	}
	say("    %-20s %s", PlantQuery+":", describeQuery(r.PlantAfter))
	if r.CellularAfter, err = s.RefreshQuery(ctx, namespace, CellularQuery, []string{DeviceID}); err != nil {
		return r, err
	}
	say("    %-20s %s", CellularQuery+":", describeQuery(r.CellularAfter))

	say("\n==> 6. kubectl get dt,tq -n %s", namespace)
	if err := s.PrintTables(ctx, out, namespace, "devicetwins", "twinqueries"); err != nil {
		return r, err
	}
	return r, nil
}

// ApplyManifests creates every object in the YAML files of dir (except
// kustomization.yaml) in namespace and returns "kind/name" of each.
func (s *Stack) ApplyManifests(ctx context.Context, dir, namespace string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var created []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		objs, err := readObjects(f)
		if err != nil {
			return created, err
		}
		for _, obj := range objs {
			obj.SetNamespace(namespace)
			if err := s.Client.Create(ctx, obj); err != nil {
				return created, fmt.Errorf("create %s %s from %s: %w", obj.GetKind(), obj.GetName(), f, err)
			}
			created = append(created, strings.ToLower(obj.GetKind())+".iot.twinsync.io/"+obj.GetName())
		}
	}
	return created, nil
}

func readObjects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err == io.EOF {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// WaitDeviceTwin polls a DeviceTwin until done holds, for StepTimeout.
func (s *Stack) WaitDeviceTwin(ctx context.Context, namespace, name, what string, done func(*iotv1alpha1.DeviceTwin) bool) (*iotv1alpha1.DeviceTwin, error) {
	dt := &iotv1alpha1.DeviceTwin{}
	err := Poll(ctx, StepTimeout, "DeviceTwin "+name+": "+what, func(ctx context.Context) (bool, string) {
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, dt); err != nil {
			return false, err.Error()
		}
		return done(dt), describeConditions(dt.Status.Conditions)
	})
	return dt, err
}

// WaitSecret polls until a Secret exists with key.
func (s *Stack) WaitSecret(ctx context.Context, namespace, name, key string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := Poll(ctx, StepTimeout, "Secret "+name+" with key "+key, func(ctx context.Context) (bool, string) {
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
			return false, err.Error()
		}
		return len(secret.Data[key]) > 0, "keys " + strings.Join(mapKeys(secret.Data), ",")
	})
	return secret, err
}

// RefreshQuery asks for an immediate refresh of a TwinQuery (the
// reconcile-requested-at annotation) and waits until it is Ready with
// exactly the device ids want (nil: none).
func (s *Stack) RefreshQuery(ctx context.Context, namespace, name string, want []string) (*iotv1alpha1.TwinQuery, error) {
	tq := &iotv1alpha1.TwinQuery{}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if err := s.Client.Get(ctx, key, tq); err != nil {
		return nil, err
	}
	patch := client.MergeFrom(tq.DeepCopy())
	if tq.Annotations == nil {
		tq.Annotations = map[string]string{}
	}
	tq.Annotations[iotv1alpha1.ReconcileRequestAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
	if err := s.Client.Patch(ctx, tq, patch); err != nil {
		return nil, fmt.Errorf("request a refresh of TwinQuery %s: %w", name, err)
	}
	what := fmt.Sprintf("TwinQuery %s: Ready with deviceIds %v", name, want)
	err := Poll(ctx, StepTimeout, what, func(ctx context.Context) (bool, string) {
		if err := s.Client.Get(ctx, key, tq); err != nil {
			return false, err.Error()
		}
		ready := conditionTrue(tq.Status.Conditions, iotv1alpha1.ConditionReady, tq.Generation)
		state := fmt.Sprintf("deviceIds %v, %s", tq.Status.DeviceIDs, describeConditions(tq.Status.Conditions))
		return ready && slices.Equal(tq.Status.DeviceIDs, want) && tq.Status.Count == int64(len(want)), state
	})
	return tq, err
}

// StartDevice runs the device simulator on the device Secret name in
// namespace, as a pod would mount it. Each JSON log line of the simulator
// is passed to onLog. The simulator is stopped by Stop.
func (s *Stack) StartDevice(ctx context.Context, namespace, name string, onLog func(map[string]any), args ...string) (*Process, error) {
	secret := &corev1.Secret{}
	if err := s.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.opts.WorkDir, "secrets", namespace, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cs := strings.TrimSpace(string(secret.Data["connectionString"]))
	if !strings.Contains(cs, "GatewayHostName=") {
		cs += ";GatewayHostName=" + s.HubMQTTAddr
	}
	files := map[string][]byte{"connectionString": []byte(cs), "ca.crt": secret.Data["ca.crt"]}
	if len(files["ca.crt"]) == 0 {
		files["ca.crt"] = s.HubCA // a Secret from a public-hub setup has none
	}
	for file, data := range files {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	onLine := func(line string) {
		var msg map[string]any
		if onLog == nil || json.Unmarshal([]byte(line), &msg) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		onLog(msg)
	}
	args = append([]string{"--secret-dir=" + dir, "--log-format=json", "--health-addr="}, args...)
	p, err := startProcess("devicesim "+name, filepath.Join(s.opts.WorkDir, "devicesim-"+name+".log"), onLine, nil,
		filepath.Join(s.opts.BinDir, "devicesim"), args...)
	if err != nil {
		return nil, err
	}
	s.devices = append(s.devices, p)
	return p, nil
}

func conditionTrue(conds []metav1.Condition, typ string, generation int64) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration >= generation
}

func describeConditions(conds []metav1.Condition) string {
	var parts []string
	for _, c := range conds {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	if len(parts) == 0 {
		return "no conditions yet"
	}
	return strings.Join(parts, "; ")
}

func describeQuery(tq *iotv1alpha1.TwinQuery) string {
	if len(tq.Status.DeviceIDs) == 0 {
		return fmt.Sprintf("count %d, no device  (%s)", tq.Status.Count, tq.Spec.Query)
	}
	return fmt.Sprintf("count %d, %s  (%s)", tq.Status.Count, strings.Join(tq.Status.DeviceIDs, ", "), tq.Spec.Query)
}

func reportedValue(dt *iotv1alpha1.DeviceTwin, key string) any {
	if dt.Status.Reported == nil {
		return nil
	}
	var reported map[string]any
	if json.Unmarshal(dt.Status.Reported.Raw, &reported) != nil {
		return nil
	}
	return reported[key]
}

func jsonOf(v *apiextensionsv1.JSON) string {
	if v == nil || len(v.Raw) == 0 {
		return "{}"
	}
	return string(v.Raw)
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
