package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results of a TwinQuery refresh, the values of the result label.
const (
	tqRefreshChanged   = "changed"
	tqRefreshUnchanged = "unchanged"
	tqRefreshThrottled = "throttled"
	tqRefreshFailed    = "failed"
	tqRefreshInvalid   = "invalid"
)

// TwinQuery metrics. Labels are bounded: no object names, no query text.
var (
	twinQueryRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twinsync_twinquery_refreshes_total",
		Help: "TwinQuery refreshes by result: changed, unchanged, throttled, failed, invalid.",
	}, []string{"result"})
	twinQueryRows = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "twinsync_twinquery_rows_returned",
		Help:    "Rows the hub returned per successful TwinQuery refresh.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	})
	twinQueryLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "twinsync_twinquery_refresh_duration_seconds",
		Help:    "Time to run a TwinQuery refresh against the hub, all pages and client waits included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	twinQuerySkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "twinsync_twinquery_refreshes_skipped_budget_total",
		Help: "TwinQuery refreshes postponed to keep within the hub's query budget.",
	})
)

func init() {
	metrics.Registry.MustRegister(twinQueryRefreshes, twinQueryRows, twinQueryLatency, twinQuerySkipped)
}
