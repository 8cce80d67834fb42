package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/query"
)

// TwinQueryHubSecretIndex is the field index of TwinQueries by
// spec.hubSecretRef.name, used to find the queries a Secret change affects.
const TwinQueryHubSecretIndex = "twinquery.spec.hubSecretRef.name"

// DefaultTwinQueryRefreshInterval applies when spec.refreshInterval is
// unset (the CRD defaults it; objects written before the default need it).
const DefaultTwinQueryRefreshInterval = 60 * time.Second

// tqLastRefreshConfirmAfter is how old status.lastRefreshTime may grow while
// the result stays the same before a refresh confirms it (the interval
// when that is longer). Results that change are written, with the time, at
// once.
const tqLastRefreshConfirmAfter = time.Hour

// Event reasons of the TwinQuery controller.
const (
	tqEventRefreshed   = "Refreshed"
	tqEventQueryFailed = "QueryFailed"
)

// TwinQueryReconciler runs a TwinQuery's IoT Hub query and caches the result
// in its status.
//
// A reconcile validates spec.query with pkg/query before any hub call (a
// parse error is Ready=False and Stalled=True, reason InvalidQuery, with the
// position), resolves the hub through Hubs (one shared client per hub, so
// its limiter sees every caller), asks the QueryScheduler whether the
// hub's budget allows a refresh now, pages through the result and patches
// status once, only when something in it changed. Spec changes and a new
// iot.twinsync.io/reconcile-requested-at value refresh at once (still
// paced); otherwise the next refresh comes after the achievable interval
// with 10% jitter. Negative-polarity conditions (Stalled, Throttled) are
// present only while True.
type TwinQueryReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// Hubs resolves hub credentials and shares one client per hub.
	Hubs *Hubs
	// Scheduler spreads refreshes over each hub's query budget; nil means a
	// scheduler with the default reserved share, created by SetupWithManager.
	Scheduler *QueryScheduler
	// Recorder emits Kubernetes events; nil means the manager's recorder.
	Recorder events.EventRecorder
	// MaxConcurrentReconciles bounds parallel refreshes; zero means 4.
	MaxConcurrentReconciles int
	// Now is the clock for status times; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=iot.twinsync.io,resources=twinqueries,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iot.twinsync.io,resources=twinqueries/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile refreshes one TwinQuery and writes its status when it changed.
