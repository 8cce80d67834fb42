// Package controllers holds the twinsync reconcilers: one per kind.
//
// # DeviceTwin
//
// DeviceTwinReconciler follows Cluster API's pattern: Reconcile reads the
// object once, runs a short list of phase functions that change the
// in-memory copy, and a deferred function patches the status once (a merge
// patch against the object as read), only when it changed. Conditions carry
// the generation they speak for; lastTransitionTime moves only on a
// transition and there are no heartbeat fields, so an object whose twin is in
// sync costs one twin GET per reconcile and no write anywhere.
//
// Apply: the twin is read (GET, etag), pkg/twin's Diff computes the smallest
// merge patch for the managed keys, and the patch is sent with If-Match on
// the etag just read. A 412 re-reads and retries (maxApplyAttempts), then the
// object is requeued with the controller's backoff and Synced=False/Conflict.
// status.managedTags and status.managedDesired record the leaf paths written,
// so a key removed from the spec is removed from the hub (null) even after a
// manager restart.
//
// Change detection: the hub watcher (devicetwin_watcher.go) polls the hub
// with paged queries for the etag, version and connection state of the
// managed twins and enqueues, through a source.Channel, only the objects whose
// twin differs from their status. Status values that the apiserver
// normalises (numbers in status.reported, times rounded to seconds) are
// compared semantically so that a round trip never looks like a change.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/twin"
)

const (
	// DeviceTwinFinalizer is added before the first hub write so that the
	// deletion policy runs before the object goes away. Objects with the
	// Retain policy (the default) have nothing to do on deletion and carry
	// no finalizer.
	DeviceTwinFinalizer = "iot.twinsync.io/devicetwin"

	// SkipHubCleanupAnnotation, set to "true" on a DeviceTwin being deleted,
	// removes the finalizer without touching the hub: the escape hatch for a
	// hub that is gone for good or credentials that will never come back.
	SkipHubCleanupAnnotation = "iot.twinsync.io/skip-hub-cleanup"

	// DeviceTwinControllerName names the controller, its event recorder and
	// its metrics.
	DeviceTwinControllerName = "devicetwin"

	// DefaultWatchInterval is the hub watcher's default poll interval.
	DefaultWatchInterval = 10 * time.Second
	// DefaultWatchQueryShare is the default share of a hub's query budget
	// the watcher may spend; the rest is left to TwinQuery objects.
	DefaultWatchQueryShare = 0.5

	// hubSecretIndex indexes DeviceTwins by the Secret they take hub
	// credentials from; defaultSecretIndexValue stands for the manager's
	// default Secret (a leading dot is not a valid Secret name).
	hubSecretIndex          = "spec.hubSecretRef.name"
	defaultSecretIndexValue = ".default"

	// maxApplyAttempts bounds the read-diff-patch rounds of one reconcile
	// when concurrent writers keep changing the etag.
	maxApplyAttempts = 3
	// deviceNotFoundRetry is how long to wait before looking again for a
	// device identity someone else is expected to create.
	deviceNotFoundRetry = 30 * time.Second
)

// DeviceTwinReconciler makes an IoT Hub device twin match a DeviceTwin.
type DeviceTwinReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// Hubs resolves hub credentials and shares one client per hub.
	Hubs *Hubs
	// Recorder emits events; SetupWithManager sets the manager's when nil.
	Recorder recorder.EventRecorder
	// WatchInterval is the hub watcher's poll interval; zero means
	// DefaultWatchInterval, negative disables the watcher.
	WatchInterval time.Duration
	// WatchQueryShare is the share (0, 1] of each hub's query rate limit
	// the watcher may use; zero means DefaultWatchQueryShare.
	WatchQueryShare float64
	// MaxConcurrentReconciles is the number of workers; zero means 1.
	MaxConcurrentReconciles int

	// beforeUpdate, when set (tests only), runs between the twin read and
	// the conditional PATCH, to exercise the 412 path deterministically.
	beforeUpdate func(deviceID string)
	// conditionStates feeds the objects-per-condition gauge.
	conditionStates *conditionStates
	// written holds the twin stamp each object's status was last patched
	// with, so that the watcher does not mistake a cache that lags behind
	// that patch for a change on the hub.
	written sync.Map // types.NamespacedName -> twinStamp
}

