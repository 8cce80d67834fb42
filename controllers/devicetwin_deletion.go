package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/twin"
)

// reconcileDelete runs the deletion policy and then releases the object.
// A hub that cannot be reached keeps the finalizer (retried with backoff)
// until it comes back or SkipHubCleanupAnnotation is set.
func (r *DeviceTwinReconciler) reconcileDelete(ctx context.Context, dt *iotv1alpha1.DeviceTwin) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(dt, DeviceTwinFinalizer) {
		return ctrl.Result{}, nil
	}
	policy := cmpOr(dt.Spec.DeletionPolicy, iotv1alpha1.DeletionPolicyRetain)
	switch {
	case dt.Annotations[SkipHubCleanupAnnotation] == "true":
		r.Recorder.Eventf(dt, nil, corev1.EventTypeWarning, eventCleanup, "Delete",
			"skipping the %s deletion policy: %s is set", policy, SkipHubCleanupAnnotation)
	case policy != iotv1alpha1.DeletionPolicyRetain:
		hub, err := r.Hubs.For(ctx, dt.Namespace, dt.Spec.HubSecretRef)
		if err != nil {
			return r.credentialsFailed(dt, err)
		}
		if err := r.cleanupHub(ctx, dt, hub, policy); err != nil {
			return r.hubFailed(dt, fmt.Errorf("deletion policy %s (set %s=true to skip): %w", policy, SkipHubCleanupAnnotation, err))
		}
		r.Recorder.Eventf(dt, nil, corev1.EventTypeNormal, eventCleanup, "Delete", "deletion policy %s done", policy)
	}
	base := dt.DeepCopy()
	controllerutil.RemoveFinalizer(dt, DeviceTwinFinalizer)
	if err := r.Patch(ctx, dt, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// cleanupHub applies ClearManaged or DeleteDevice. Identities or twins that
// are already gone count as done.
func (r *DeviceTwinReconciler) cleanupHub(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub, policy iotv1alpha1.DeletionPolicy) error {
	var err error
	switch policy {
	case iotv1alpha1.DeletionPolicyDeleteDevice:
		if dt.Spec.ModuleID != "" {
			err = hub.Client.DeleteModule(ctx, dt.EffectiveDeviceID(), dt.Spec.ModuleID, iothub.ETagAny)
		} else {
			err = hub.Client.DeleteDevice(ctx, dt.EffectiveDeviceID(), iothub.ETagAny)
		}
	case iotv1alpha1.DeletionPolicyClearManaged:
		err = r.clearManaged(ctx, dt, hub)
	}
	if errors.Is(err, iothub.ErrNotFound) {
		return nil
	}
	return err
}

// clearManaged removes every key the object manages (recorded in status or
// declared in the spec) with the same etag discipline as apply.
func (r *DeviceTwinReconciler) clearManaged(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub) error {
	specTags, specDesired, err := specSections(dt)
	if err != nil {
		return err
	}
	_, tagsLeaves := twin.Diff(nil, specTags, nil, twin.OwnershipShared)
	_, desiredLeaves := twin.Diff(nil, specDesired, nil, twin.OwnershipShared)
	tagsManaged := append(twin.Managed(dt.Status.ManagedTags), tagsLeaves...)
	desiredManaged := append(twin.Managed(dt.Status.ManagedDesired), desiredLeaves...)
	for attempt := 1; ; attempt++ {
		current, err := readTwin(ctx, dt, hub)
		if err != nil {
			return err
		}
		tagsPatch, _ := twin.Diff(tagsManaged, nil, current.Tags, twin.OwnershipShared)
		desiredPatch, _ := twin.Diff(desiredManaged, nil, current.Properties.Desired.Values, twin.OwnershipShared)
		if len(tagsPatch) == 0 && len(desiredPatch) == 0 {
			return nil
		}
		_, err = r.patchTwin(ctx, dt, hub, twinPatch(tagsPatch, desiredPatch), current.ETag)
		if err == nil || !errors.Is(err, iothub.ErrPreconditionFailed) || attempt == maxApplyAttempts {
			return err
		}
		conflictsRetried.Inc()
	}
}
