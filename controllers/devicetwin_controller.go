// Package controllers holds the twinsync reconcilers: one per kind.
package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// DeviceTwinReconciler makes an IoT Hub device twin match a DeviceTwin.
type DeviceTwinReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// Hubs resolves hub credentials and shares one client per hub.
	Hubs *Hubs
}

// +kubebuilder:rbac:groups=iot.twinsync.io,resources=devicetwins,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iot.twinsync.io,resources=devicetwins/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iot.twinsync.io,resources=devicetwins/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings one DeviceTwin closer to its declared state.
func (r *DeviceTwinReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var dt iotv1alpha1.DeviceTwin
	if err := r.Get(ctx, req.NamespacedName, &dt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log.V(1).Info("observed DeviceTwin", "generation", dt.Generation)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with the manager.
func (r *DeviceTwinReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&iotv1alpha1.DeviceTwin{}).
		Named("devicetwin").
		Complete(r)
}