func (r *TwinQueryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var tq iotv1alpha1.TwinQuery
	if err := r.Get(ctx, req.NamespacedName, &tq); err != nil {
		if apierrors.IsNotFound(err) {
			r.Scheduler.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if tq.Annotations[iotv1alpha1.PausedAnnotation] == "true" {
		logf.FromContext(ctx).V(1).Info("reconciliation paused")
		r.Scheduler.Forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	before := tq.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, before, &tq); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	return r.reconcile(ctx, &tq)
}

// patchStatus writes the status computed by a reconcile, only if it
// differs from the status as read.
func (r *TwinQueryReconciler) patchStatus(ctx context.Context, before, tq *iotv1alpha1.TwinQuery) error {
	if equality.Semantic.DeepEqual(before.Status, tq.Status) {
		return nil
	}
	err := r.Status().Patch(ctx, tq, client.MergeFrom(before))
	return client.IgnoreNotFound(err)
}

// reconcile fills tq.Status; the caller patches it.
func (r *TwinQueryReconciler) reconcile(ctx context.Context, tq *iotv1alpha1.TwinQuery) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(tq)
	forced := r.forced(tq)

	parsed, err := query.Parse(tq.Spec.Query)
	if err != nil {
		r.Scheduler.Forget(key)
		twinQueryRefreshes.WithLabelValues(tqRefreshInvalid).Inc()
		clearTwinQueryResult(&tq.Status)
		r.stalled(tq, iotv1alpha1.ReasonInvalidQuery, "spec.query: "+err.Error())
		return ctrl.Result{}, nil
	}

	hub, err := r.Hubs.For(ctx, tq.Namespace, tq.Spec.HubSecretRef)
	if ce, ok := IsCredentialsError(err); ok {
		r.Scheduler.Forget(key)
		r.stalled(tq, ce.Reason, ce.Message)
		return ctrl.Result{}, nil // a Secret change brings the object back
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	interval := tqRefreshInterval(tq)
	r.Scheduler.Register(key, hub.Client.Host(), hub.Client.Limits(), interval)
	r.setBudgetCondition(tq, key, interval, false)
	decision := r.Scheduler.Decide(key, forced)
	if !decision.Run {
		if decision.Budget {
			twinQuerySkipped.Inc()
		}
		return ctrl.Result{RequeueAfter: decision.Wait}, nil
	}
	return r.refresh(ctx, tq, hub.Client, parsed, interval)
}

// forced reports whether tq must refresh before its interval is over: its
// spec changed, a reconcile was requested, or it has no good result yet.
func (r *TwinQueryReconciler) forced(tq *iotv1alpha1.TwinQuery) bool {
	return tq.Status.ObservedGeneration != tq.Generation ||
		tq.Annotations[iotv1alpha1.ReconcileRequestAnnotation] != tq.Status.LastHandledReconcileAt ||
		!meta.IsStatusConditionTrue(tq.Status.Conditions, iotv1alpha1.ConditionReady)
}

// refresh runs the query and records its result or error in status.
func (r *TwinQueryReconciler) refresh(ctx context.Context, tq *iotv1alpha1.TwinQuery, c *iothub.Client, parsed *query.Query, interval time.Duration) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	key := client.ObjectKeyFromObject(tq)
	start := r.now()
	res, err := runTwinQuery(ctx, c, tq.Spec.Query, parsed.Star, int64(tqMaxResults(tq)), StatusByteBudget)
	twinQueryLatency.Observe(r.now().Sub(start).Seconds())
	next := r.Scheduler.Done(key, start, res.Pages)
	tqHandled(tq)
	r.setBudgetCondition(tq, key, interval, err == nil)
	if err != nil {
		log.Info("query refresh failed", "error", err.Error(), "pages", res.Pages)
		return r.failed(tq, err, next), nil
	}

	result := tqRefreshUnchanged
	if !res.sameAs(tq.Status.Count, tq.Status.DeviceIDs, tq.Status.Rows, tq.Status.Truncated) {
		result = tqRefreshChanged
		tq.Status.Count, tq.Status.DeviceIDs, tq.Status.Rows, tq.Status.Truncated = res.Count, res.DeviceIDs, res.Rows, res.Truncated
		tq.Status.LastRefreshTime = &metav1.Time{Time: start}
	} else if last := tq.Status.LastRefreshTime; last == nil || start.Sub(last.Time) >= max(tqLastRefreshConfirmAfter, interval) {
		tq.Status.LastRefreshTime = &metav1.Time{Time: start}
	}
	twinQueryRefreshes.WithLabelValues(result).Inc()
	twinQueryRows.Observe(float64(res.Count))
	log.V(1).Info("query refreshed", "result", result, "count", res.Count, "pages", res.Pages, "next", next)

	meta.RemoveStatusCondition(&tq.Status.Conditions, iotv1alpha1.ConditionStalled)
	msg := fmt.Sprintf("The hub returned %d row(s)", res.Count)
	if res.Truncated {
		msg += "; status keeps the first " + fmt.Sprint(len(res.DeviceIDs)+len(res.Rows))
	}
	r.setReady(tq, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded, msg)
	return ctrl.Result{RequeueAfter: next}, nil
}

// failed records a hub error: throttling keeps the last result and says
// Throttled; refusals that only a change can fix stall; the rest retries
// after the interval.
func (r *TwinQueryReconciler) failed(tq *iotv1alpha1.TwinQuery, err error, next time.Duration) ctrl.Result {
	var hubErr *iothub.Error
	isHubErr := errors.As(err, &hubErr)
	switch {
	case errors.Is(err, iothub.ErrThrottled):
		twinQueryRefreshes.WithLabelValues(tqRefreshThrottled).Inc()
		r.setCondition(tq, iotv1alpha1.ConditionThrottled, metav1.ConditionTrue, iotv1alpha1.ReasonThrottled, tqHubMessage(err))
		if !meta.IsStatusConditionTrue(tq.Status.Conditions, iotv1alpha1.ConditionReady) {
			r.setReady(tq, metav1.ConditionFalse, iotv1alpha1.ReasonThrottled, tqHubMessage(err))
		}
		return ctrl.Result{RequeueAfter: max(next, hubErr.RetryAfter)}
	case errors.Is(err, iothub.ErrInvalid):
		twinQueryRefreshes.WithLabelValues(tqRefreshInvalid).Inc()
		r.Scheduler.Forget(client.ObjectKeyFromObject(tq))
		r.stalled(tq, iotv1alpha1.ReasonQueryFailed, tqHubMessage(err))
		return ctrl.Result{}
	case errors.Is(err, iothub.ErrUnauthorized):
		twinQueryRefreshes.WithLabelValues(tqRefreshFailed).Inc()
		r.Scheduler.Forget(client.ObjectKeyFromObject(tq))
		r.stalled(tq, iotv1alpha1.ReasonUnauthorized, tqHubMessage(err))
		return ctrl.Result{}
	case isHubErr:
		twinQueryRefreshes.WithLabelValues(tqRefreshFailed).Inc()
		r.setReady(tq, metav1.ConditionFalse, iotv1alpha1.ReasonQueryFailed, tqHubMessage(err))
	default:
		twinQueryRefreshes.WithLabelValues(tqRefreshFailed).Inc()
		r.setReady(tq, metav1.ConditionFalse, iotv1alpha1.ReasonHubUnreachable, err.Error())
	}
	return ctrl.Result{RequeueAfter: next}
}

// tqHubMessage is the hub's own error text when it gave one.
func tqHubMessage(err error) string {
	var hubErr *iothub.Error
	if errors.As(err, &hubErr) && hubErr.Message != "" {
		if hubErr.Code != "" {
			return hubErr.Code + ": " + hubErr.Message
		}
		return hubErr.Message
	}
	return err.Error()
}

// tqHandled records that the current spec and reconcile request were acted
// on: refreshed, or found unable to refresh. A refresh postponed for the
// budget is not handled yet.
func tqHandled(tq *iotv1alpha1.TwinQuery) {
	tq.Status.ObservedGeneration = tq.Generation
	tq.Status.LastHandledReconcileAt = tq.Annotations[iotv1alpha1.ReconcileRequestAnnotation]
}

// stalled marks tq as unable to progress until its spec or Secret changes.
func (r *TwinQueryReconciler) stalled(tq *iotv1alpha1.TwinQuery, reason, msg string) {
	tqHandled(tq)
	meta.RemoveStatusCondition(&tq.Status.Conditions, iotv1alpha1.ConditionThrottled)
	r.setCondition(tq, iotv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	r.setReady(tq, metav1.ConditionFalse, reason, msg)
}

// setBudgetCondition says Throttled/BudgetShort while the hub's budget
// stretches tq's interval. A Throttled condition left by a 429 stays until
// a refresh succeeds (refreshed is true).
func (r *TwinQueryReconciler) setBudgetCondition(tq *iotv1alpha1.TwinQuery, key types.NamespacedName, interval time.Duration, refreshed bool) {
	state := r.Scheduler.State(key)
	if state.Short {
		r.setCondition(tq, iotv1alpha1.ConditionThrottled, metav1.ConditionTrue, iotv1alpha1.ReasonBudgetShort, state.Message(interval))
		return
	}
	c := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionThrottled)
	if c != nil && (refreshed || c.Reason == iotv1alpha1.ReasonBudgetShort) {
		meta.RemoveStatusCondition(&tq.Status.Conditions, iotv1alpha1.ConditionThrottled)
	}
}

// setReady sets Ready and emits an event when its status or reason moves.
func (r *TwinQueryReconciler) setReady(tq *iotv1alpha1.TwinQuery, status metav1.ConditionStatus, reason, msg string) {
	old := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionReady)
	r.setCondition(tq, iotv1alpha1.ConditionReady, status, reason, msg)
	if r.Recorder == nil || (old != nil && old.Status == status && old.Reason == reason) {
		return
	}
	if status == metav1.ConditionTrue {
		r.Recorder.Eventf(tq, nil, corev1.EventTypeNormal, tqEventRefreshed, "Refresh", "%s", msg)
		return
	}
	r.Recorder.Eventf(tq, nil, corev1.EventTypeWarning, tqEventQueryFailed, "Refresh", "%s: %s", reason, msg)
}

