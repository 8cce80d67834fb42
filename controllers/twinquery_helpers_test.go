package controllers

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
)

// tqEventually is the deadline of every wait in the TwinQuery tests: long
// enough for a loaded two-core machine.
const tqEventually = 60 * time.Second

// tqHubTransport counts what the controller sends to the hub: query pages
// and the 429 answers it got.
type tqHubTransport struct {
	base      http.RoundTripper
	queries   atomic.Int64
	throttled atomic.Int64
}

func (t *tqHubTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	isQuery := req.Method == http.MethodPost && req.URL.Path == "/devices/query"
	if isQuery {
		t.queries.Add(1)
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil && isQuery && resp.StatusCode == http.StatusTooManyRequests {
		t.throttled.Add(1)
	}
	return resp, err
}

// tqEnv is one test's manager, namespace and hub.
type tqEnv struct {
	t          *testing.T
	ctx        context.Context
	hub        *hubtest.Hub
	ns         string
	secret     string
	transport  *tqHubTransport
	reconciler *TwinQueryReconciler
	// statusWrites counts status patches of TwinQueries.
	statusWrites atomic.Int64
}

// tqOptions tune the environment of one test.
type tqOptions struct {
	hubOptions []hubtest.Option
	limits     iothub.Limits
	retry      iothub.RetryPolicy
	scheduler  *QueryScheduler
}

// startTwinQueryEnv starts a hub, a namespace holding its Secret and a
// manager running only the TwinQuery controller; all stop with the test.
func startTwinQueryEnv(t *testing.T, o tqOptions) *tqEnv {
	t.Helper()
	env := &tqEnv{t: t, ctx: testContext(t)}
	env.hub = hubtest.Start(t, append([]hubtest.Option{hubtest.InMemory()}, o.hubOptions...)...)
	env.transport = &tqHubTransport{base: env.hub.HTTPClient().Transport}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tq-"}}
	if err := k8sClient.Create(env.ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	env.ns, env.secret = ns.Name, "hub"
	env.createHubSecret(env.secret)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Only this test's namespace: objects of earlier tests stay in the
		// shared API server (envtest runs no namespace controller).
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{env.ns: {}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.limits == (iothub.Limits{}) {
		o.limits = iothub.NoLimits
	}
	if o.retry == (iothub.RetryPolicy{}) {
		o.retry = iothub.RetryPolicy{MaxAttempts: 2, MaxElapsed: 10 * time.Second}
	}
	if o.scheduler == nil {
		o.scheduler = &QueryScheduler{}
	}
	counting := writecount.Status(mgr.GetClient(), &env.statusWrites)
	env.reconciler = &TwinQueryReconciler{
		Client: counting,
		Scheme: mgr.GetScheme(),
		Hubs: &Hubs{Reader: mgr.GetClient(), Options: []iothub.Option{
			iothub.WithHTTPClient(&http.Client{Transport: env.transport, Timeout: 30 * time.Second}),
			iothub.WithLimits(o.limits),
			iothub.WithRetry(o.retry),
		}},
		Scheduler: o.scheduler,
	}
	if err := env.reconciler.setup(mgr, controller.Options{SkipNameValidation: ptr.To(true)}); err != nil {
		t.Fatal(err)
	}
	mgrCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return env
}

// createHubSecret stores the hub's service connection string and CA.
func (e *tqEnv) createHubSecret(name string) {
	e.t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Data: map[string][]byte{
			DefaultConnectionStringKey: []byte(e.hub.ServiceConnectionString),
			"ca.crt":                   e.hub.CACertPEM(),
		},
	}
	if err := k8sClient.Create(e.ctx, s); err != nil {
		e.t.Fatal(err)
	}
}

// create makes a TwinQuery reading the test hub's Secret.
func (e *tqEnv) create(name, sql string, mutate ...func(*iotv1alpha1.TwinQuery)) *iotv1alpha1.TwinQuery {
	e.t.Helper()
	tq := &iotv1alpha1.TwinQuery{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: iotv1alpha1.TwinQuerySpec{
			Query:           sql,
			HubSecretRef:    &iotv1alpha1.HubSecretReference{Name: e.secret, CAKey: "ca.crt"},
			RefreshInterval: metav1.Duration{Duration: 3 * time.Second},
		},
	}
	for _, m := range mutate {
		m(tq)
	}
	if err := k8sClient.Create(e.ctx, tq); err != nil {
		e.t.Fatal(err)
	}
	return tq
}

// get reads a TwinQuery from the API server.
func (e *tqEnv) get(name string) *iotv1alpha1.TwinQuery {
	e.t.Helper()
	var tq iotv1alpha1.TwinQuery
	if err := k8sClient.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &tq); err != nil {
		e.t.Fatal(err)
	}
	return &tq
}

// waitFor polls name until cond holds, failing the test with the last
// reason after tqEventually.
func (e *tqEnv) waitFor(name string, cond func(*iotv1alpha1.TwinQuery) error) *iotv1alpha1.TwinQuery {
	e.t.Helper()
	var last error
	deadline := time.Now().Add(tqEventually)
	for {
		tq := e.get(name)
		if last = cond(tq); last == nil {
			return tq
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("TwinQuery %s: %v\nstatus: %+v", name, last, tq.Status)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

// waitUntil polls cond until it holds or fails the test after tqEventually.
func (e *tqEnv) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(tqEventually)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// tqCondition checks one condition's status and reason; it also asks the
// condition to be about the current generation.
func tqCondition(typ string, status metav1.ConditionStatus, reason string) func(*iotv1alpha1.TwinQuery) error {
	return func(tq *iotv1alpha1.TwinQuery) error {
		c := meta.FindStatusCondition(tq.Status.Conditions, typ)
		if c == nil {
			return fmt.Errorf("no %s condition", typ)
		}
		if c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != tq.Generation {
			return fmt.Errorf("%s is %s/%s (generation %d), want %s/%s", typ, c.Status, c.Reason, c.ObservedGeneration, status, reason)
		}
		return nil
	}
}

// tqAll combines conditions.
func tqAll(conds ...func(*iotv1alpha1.TwinQuery) error) func(*iotv1alpha1.TwinQuery) error {
	return func(tq *iotv1alpha1.TwinQuery) error {
		for _, c := range conds {
			if err := c(tq); err != nil {
				return err
			}
		}
		return nil
	}
}

// serviceClient is a client of the test hub outside the controller.
func (e *tqEnv) serviceClient(opts ...iothub.Option) *iothub.Client {
	e.t.Helper()
	c, err := iothub.NewFromConnectionString(e.hub.ServiceConnectionString,
		append([]iothub.Option{iothub.WithRootCAs(e.hub.CAPool), iothub.WithLimits(iothub.NoLimits)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// tagDevice registers a device and sets its tags.location.plant.
func (e *tqEnv) tagDevice(c *iothub.Client, id, plant string) {
	e.t.Helper()
	if _, err := e.hub.RegisterDevice(id); err != nil {
		e.t.Fatal(err)
	}
	patch := map[string]any{"tags": map[string]any{"location": map[string]any{"plant": plant}}}
	if _, err := c.UpdateTwin(e.ctx, id, patch, iothub.ETagAny); err != nil {
		e.t.Fatal(err)
	}
}
