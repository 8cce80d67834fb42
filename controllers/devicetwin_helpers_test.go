package controllers

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/internal/writecount"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/twin"
)

// dtTimeout bounds every Eventually of the DeviceTwin tests: generous, for a
// loaded 2-core machine.
const dtTimeout = 45 * time.Second

// dtEnv is one DeviceTwin test: a fresh namespace, an embedded hub, a
// manager running only the DeviceTwin controller, and a second service
// client playing "another writer".
type dtEnv struct {
	t      *testing.T
	ctx    context.Context
	g      Gomega
	ns     string
	hub    *hubtest.Hub
	other  *iothub.Client
	rec    *DeviceTwinReconciler
	writes *atomic.Int64
}

// dtEnvOption tunes the reconciler before the manager starts.
type dtEnvOption func(*DeviceTwinReconciler)

// newDTEnv starts everything and stops it when the test ends.
func newDTEnv(t *testing.T, opts ...dtEnvOption) *dtEnv {
	t.Helper()
	ctx := testContext(t)
	g := NewWithT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dt-"}}
	g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())

	h := hubtest.Start(t, hubtest.InMemory())
	other, err := iothub.NewFromConnectionString(h.ServiceConnectionString,
		iothub.WithRootCAs(h.CAPool), iothub.WithLimits(iothub.NoLimits))
	g.Expect(err).NotTo(HaveOccurred())
	e := &dtEnv{t: t, ctx: ctx, g: g, ns: ns.Name, hub: h, other: other, writes: &atomic.Int64{}}
	e.putHubSecret("hub", h.ServiceConnectionString+";GatewayHostName="+h.MQTTAddr, h.CACertPEM())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns.Name: {}}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	e.rec = &DeviceTwinReconciler{
		Client: writecount.Status(mgr.GetClient(), e.writes),
		Scheme: mgr.GetScheme(),
		Hubs: &Hubs{Reader: mgr.GetClient(), Options: []iothub.Option{
			iothub.WithLimits(iothub.NoLimits),
			iothub.WithRetry(iothub.RetryPolicy{MaxAttempts: 2, MaxElapsed: 2 * time.Second, BaseDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond, AttemptTimeout: 5 * time.Second}),
		}},
		WatchInterval: 200 * time.Millisecond,
	}
	for _, opt := range opts {
		opt(e.rec)
	}
	g.Expect(e.rec.setup(mgr, controller.Options{SkipNameValidation: ptr.To(true)})).To(Succeed())

	mgrCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return e
}

// putHubSecret creates or replaces a hub credentials Secret.
func (e *dtEnv) putHubSecret(name, connectionString string, ca []byte) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}
	data := map[string][]byte{"connectionString": []byte(connectionString), "ca.crt": ca}
	if err := k8sClient.Get(e.ctx, client.ObjectKeyFromObject(s), s); err == nil {
		s.Data = data
		e.g.Expect(k8sClient.Update(e.ctx, s)).To(Succeed())
		return
	}
	s.Data = data
	e.g.Expect(k8sClient.Create(e.ctx, s)).To(Succeed())
}

// hubRef is the reference to the test hub's Secret.
func hubRef(name string) *iotv1alpha1.HubSecretReference {
	return &iotv1alpha1.HubSecretReference{Name: name, Key: "connectionString", CAKey: "ca.crt"}
}

// jsonOf returns a spec section from a JSON literal.
func jsonOf(s string) *apiextensionsv1.JSON {
	return &apiextensionsv1.JSON{Raw: []byte(s)}
}

// newDT returns a DeviceTwin of this env's namespace using the test hub.
func (e *dtEnv) newDT(name, tags, desired string) *iotv1alpha1.DeviceTwin {
	dt := &iotv1alpha1.DeviceTwin{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec:       iotv1alpha1.DeviceTwinSpec{HubSecretRef: hubRef("hub")},
	}
	if tags != "" {
		dt.Spec.Tags = jsonOf(tags)
	}
	if desired != "" {
		dt.Spec.Desired = jsonOf(desired)
	}
	return dt
}

// get reads a DeviceTwin from the apiserver.
func (e *dtEnv) get(name string) *iotv1alpha1.DeviceTwin {
	var dt iotv1alpha1.DeviceTwin
	e.g.Expect(k8sClient.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &dt)).To(Succeed())
	return &dt
}

// update changes a DeviceTwin, retrying on conflicts with the controller.
func (e *dtEnv) update(name string, change func(*iotv1alpha1.DeviceTwin)) {
	e.t.Helper()
	e.g.Eventually(func() error {
		var dt iotv1alpha1.DeviceTwin
		if err := k8sClient.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &dt); err != nil {
			return err
		}
		change(&dt)
		return k8sClient.Update(e.ctx, &dt)
	}, dtTimeout).Should(Succeed())
}

// waitCondition waits until a condition has the status and reason, for the
// object's current generation.
func (e *dtEnv) waitCondition(name, typ string, status metav1.ConditionStatus, reason string) *iotv1alpha1.DeviceTwin {
	e.t.Helper()
	var dt *iotv1alpha1.DeviceTwin
	e.g.Eventually(func(g Gomega) {
		dt = e.get(name)
		c := meta.FindStatusCondition(dt.Status.Conditions, typ)
		g.Expect(c).NotTo(BeNil(), "condition %s", typ)
		g.Expect(c.Status).To(Equal(status), "condition %s: %s", typ, c.Message)
		if reason != "" {
			g.Expect(c.Reason).To(Equal(reason), "condition %s: %s", typ, c.Message)
		}
		g.Expect(c.ObservedGeneration).To(Equal(dt.Generation))
	}, dtTimeout, 50*time.Millisecond).Should(Succeed())
	return dt
}

// hubTwin reads the twin from the hub.
func (e *dtEnv) hubTwin(deviceID string) *twin.Twin {
	tw, err := e.other.GetTwin(e.ctx, deviceID)
	e.g.Expect(err).NotTo(HaveOccurred())
	return tw
}

// canonical renders a JSON value canonically (sorted keys) for comparisons.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	var out any
	_ = json.Unmarshal(b, &out)
	b, _ = json.Marshal(out)
	return string(b)
}

// eventuallyHub waits until the hub's twin satisfies check.
func (e *dtEnv) eventuallyHub(deviceID string, check func(g Gomega, tw *twin.Twin)) {
	e.t.Helper()
	e.g.Eventually(func(g Gomega) {
		tw, err := e.other.GetTwin(e.ctx, deviceID)
		g.Expect(err).NotTo(HaveOccurred())
		check(g, tw)
	}, dtTimeout, 50*time.Millisecond).Should(Succeed())
}