// +kubebuilder:rbac:groups=iot.twinsync.io,resources=devicetwins,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iot.twinsync.io,resources=devicetwins/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iot.twinsync.io,resources=devicetwins/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one DeviceTwin closer to its declared state.
func (r *DeviceTwinReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var dt iotv1alpha1.DeviceTwin
	if err := r.Get(ctx, req.NamespacedName, &dt); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.conditionStates.forget(req.NamespacedName)
			r.written.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := logf.FromContext(ctx).WithValues("deviceId", dt.EffectiveDeviceID())
	ctx = logf.IntoContext(ctx, log)
	base := dt.DeepCopy()

	defer func() {
		if err := r.patchStatus(ctx, base, &dt); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		} else {
			r.written.Store(req.NamespacedName, stampOfStatus(&dt.Status))
		}
		r.conditionStates.observe(req.NamespacedName, &dt)
		reconcileTotal.WithLabelValues(reconcileResult(result, retErr, &dt)).Inc()
	}()

	if !dt.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, &dt)
	}
	if dt.Annotations[iotv1alpha1.PausedAnnotation] == "true" {
		markPaused(&dt)
		return ctrl.Result{}, nil
	}
	if requested, ok := dt.Annotations[iotv1alpha1.ReconcileRequestAnnotation]; ok {
		dt.Status.LastHandledReconcileAt = requested
	}
	if err := r.syncFinalizer(ctx, base, &dt); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileNormal(ctx, &dt)
}

// syncFinalizer stores the finalizer before the first hub write when the
// deletion policy has work to do on the hub, and removes it when the policy
// became Retain. Retain needs no finalizer (deleting the object leaves the
// hub alone), which saves every such object an apiserver write.
func (r *DeviceTwinReconciler) syncFinalizer(ctx context.Context, base, dt *iotv1alpha1.DeviceTwin) error {
	var changed bool
	if needsFinalizer(dt) {
		changed = controllerutil.AddFinalizer(dt, DeviceTwinFinalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(dt, DeviceTwinFinalizer)
	}
	if !changed {
		return nil
	}
	if err := r.Patch(ctx, dt, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("updating finalizers: %w", err)
	}
	base.Finalizers = dt.Finalizers
	base.ResourceVersion = dt.ResourceVersion
	return nil
}

// needsFinalizer reports whether deleting the object has work to do on the
// hub.
func needsFinalizer(dt *iotv1alpha1.DeviceTwin) bool {
	return cmpOr(dt.Spec.DeletionPolicy, iotv1alpha1.DeletionPolicyRetain) != iotv1alpha1.DeletionPolicyRetain
}

// patchStatus writes the status once, as a merge patch against the object
// as read, and only when it changed.
func (r *DeviceTwinReconciler) patchStatus(ctx context.Context, base, dt *iotv1alpha1.DeviceTwin) error {
	if !dt.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(dt, DeviceTwinFinalizer) {
		return nil // the object is going away; nothing to record
	}
	if equality.Semantic.DeepEqual(base.Status, dt.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, dt, client.MergeFrom(base)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("patching status: %w", err))
	}
	statusWrites.Inc()
	return nil
}

// reconcileNormal runs the phases of a live object: credentials, identity,
// apply, mirror and conditions.
func (r *DeviceTwinReconciler) reconcileNormal(ctx context.Context, dt *iotv1alpha1.DeviceTwin) (ctrl.Result, error) {
	dt.Status.DeviceID = dt.EffectiveDeviceID()
	hub, err := r.Hubs.For(ctx, dt.Namespace, dt.Spec.HubSecretRef)
	if err != nil {
		return r.credentialsFailed(dt, err)
	}
	current, result, err := r.ensureIdentity(ctx, dt, hub)
	if current == nil {
		return result, err
	}
	if err := r.ensureDeviceSecret(ctx, dt, hub); err != nil {
		var hubErr *iothub.Error
		if errors.As(err, &hubErr) || isTerminal(err) {
			return r.hubFailed(dt, err)
		}
		return ctrl.Result{}, err // an apiserver error: retried with backoff
	}
	current, err = r.apply(ctx, dt, hub, current)
	if current != nil {
		mirror(dt, current)
	}
	if err != nil {
		return r.hubFailed(dt, err)
	}
	setSynced(dt)
	setConverged(dt, current)
	summarise(dt)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler, its Secret watch, the hub
// watcher and the metrics with the manager.
func (r *DeviceTwinReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.setup(mgr, controller.Options{})
}

// setup is SetupWithManager with extra controller options (tests register
// the controller name more than once).
func (r *DeviceTwinReconciler) setup(mgr ctrl.Manager, opts controller.Options) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(DeviceTwinControllerName)
	}
	if r.conditionStates == nil {
		r.conditionStates = newConditionStates()
	}
	if r.WatchQueryShare < 0 || r.WatchQueryShare > 1 {
		return fmt.Errorf("the watcher's query share must be in (0, 1], got %v", r.WatchQueryShare)
	}
	if opts.MaxConcurrentReconciles == 0 {
		opts.MaxConcurrentReconciles = max(1, r.MaxConcurrentReconciles)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &iotv1alpha1.DeviceTwin{}, hubSecretIndex, indexHubSecret); err != nil {
		return fmt.Errorf("indexing DeviceTwins by hub Secret: %w", err)
	}

	b := ctrl.NewControllerManagedBy(mgr).
		For(&iotv1alpha1.DeviceTwin{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{},
			predicate.AnnotationChangedPredicate{},
			deletingPredicate(),
		))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsForSecret)).
		Named(DeviceTwinControllerName).
		WithOptions(opts)

	if r.WatchInterval >= 0 {
		changes := make(chan event.TypedGenericEvent[*iotv1alpha1.DeviceTwin], 1024)
		w := &hubWatcher{
			reader:   mgr.GetClient(),
			hubs:     r.Hubs,
			interval: cmpOr(r.WatchInterval, DefaultWatchInterval),
			share:    cmpOr(r.WatchQueryShare, DefaultWatchQueryShare),
			changes:  changes,
			written:  &r.written,
		}
		if err := mgr.Add(w); err != nil {
			return fmt.Errorf("adding the hub watcher: %w", err)
		}
		b = b.WatchesRawSource(source.Channel(changes, &handler.TypedEnqueueRequestForObject[*iotv1alpha1.DeviceTwin]{}))
	}
	return b.Complete(r)
}

