// Package twinquery benchmarks the TwinQuery controller's query budget: 100
// TwinQuery objects against one embedded hub that throttles like IoT Hub
// S1, on a real kube-apiserver and etcd (envtest).
//
// The hub's throttle and the client's limiter run on the wall clock, so the
// scenario compresses time instead of faking a clock: every rate is
// multiplied by -tq.scale (the hub throttles as S1 with that many units, the
// client's limits are S1 with as many units, the refresh interval is divided
// by it). Ten minutes of S1 time then take 10/scale minutes; counts are the
// same as on S1 in ten minutes.
//
// Run with:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/bench/twinquery/ -run '^$' -bench TwinQueryBudget -benchtime 1x
package twinquery

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/controllers"
	"github.com/twinsync/twinsync/internal/writecount"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
)

var (
	scale      = flag.Int("tq.scale", 20, "time compression: rates multiplied and intervals divided by this factor")
	s1Minutes  = flag.Int("tq.minutes", 10, "length of the run in S1 minutes")
	numQueries = flag.Int("tq.queries", 100, "number of TwinQuery objects")
)

// s1Interval is every TwinQuery's spec.refreshInterval in S1 time.
const s1Interval = 60 * time.Second

// queryCounter counts query pages per TwinQuery (each query text names its
// object) and the hub's 429 answers.
type queryCounter struct {
	base http.RoundTripper

	mu        sync.Mutex
	perQuery  map[int]int
	total     int
	throttled int

	statusWrites atomic.Int64
}

var queryIndex = regexp.MustCompile(`tags\.n = (\d+)`)

func (c *queryCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	idx := -1
	if req.Method == http.MethodPost && req.URL.Path == "/devices/query" && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var q struct{ Query string }
		if json.Unmarshal(body, &q) == nil {
			if m := queryIndex.FindStringSubmatch(q.Query); m != nil {
				idx, _ = strconv.Atoi(m[1])
			}
		}
	}
	resp, err := c.base.RoundTrip(req)
	if idx >= 0 && err == nil {
		c.mu.Lock()
		if resp.StatusCode == http.StatusTooManyRequests {
			c.throttled++
		} else {
			c.perQuery[idx]++
			c.total++
		}
		c.mu.Unlock()
	}
	return resp, err
}

func BenchmarkTwinQueryBudget(b *testing.B) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		b.Skip("KUBEBUILDER_ASSETS is not set: KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/bench/twinquery/ -bench .")
	}
	k := *scale
	realRun := time.Duration(*s1Minutes) * time.Minute / time.Duration(k)
	interval := s1Interval / time.Duration(k)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, hub, counter := startControlPlaneAndHub(b, ctx, k)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "hub"},
		Data:       map[string][]byte{"connectionString": []byte(hub.ServiceConnectionString), "ca.crt": hub.CACertPEM()},
	}
	for _, o := range []client.Object{ns, secret} {
		if err := c.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	start := time.Now()
	for i := range *numQueries {
		tq := &iotv1alpha1.TwinQuery{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("q%03d", i)},
			Spec: iotv1alpha1.TwinQuerySpec{
				Query:           fmt.Sprintf("SELECT * FROM devices WHERE tags.n = %d", i),
				HubSecretRef:    &iotv1alpha1.HubSecretReference{Name: "hub", CAKey: "ca.crt"},
				RefreshInterval: metav1.Duration{Duration: interval},
			},
		}
		if err := c.Create(ctx, tq); err != nil {
			b.Fatal(err)
		}
	}
	timer := time.NewTimer(realRun - time.Since(start))
	<-timer.C // the measured run: the controller works on its own for this long
	elapsed := time.Since(start)
	b.StopTimer()

	counter.mu.Lock()
	total, throttled := counter.total, counter.throttled
	minQ, maxQ := total, 0
	for i := range *numQueries {
		minQ, maxQ = min(minQ, counter.perQuery[i]), max(maxQ, counter.perQuery[i])
	}
	counter.mu.Unlock()

	var list iotv1alpha1.TwinQueryList
	if err := c.List(ctx, &list, client.InNamespace("bench")); err != nil {
		b.Fatal(err)
	}
	budgetShort := 0
	for _, tq := range list.Items {
		if cnd := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionThrottled); cnd != nil && cnd.Reason == iotv1alpha1.ReasonBudgetShort {
			budgetShort++
		}
	}

	// What the budget allows the TwinQueries: their share of the tier's
	// query rate over the run, plus the share of the bucket's burst.
	limits := iothub.MustTierLimits(iothub.S1, k)
	share := 1 - controllers.DefaultReservedQueryShare
	allowed := float64(limits.Query.Rate)*share*elapsed.Seconds() + float64(limits.Query.Burst)*share
	tier := float64(limits.Query.Rate)*elapsed.Seconds() + float64(limits.Query.Burst)

	b.ReportMetric(float64(total), "refreshes")
	b.ReportMetric(float64(total)/allowed, "refreshes/allowed")
	b.ReportMetric(float64(total)/tier, "refreshes/tier")
	b.ReportMetric(float64(throttled), "hub-429s")
	b.ReportMetric(float64(minQ), "min-refreshes/query")
	b.ReportMetric(float64(maxQ), "max-refreshes/query")
	b.ReportMetric(float64(budgetShort), "budget-short-objects")
	b.ReportMetric(float64(counter.statusWrites.Load()), "status-writes")
	b.Logf("scale %d: %v real = %d S1 minutes; %d queries every %v (S1 %v); %d refreshes, allowed %.0f (TwinQuery share), tier %.0f; per query %d..%d; 429s %d; BudgetShort on %d objects; %d status writes",
		k, elapsed.Round(time.Second), *s1Minutes, *numQueries, interval, s1Interval, total, allowed, tier, minQ, maxQ, throttled, budgetShort, counter.statusWrites.Load())
	if throttled > 5 {
		b.Errorf("the hub answered 429 %d times", throttled)
	}
	// Once the run is as long as one achievable interval (every query's
	// turn in the budget), each query must have been refreshed.
	achievable := time.Duration(float64(*numQueries) / (float64(limits.Query.Rate) * share) * float64(time.Second))
	if elapsed >= achievable && minQ < 1 {
		b.Errorf("a query was never refreshed in %v (achievable interval %v)", elapsed, achievable)
	}
}

// startControlPlaneAndHub starts envtest, a hub throttling as S1 with k
// units and a manager running the TwinQuery controller with S1×k client
// limits; everything stops with ctx and the benchmark.
func startControlPlaneAndHub(b *testing.B, ctx context.Context, k int) (client.Client, *hubtest.Hub, *queryCounter) {
	b.Helper()
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	if err := iotv1alpha1.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}

	hub := hubtest.Start(b, hubtest.InMemory(), hubtest.Throttled("S1", k))
	for i := range 10 {
		if _, err := hub.RegisterDevice(fmt.Sprintf("dev%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	counter := &queryCounter{base: hub.HTTPClient().Transport, perQuery: map[int]int{}}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	r := &controllers.TwinQueryReconciler{
		Client: writecount.Status(mgr.GetClient(), &counter.statusWrites),
		Scheme: scheme,
		Hubs: &controllers.Hubs{Reader: mgr.GetClient(), Options: []iothub.Option{
			iothub.WithHTTPClient(&http.Client{Transport: counter, Timeout: 30 * time.Second}),
			iothub.WithLimits(iothub.MustTierLimits(iothub.S1, k)),
		}},
	}
	if err := r.SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("manager: %v", err)
		}
	})
	return c, hub, counter
}
