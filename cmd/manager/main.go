// Command manager runs the twinsync operator: the DeviceTwin and TwinQuery
// controllers.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/controllers"
	"github.com/twinsync/twinsync/pkg/iothub"
)

// leaderElectionID is fixed so that every replica of the manager competes for
// the same lease.
const leaderElectionID = "twinsync.iot.twinsync.io"

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(iotv1alpha1.AddToScheme(scheme))
	ctrlmetrics.Registry.MustRegister(iothub.Collectors()...)
}

func main() {
	var (
		metricsAddr          string
		probeAddr            string
		secureMetrics        bool
		enableLeaderElection bool
		enableHTTP2          bool
		defaultHubSecret     string
		defaultHubKey        string
		defaultHubCAKey      string
		hubTier              string
		hubUnits             int
		dtWatchInterval      time.Duration
		dtWatchQueryShare    float64
		dtConcurrency        int
		tqConcurrency        int
		enableWebhooks       bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP). 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false, "Elect a leader so that only one manager replica is active.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Serve HTTP/2 on the metrics and webhook servers (off: HTTP/2 stream cancellation and rapid reset CVEs).")
	flag.StringVar(&defaultHubSecret, "default-hub-secret", "", "Secret (namespace/name, or name in the manager's namespace) holding the service connection string used by objects without spec.hubSecretRef.")
	flag.StringVar(&defaultHubKey, "default-hub-secret-key", controllers.DefaultConnectionStringKey, "Key of the default hub Secret that holds the service connection string.")
	flag.StringVar(&defaultHubCAKey, "default-hub-ca-key", "", "Key of the default hub Secret that holds a PEM CA bundle for a private hub; empty trusts the system roots.")
	flag.StringVar(&hubTier, "hub-tier", "S1", "IoT Hub tier whose throttles bound the operator's calls to each hub: F1, S1, S2 or S3.")
	flag.IntVar(&hubUnits, "hub-units", 1, "Number of units of the hub tier.")
	flag.DurationVar(&dtWatchInterval, "devicetwin-watch-interval", controllers.DefaultWatchInterval, "How often the hub watcher polls each hub for changed twins (10s suits the embedded hub; use 60s or more against Azure). Negative disables the watcher.")
	flag.Float64Var(&dtWatchQueryShare, "devicetwin-watch-query-share", controllers.DefaultWatchQueryShare, "Share (0 to 1] of each hub's query rate limit the hub watcher may use; the rest is left to TwinQuery objects.")
	flag.IntVar(&dtConcurrency, "devicetwin-concurrency", 4, "Number of DeviceTwin reconciles run in parallel.")
	flag.IntVar(&tqConcurrency, "twinquery-concurrency", 4, "Number of TwinQuery refreshes run in parallel.")
	flag.BoolVar(&enableWebhooks, "enable-webhooks", false, "Serve the DeviceTwin validating webhook (needs a serving certificate, see config/certmanager).")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme,
		// Managed fields are never read by the controllers; dropping them
		// from the cache saves a large share of its memory.
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                metricsOpts,
		WebhookServer:          webhook.NewServer(webhook.Options{TLSOpts: tlsOpts}),
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         enableLeaderElection,
		LeaderElectionID:       leaderElectionID,
	})
	if err != nil {
		setupLog.Error(err, "unable to create manager")
		os.Exit(1)
	}

	limits, err := iothub.TierLimits(iothub.Tier(hubTier), hubUnits)
	if err != nil {
		setupLog.Error(err, "invalid --hub-tier or --hub-units")
		os.Exit(1)
	}
	defaultSecret, err := parseSecretName(defaultHubSecret, managerNamespace())
	if err != nil {
		setupLog.Error(err, "invalid --default-hub-secret")
		os.Exit(1)
	}
	hubs := &controllers.Hubs{
		Reader:       mgr.GetClient(),
		Default:      defaultSecret,
		DefaultKey:   defaultHubKey,
		DefaultCAKey: defaultHubCAKey,
		Options:      []iothub.Option{iothub.WithLimits(limits)},
	}

	if err := (&controllers.DeviceTwinReconciler{
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		Hubs:                    hubs,
		WatchInterval:           dtWatchInterval,
		WatchQueryShare:         dtWatchQueryShare,
		MaxConcurrentReconciles: dtConcurrency,
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "DeviceTwin")
		os.Exit(1)
	}
	if enableWebhooks {
		if err := controllers.SetupDeviceTwinWebhookWithManager(mgr); err != nil {
			setupLog.Error(err, "unable to create webhook", "webhook", "DeviceTwin")
			os.Exit(1)
		}
	}
	if err := (&controllers.TwinQueryReconciler{
		Client: mgr.GetClient(),
		Scheme: mgr.GetScheme(),
		Hubs:   hubs,
		// TwinQueries leave the hub watcher's share of each hub's query
		// budget untouched, so that together they stay within the tier.
		Scheduler:               &controllers.QueryScheduler{ReservedShare: dtWatchQueryShare},
		MaxConcurrentReconciles: tqConcurrency,
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "TwinQuery")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// managerNamespace is the namespace the manager runs in (downward API
// POD_NAMESPACE), or "default" outside a cluster.
func managerNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "default"
}

// parseSecretName reads "namespace/name" or "name" (in namespace ns).
func parseSecretName(s, ns string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return types.NamespacedName{Namespace: ns, Name: parts[0]}, nil
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return types.NamespacedName{Namespace: parts[0], Name: parts[1]}, nil
	default:
		return types.NamespacedName{}, fmt.Errorf("want namespace/name or name, got %q", s)
	}
}
