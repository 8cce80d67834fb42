// Package devicetwin benchmarks the DeviceTwin controller at scale: N
// DeviceTwins applied at once against a real kube-apiserver and etcd
// (envtest) and the embedded hub, with the apiserver's own ceiling measured
// in the same run.
//
// It is not part of `make test` (there are only benchmarks here). Run it
// with:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/bench/devicetwin/ \
//	    -run '^$' -bench . -benchtime 1x -timeout 30m -devicetwin.n 1000,10000
//
// Each size runs once whatever b.N is (a run takes minutes); the numbers are
// reported as custom benchmark metrics:
//
//	create_s           time the benchmark took to create the N objects, before
//	                   the manager starts
//	sync_s             time from the manager's start until every object is
//	                   Synced
//	objs/s             objects synced per second
//	ceiling_objs/s     plain status patches per second against the same
//	                   apiserver, same concurrency, on objects with the same
//	                   spec and a status of the same shape (the ceiling)
//	ratio              objs/s divided by ceiling_objs/s
//	floor_objs/s       the same status patches plus one event each, with an
//	                   informer (managed fields stripped, as the manager's)
//	                   watching the objects, timed until the informer has
//	                   seen every patch: the apiserver work any controller
//	                   that writes a status and an event per object and
//	                   watches its objects must cause, without the hub
//	floor_ratio        objs/s divided by floor_objs/s
//	api_writes/obj     apiserver writes by the controller per object
//	hub_calls/obj      hub REST requests per object
//	rss_MiB, heap_MiB  resident set and Go heap in use of this process after
//	                   convergence; the process holds the manager AND the
//	                   embedded hub, so the manager alone is below this
//	resync_hub_writes, resync_api_writes
//	                   writes caused by reconciling every converged object once
//	                   more and by two polls of the hub watcher: want 0
package devicetwin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/controllers"
	"github.com/twinsync/twinsync/internal/writecount"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
)

var (
	sizes       = flag.String("devicetwin.n", "1000,10000", "comma-separated numbers of DeviceTwins")
	concurrency = flag.Int("devicetwin.workers", 8, "reconcile workers, and the concurrency of the ceiling's status patches")
	pollEvery   = flag.Duration("devicetwin.poll", 2*time.Second, "hub watcher poll interval")
	withEvents  = flag.Bool("devicetwin.events", true, "emit Kubernetes events (false measures the controller without the event writes)")
	profileDir  = flag.String("devicetwin.profile-dir", "", "write CPU profiles of the controller phase here: this process and the kube-apiserver (first 30 s)")
)

func BenchmarkDeviceTwinApply(b *testing.B) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		b.Skip("KUBEBUILDER_ASSETS is not set (KUBEBUILDER_ASSETS=$(hack/envtest.sh))")
	}
	cfg := startControlPlane(b)
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("bad -devicetwin.n %q", s)
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { runSize(b, cfg, n) })
	}
}

// startControlPlane starts etcd and kube-apiserver for the whole run.
func startControlPlane(b *testing.B) *rest.Config {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if *profileDir != "" {
		env.ControlPlane.GetAPIServer().Configure().Set("profiling", "true")
	}
	logf.SetLogger(logr.Discard())
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	if err := iotv1alpha1.AddToScheme(clientgoscheme.Scheme); err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling: measure the apiserver
	// The manager binary registers the hub client's metrics; so does the
	// benchmark, which counts hub calls with them.
	for _, c := range iothub.Collectors() {
		if err := metrics.Registry.Register(c); err != nil {
			b.Fatal(err)
		}
	}
	return cfg
}