// indexHubSecret is the field index of the Secret a DeviceTwin's hub
// credentials come from.
func indexHubSecret(obj client.Object) []string {
	dt := obj.(*iotv1alpha1.DeviceTwin)
	if dt.Spec.HubSecretRef == nil {
		return []string{defaultSecretIndexValue}
	}
	return []string{dt.Spec.HubSecretRef.Name}
}

// requestsForSecret maps a Secret to the DeviceTwins that take hub
// credentials from it (through the field index, or all objects without
// hubSecretRef for the manager's default Secret) and to the DeviceTwin owning
// it as a provisioning Secret.
func (r *DeviceTwinReconciler) requestsForSecret(ctx context.Context, obj client.Object) []ctrl.Request {
	var reqs []ctrl.Request
	if owner := metav1OwnerDeviceTwin(obj); owner != "" {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: owner}})
	}
	reqs = append(reqs, r.listRequests(ctx, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{hubSecretIndex: obj.GetName()})...)
	if r.Hubs.Default.Name == obj.GetName() && r.Hubs.Default.Namespace == obj.GetNamespace() {
		reqs = append(reqs, r.listRequests(ctx, client.MatchingFields{hubSecretIndex: defaultSecretIndexValue})...)
	}
	return reqs
}

func (r *DeviceTwinReconciler) listRequests(ctx context.Context, opts ...client.ListOption) []ctrl.Request {
	var list iotv1alpha1.DeviceTwinList
	if err := r.List(ctx, &list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing DeviceTwins for a Secret")
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// metav1OwnerDeviceTwin returns the name of the DeviceTwin controlling obj,
// or "".
func metav1OwnerDeviceTwin(obj client.Object) string {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Kind == "DeviceTwin" && ref.Controller != nil && *ref.Controller &&
			ref.APIVersion == iotv1alpha1.GroupVersion.String() {
			return ref.Name
		}
	}
	return ""
}

// deletingPredicate lets through updates that mark an object for deletion,
// whatever happened to its generation.
func deletingPredicate() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// markPaused records that reconciliation is paused. Ready turns Unknown so
// that nobody mistakes a paused object for a healthy one.
func markPaused(dt *iotv1alpha1.DeviceTwin) {
	meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionReady,
		metav1.ConditionUnknown, iotv1alpha1.ReasonPaused, "reconciliation is paused by the "+iotv1alpha1.PausedAnnotation+" annotation"))
}

// isRetryable reports whether an error from a phase should be retried with
// the controller's backoff.
func isRetryable(err error) bool {
	var terminal *terminalError
	return !errors.As(err, &terminal)
}

// terminalError is a failure only a spec change can fix: no requeue.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// cmpOr returns v unless it is the zero value, else def.
func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// specSections decodes the spec's tags and desired properties with numbers
// as json.Number, the form pkg/twin works on.
func specSections(dt *iotv1alpha1.DeviceTwin) (tags, desired map[string]any, err error) {
	if dt.Spec.Tags != nil {
		if tags, err = decodeObject(dt.Spec.Tags.Raw); err != nil {
			return nil, nil, fmt.Errorf("spec.tags: %w", err)
		}
	}
	if dt.Spec.Desired != nil {
		if desired, err = decodeObject(dt.Spec.Desired.Raw); err != nil {
			return nil, nil, fmt.Errorf("spec.desired: %w", err)
		}
	}
	return tags, desired, nil
}

// ownership maps the API's ownership onto pkg/twin's.
func ownership(dt *iotv1alpha1.DeviceTwin) twin.Ownership {
	if dt.Spec.Ownership == iotv1alpha1.OwnershipExclusive {
		return twin.OwnershipExclusive
	}
	return twin.OwnershipShared
}
