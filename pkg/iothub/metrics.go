package iothub

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric labels are bounded: hub (one per configured hub, the host name by
// default), operation (the client's method names), class (four values),
// code (HTTP status codes) and reason (throttled, server, transport). No
// device ids, no secrets.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twinsync_iothub_requests_total",
		Help: "IoT Hub REST requests by hub, operation and HTTP status code (0 for transport errors).",
	}, []string{"hub", "operation", "code"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "twinsync_iothub_request_duration_seconds",
		Help:    "Latency of single IoT Hub REST requests by hub and operation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"hub", "operation"})

	throttledTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twinsync_iothub_throttled_total",
		Help: "IoT Hub answers with status 429 by hub and operation.",
	}, []string{"hub", "operation"})

	retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twinsync_iothub_retries_total",
		Help: "IoT Hub requests retried by hub, operation and reason (throttled, server, transport).",
	}, []string{"hub", "operation", "reason"})

	limiterWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "twinsync_iothub_limiter_wait_seconds",
		Help:    "Time requests waited in the client-side rate limiter by hub and operation class.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"hub", "class"})
)

// Collectors returns the client's Prometheus collectors, shared by every
// Client in the process. The operator registers them in controller-runtime's
// registry; the package registers nothing itself, so that importing it
// (from a device simulator, say) does not pull in a metrics stack.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{requestsTotal, requestDuration, throttledTotal, retriesTotal, limiterWait}
}

// Retry reasons, the values of the reason label.
const (
	reasonThrottled = "throttled"
	reasonServer    = "server"
	reasonTransport = "transport"
)