// runSize measures one N.
func runSize(b *testing.B, cfg *rest.Config, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	h := hubtest.Start(b, hubtest.InMemory())
	for i := range n {
		if _, err := h.RegisterDevice(deviceID(i)); err != nil {
			b.Fatal(err)
		}
	}

	ceiling := measureCeiling(ctx, b, c, n)
	floor := measureFloor(ctx, b, cfg, c, n)

	ns := namespace(ctx, b, c, "bench")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hub"}, Data: map[string][]byte{
		"connectionString": []byte(h.ServiceConnectionString), "ca.crt": h.CACertPEM(),
	}}
	must(b, c.Create(ctx, secret))

	createStart := time.Now()
	createDeviceTwins(ctx, b, c, ns, n)
	b.ReportMetric(time.Since(createStart).Seconds(), "create_s")

	// All N are applied before the controller starts, so that the timing
	// measures the controller (initial list, N reconciles, N status writes)
	// against the ceiling's N status writes, not the benchmark's creates.
	apiWrites := &atomic.Int64{}
	hubBefore := hubCalls(b)
	start := time.Now()
	stopProfiles := startProfiles(b, cfg, n)
	rec, mgr := startManager(ctx, b, cfg, ns, apiWrites)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("the manager's cache did not sync")
	}
	waitAllSynced(ctx, b, mgr.GetCache(), ns, n)
	elapsed := time.Since(start)
	stopProfiles()
	// The manager's cache only holds what the apiserver committed; one list
	// from the apiserver itself confirms it.
	waitAllSynced(ctx, b, c, ns, n)

	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(elapsed.Seconds(), "sync_s")
	b.ReportMetric(rate, "objs/s")
	b.ReportMetric(ceiling, "ceiling_objs/s")
	b.ReportMetric(rate/ceiling, "ratio")
	b.ReportMetric(floor, "floor_objs/s")
	b.ReportMetric(rate/floor, "floor_ratio")
	b.ReportMetric(float64(apiWrites.Load())/float64(n), "api_writes/obj")
	b.ReportMetric((hubCalls(b)-hubBefore)/float64(n), "hub_calls/obj")
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap_MiB")
	b.ReportMetric(rssMiB(), "rss_MiB")
	if testing.Verbose() {
		logHistograms(b)
	}

	// Resync: every object reconciled once more, and two watcher polls.
	writesBefore, hubWritesBefore := apiWrites.Load(), hubWrites(b)
	forEach(n, *concurrency, func(i int) {
		if _, err := rec.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: deviceID(i)}}); err != nil {
			b.Error(err)
		}
	})
	waitPolls(b, 2)
	b.ReportMetric(hubWrites(b)-hubWritesBefore, "resync_hub_writes")
	b.ReportMetric(float64(apiWrites.Load()-writesBefore), "resync_api_writes")

	cancel()
	cleanup(b, c, ns)
}

// startProfiles starts the CPU profiles of -devicetwin.profile-dir and
// returns the function that stops them.
func startProfiles(b *testing.B, cfg *rest.Config, n int) func() {
	if *profileDir == "" {
		return func() {}
	}
	must(b, os.MkdirAll(*profileDir, 0o755))
	f, err := os.Create(filepath.Join(*profileDir, fmt.Sprintf("bench-%d.pprof", n)))
	must(b, err)
	must(b, pprof.StartCPUProfile(f))
	apiserver := make(chan struct{})
	go func() {
		defer close(apiserver)
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			b.Error(err)
			return
		}
		resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/debug/pprof/profile?seconds=30")
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		out, err := os.Create(filepath.Join(*profileDir, fmt.Sprintf("apiserver-%d.pprof", n)))
		if err != nil {
			b.Error(err)
			return
		}
		defer out.Close()
		_, _ = io.Copy(out, resp.Body)
	}()
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		<-apiserver
	}
}

// measureCeiling creates n DeviceTwins that no controller watches and times
// n plain status patches against them, at the controller's concurrency.
func measureCeiling(ctx context.Context, b *testing.B, c client.Client, n int) float64 {
	ns := namespace(ctx, b, c, "ceiling")
	createDeviceTwins(ctx, b, c, ns, n)
	start := time.Now()
	forEach(n, *concurrency, func(i int) { patchSyncedStatus(ctx, b, c, ns, i) })
	rate := float64(n) / time.Since(start).Seconds()
	cleanup(b, c, ns)
	return rate
}

// measureFloor is measureCeiling plus what the controller cannot avoid
// besides the hub: an informer watching the objects and one event per
// object, created through the events API as the manager's recorder does.
// The clock stops when the informer has seen every status.
func measureFloor(ctx context.Context, b *testing.B, cfg *rest.Config, c client.Client, n int) float64 {
	ns := namespace(ctx, b, c, "floor")
	createDeviceTwins(ctx, b, c, ns, n)
	informers, err := cache.New(cfg, cache.Options{
		Scheme:            clientgoscheme.Scheme,
		DefaultNamespaces: map[string]cache.Config{ns: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
	})
	must(b, err)
	_, err = informers.GetInformer(ctx, &iotv1alpha1.DeviceTwin{})
	must(b, err)
	informerCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = informers.Start(informerCtx) }()
	if !informers.WaitForCacheSync(ctx) {
		b.Fatal("the floor's informer did not sync")
	}

	start := time.Now()
	forEach(n, *concurrency, func(i int) {
		dt := patchSyncedStatus(ctx, b, c, ns, i)
		check(b, c.Create(ctx, benchEvent(ns, dt)))
	})
	waitAllSynced(ctx, b, informers, ns, n)
	rate := float64(n) / time.Since(start).Seconds()
	cleanup(b, c, ns)
	return rate
}

