package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// Metrics of the DeviceTwin controller, on controller-runtime's registry.
// Labels are bounded: no object names, device ids or secrets.
var (
	reconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twinsync_devicetwin_reconcile_total",
		Help: "DeviceTwin reconciles by result: synced, not_ready, error, paused, deleting.",
	}, []string{"result"})
	conflictsRetried = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "twinsync_devicetwin_conflicts_retried_total",
		Help: "Twin PATCHes answered 412 (etag changed) and retried after a fresh read.",
	})
	driftCorrected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "twinsync_devicetwin_drift_corrected_total",
		Help: "Writes that put back managed keys someone else changed on the hub.",
	})
	applyDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "twinsync_devicetwin_apply_duration_seconds",
		Help:    "Latency of the conditional twin PATCH of an apply.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	})
	statusWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "twinsync_devicetwin_status_writes_total",
		Help: "DeviceTwin status patches sent to the apiserver.",
	})
	conditionObjects = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "twinsync_devicetwin_condition",
		Help: "DeviceTwins per condition type and status.",
	}, []string{"type", "status"})
	watcherPages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "twinsync_devicetwin_watcher_query_pages_total",
		Help: "Query pages the hub watcher fetched.",
	})
	watcherEnqueued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "twinsync_devicetwin_watcher_enqueued_total",
		Help: "DeviceTwins the hub watcher enqueued because their twin changed.",
	})
)

func init() {
	metrics.Registry.MustRegister(reconcileTotal, conflictsRetried, driftCorrected, applyDuration,
		statusWrites, conditionObjects, watcherPages, watcherEnqueued)
}

// reconcileResult is the result label of one reconcile.
func reconcileResult(_ ctrl.Result, err error, dt *iotv1alpha1.DeviceTwin) string {
	switch {
	case err != nil:
		return "error"
	case !dt.DeletionTimestamp.IsZero():
		return "deleting"
	case dt.Annotations[iotv1alpha1.PausedAnnotation] == "true":
		return "paused"
	case isSynced(dt):
		return "synced"
	default:
		return "not_ready"
	}
}

// conditionTypes are the conditions counted by the condition gauge.
var conditionTypes = []string{iotv1alpha1.ConditionReady, iotv1alpha1.ConditionSynced, iotv1alpha1.ConditionConverged}

// conditionStates remembers each object's condition statuses so that the
// gauge counts objects, not reconciles.
type conditionStates struct {
	mu   sync.Mutex
	seen map[types.NamespacedName][3]metav1.ConditionStatus
}

func newConditionStates() *conditionStates {
	return &conditionStates{seen: map[types.NamespacedName][3]metav1.ConditionStatus{}}
}

// observe records the object's conditions after a reconcile.
func (c *conditionStates) observe(key types.NamespacedName, dt *iotv1alpha1.DeviceTwin) {
	var now [3]metav1.ConditionStatus
	for i, typ := range conditionTypes {
		now[i] = metav1.ConditionUnknown
		for _, cond := range dt.Status.Conditions {
			if cond.Type == typ {
				now[i] = cond.Status
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.seen[key]
	c.seen[key] = now
	for i, typ := range conditionTypes {
		if had {
			conditionObjects.WithLabelValues(typ, string(old[i])).Dec()
		}
		conditionObjects.WithLabelValues(typ, string(now[i])).Inc()
	}
}

// forget drops a deleted object from the gauge.
func (c *conditionStates) forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.seen[key]
	if !had {
		return
	}
	delete(c.seen, key)
	for i, typ := range conditionTypes {
		conditionObjects.WithLabelValues(typ, string(old[i])).Dec()
	}
}