func (r *TwinQueryReconciler) setCondition(tq *iotv1alpha1.TwinQuery, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&tq.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: tq.Generation,
	})
}

func (r *TwinQueryReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// clearTwinQueryResult drops a result that no longer answers spec.query.
func clearTwinQueryResult(s *iotv1alpha1.TwinQueryStatus) {
	s.Count, s.DeviceIDs, s.Rows, s.Truncated, s.LastRefreshTime = 0, nil, nil, false, nil
}

func tqRefreshInterval(tq *iotv1alpha1.TwinQuery) time.Duration {
	if d := tq.Spec.RefreshInterval.Duration; d > 0 {
		return d
	}
	return DefaultTwinQueryRefreshInterval
}

func tqMaxResults(tq *iotv1alpha1.TwinQuery) int32 {
	if tq.Spec.MaxResults > 0 {
		return tq.Spec.MaxResults
	}
	return 1000
}

// SetupWithManager registers the reconciler, the Secret index and watch.
func (r *TwinQueryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.setup(mgr, controller.Options{})
}

// setup registers the reconciler with extra controller options (tests set
// SkipNameValidation).
func (r *TwinQueryReconciler) setup(mgr ctrl.Manager, opts controller.Options) error {
	if r.Scheduler == nil {
		r.Scheduler = &QueryScheduler{}
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("twinquery-controller")
	}
	if opts.MaxConcurrentReconciles == 0 {
		opts.MaxConcurrentReconciles = r.MaxConcurrentReconciles
	}
	if opts.MaxConcurrentReconciles == 0 {
		opts.MaxConcurrentReconciles = 4
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &iotv1alpha1.TwinQuery{}, TwinQueryHubSecretIndex,
		func(o client.Object) []string {
			if ref := o.(*iotv1alpha1.TwinQuery).Spec.HubSecretRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("indexing TwinQueries by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&iotv1alpha1.TwinQuery{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.queriesForSecret)).
		WithOptions(opts).
		Named("twinquery").
		Complete(r)
}

// queriesForSecret lists the TwinQueries that read a Secret: those naming
// it, and those without a reference when it is the manager's default.
func (r *TwinQueryReconciler) queriesForSecret(ctx context.Context, o client.Object) []ctrl.Request {
	var reqs []ctrl.Request
	var named iotv1alpha1.TwinQueryList
	if err := r.List(ctx, &named, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{TwinQueryHubSecretIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing TwinQueries of a Secret")
		return nil
	}
	for _, tq := range named.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&tq)})
	}
	if r.Hubs == nil || r.Hubs.Default != client.ObjectKeyFromObject(o) {
		return reqs
	}
	var all iotv1alpha1.TwinQueryList
	if err := r.List(ctx, &all); err != nil {
		logf.FromContext(ctx).Error(err, "listing TwinQueries of the default Secret")
		return reqs
	}
	for _, tq := range all.Items {
		if tq.Spec.HubSecretRef == nil {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&tq)})
		}
	}
	return reqs
}