// createDeviceTwins creates the n objects of a run at the benchmark's
// concurrency.
func createDeviceTwins(ctx context.Context, b *testing.B, c client.Client, ns string, n int) {
	forEach(n, *concurrency, func(i int) {
		check(b, c.Create(ctx, benchDeviceTwin(ns, i)))
	})
}

// patchSyncedStatus gives the i-th object the status the controller writes
// when it has applied it, and returns the patched object.
func patchSyncedStatus(ctx context.Context, b *testing.B, c client.Client, ns string, i int) *iotv1alpha1.DeviceTwin {
	dt := benchDeviceTwin(ns, i)
	base := dt.DeepCopy()
	dt.Status = syncedStatus(dt)
	check(b, c.Status().Patch(ctx, dt, client.MergeFrom(base)))
	return dt
}

// benchEvent is an event of the size the controller's Applied event has.
func benchEvent(ns string, dt *iotv1alpha1.DeviceTwin) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s.%x", dt.Name, time.Now().UnixNano())}, // named as the recorder names events
		EventTime:           metav1.NowMicro(),
		ReportingController: "twinsync.io/devicetwin",
		ReportingInstance:   "twinsync.io/devicetwin-bench",
		Action:              "Apply",
		Reason:              "Applied",
		Type:                corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "DeviceTwin", APIVersion: iotv1alpha1.GroupVersion.String(),
			Namespace: ns, Name: dt.Name, UID: dt.UID, ResourceVersion: dt.ResourceVersion},
		Note: "applied generation 1: tags.location, properties.desired.mode, properties.desired.power_level",
	}
}

// benchDeviceTwin is the i-th object of a run; the ceiling uses the same
// objects as the controller so that the apiserver validates the same spec.
func benchDeviceTwin(ns string, i int) *iotv1alpha1.DeviceTwin {
	return &iotv1alpha1.DeviceTwin{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: deviceID(i)},
		Spec: iotv1alpha1.DeviceTwinSpec{
			HubSecretRef: &iotv1alpha1.HubSecretReference{Name: "hub", CAKey: "ca.crt"},
			Tags:         jsonOf(fmt.Sprintf(`{"location":{"plant":"Redmond43","line":%d}}`, i%7)),
			Desired:      jsonOf(`{"power_level":1,"mode":"eco"}`),
		},
	}
}

// syncedStatus is a status of the shape the controller writes for a synced
// object, for the ceiling's plain status patches.
func syncedStatus(dt *iotv1alpha1.DeviceTwin) iotv1alpha1.DeviceTwinStatus {
	st := iotv1alpha1.DeviceTwinStatus{
		ObservedGeneration: 1, DeviceID: dt.Name, ETag: "AAAAAAAAAAI=", Version: 3, DesiredVersion: 2, ReportedVersion: 1,
		ConnectionState: "Disconnected", ManagedTags: []string{"location.line", "location.plant"},
		ManagedDesired: []string{"mode", "power_level"},
	}
	for _, typ := range []string{iotv1alpha1.ConditionSynced, iotv1alpha1.ConditionConverged, iotv1alpha1.ConditionReady} {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue,
			Reason: iotv1alpha1.ReasonSucceeded, Message: "the ceiling writes a status of the controller's size", ObservedGeneration: 1})
	}
	return st
}

// startManager runs the DeviceTwin controller on its own manager, caching
// only the benchmark namespace, and counts its apiserver writes.
func startManager(ctx context.Context, b *testing.B, cfg *rest.Config, ns string, writes *atomic.Int64) (*controllers.DeviceTwinReconciler, ctrl.Manager) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{ns: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
		},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	must(b, err)
	rec := &controllers.DeviceTwinReconciler{
		Client:                  writecount.All(mgr.GetClient(), writes),
		Scheme:                  mgr.GetScheme(),
		Hubs:                    &controllers.Hubs{Reader: mgr.GetClient(), Options: []iothub.Option{iothub.WithLimits(iothub.NoLimits)}},
		WatchInterval:           *pollEvery,
		MaxConcurrentReconciles: *concurrency,
	}
	if !*withEvents {
		rec.Recorder = discardRecorder{}
	}
	must(b, rec.SetupWithManager(mgr))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			b.Error(err)
		}
	}()
	b.Cleanup(func() { <-done })
	return rec, mgr
}

// waitAllSynced polls until n objects have Synced=True for their generation.
// The clock reads the manager's cache: listing N objects from the apiserver
// five times a second would load the apiserver the benchmark measures
// (at 10,000 objects, about 15 MB of JSON per list).
func waitAllSynced(ctx context.Context, b *testing.B, r client.Reader, ns string, n int) {
	deadline := time.Now().Add(20 * time.Minute)
	for {
		var list iotv1alpha1.DeviceTwinList
		must(b, r.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy))
		synced := 0
		for i := range list.Items {
			cond := meta.FindStatusCondition(list.Items[i].Status.Conditions, iotv1alpha1.ConditionSynced)
			if cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == list.Items[i].Generation {
				synced++
			}
		}
		if synced == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d synced after 20 minutes", synced, n)
		}
		time.Sleep(200 * time.Millisecond) // polling interval of the measurement, not synchronisation
	}
}

// waitPolls waits until the watcher's page counter moved over count full
// poll intervals.
func waitPolls(b *testing.B, count int) {
	for range count {
		before := counter(b, "twinsync_devicetwin_watcher_query_pages_total", nil)
		deadline := time.Now().Add(5 * time.Minute)
		for counter(b, "twinsync_devicetwin_watcher_query_pages_total", nil) == before {
			if time.Now().After(deadline) {
				b.Fatal("the hub watcher did not poll")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(*pollEvery) // let the last poll's pages finish
}

// hubCalls is the number of hub REST requests so far.
func hubCalls(b *testing.B) float64 {
	return counter(b, "twinsync_iothub_requests_total", nil)
}

// hubWrites counts twin PATCH/PUT and registry writes so far.
func hubWrites(b *testing.B) float64 {
	return counter(b, "twinsync_iothub_requests_total", func(labels map[string]string) bool {
		op := labels["operation"]
		return strings.HasPrefix(op, "Update") || strings.HasPrefix(op, "Replace") ||
			strings.HasPrefix(op, "Create") || strings.HasPrefix(op, "Delete")
	})
}

// counter sums a counter family of controller-runtime's registry.
func counter(b *testing.B, name string, keep func(map[string]string) bool) float64 {
	families, err := metrics.Registry.Gather()
	must(b, err)
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if keep == nil || keep(labels) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func namespace(ctx context.Context, b *testing.B, c client.Client, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	must(b, c.Create(ctx, ns))
	return ns.Name
}

// cleanup deletes the namespace's DeviceTwins without waiting (envtest has
// no namespace controller; finalizers keep the objects, which is harmless).
func cleanup(b *testing.B, c client.Client, ns string) {
	_ = c.DeleteAllOf(context.Background(), &iotv1alpha1.DeviceTwin{}, client.InNamespace(ns))
}

// forEach runs f(0..n-1) on workers goroutines.
func forEach(n, workers int, f func(i int)) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

func deviceID(i int) string { return fmt.Sprintf("bench-%05d", i) }

func jsonOf(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

// check reports an error from a worker goroutine (b.Fatal may not be called
// there).
func check(b *testing.B, err error) {
	if err != nil {
		b.Error(err)
	}
}

func must(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

// rssMiB reads this process's resident set size from /proc.
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return -1
}

// logHistograms logs the mean of the histograms that explain a run: reconcile
// time, hub request latency by operation, apiserver request latency by verb.
func logHistograms(b *testing.B) {
	families, err := metrics.Registry.Gather()
	must(b, err)
	for _, f := range families {
		switch f.GetName() {
		case "controller_runtime_reconcile_time_seconds", "twinsync_iothub_request_duration_seconds",
			"rest_client_request_duration_seconds", "workqueue_queue_duration_seconds":
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h.GetSampleCount() == 0 {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			b.Logf("%s{%s} n=%d mean=%.1fms", f.GetName(), strings.Join(labels, ","), h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
		}
	}
}

// discardRecorder drops events, to measure what event writes cost.
type discardRecorder struct{}

func (discardRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {
}

func (discardRecorder) AnnotatedEventf(runtime.Object, runtime.Object, map[string]string, string, string, string, string, ...any) {
}
