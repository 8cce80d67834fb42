package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
	"github.com/twinsync/twinsync/pkg/twin"
)

// Keys of a provisioning Secret, the ones the device simulator sidecar reads.
const (
	// DeviceSecretConnectionStringKey holds the device connection string.
	DeviceSecretConnectionStringKey = "connectionString"
	// DeviceSecretCAKey holds the hub's PEM CA bundle, for a private hub.
	DeviceSecretCAKey = "ca.crt"
)

// Event reasons of the DeviceTwin controller.
const (
	eventApplied         = "Applied"
	eventDriftCorrected  = "DriftCorrected"
	eventConflict        = "Conflict"
	eventIdentityCreated = "IdentityCreated"
	eventSecretWritten   = "DeviceSecretWritten"
	eventFailed          = "ReconcileFailed"
	eventCleanup         = "HubCleanup"
)

// credentialsFailed records unusable hub credentials. A CredentialsError is
// not retried: the Secret watch brings the object back when it changes.
func (r *DeviceTwinReconciler) credentialsFailed(dt *iotv1alpha1.DeviceTwin, err error) (ctrl.Result, error) {
	ce, ok := IsCredentialsError(err)
	if !ok {
		return ctrl.Result{}, err
	}
	setFailed(dt, ce.Reason, ce.Message)
	r.Recorder.Eventf(dt, nil, corev1.EventTypeWarning, ce.Reason, "Reconcile", "%s", ce.Message)
	return ctrl.Result{}, nil
}

// hubFailed records a failed hub call in the conditions and decides on the
// retry: refusals only a spec change can fix are not retried, everything else
// goes back to the queue with the controller's backoff.
func (r *DeviceTwinReconciler) hubFailed(dt *iotv1alpha1.DeviceTwin, err error) (ctrl.Result, error) {
	reason := hubErrorReason(err)
	setFailed(dt, reason, err.Error())
	r.Recorder.Eventf(dt, nil, corev1.EventTypeWarning, cmpOr(eventFor(reason), eventFailed), "Reconcile", "%s", err.Error())
	if reason == iotv1alpha1.ReasonInvalidTwin {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

func eventFor(reason string) string {
	if reason == iotv1alpha1.ReasonConflict {
		return eventConflict
	}
	return ""
}

// hubErrorReason maps a hub call's error onto a condition reason.
func hubErrorReason(err error) string {
	switch {
	case errors.Is(err, iothub.ErrNotFound):
		return iotv1alpha1.ReasonDeviceNotFound
	case errors.Is(err, iothub.ErrPreconditionFailed):
		return iotv1alpha1.ReasonConflict
	case errors.Is(err, iothub.ErrThrottled):
		return iotv1alpha1.ReasonThrottled
	case errors.Is(err, iothub.ErrUnauthorized):
		return iotv1alpha1.ReasonUnauthorized
	case errors.Is(err, iothub.ErrInvalid), errors.Is(err, iothub.ErrTooLarge), isTerminal(err):
		return iotv1alpha1.ReasonInvalidTwin
	default:
		return iotv1alpha1.ReasonHubUnreachable
	}
}

func isTerminal(err error) bool { return !isRetryable(err) }

// readTwin reads the device or module twin the object manages.
func readTwin(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub) (*twin.Twin, error) {
	if dt.Spec.ModuleID != "" {
		return hub.Client.GetModuleTwin(ctx, dt.EffectiveDeviceID(), dt.Spec.ModuleID)
	}
	return hub.Client.GetTwin(ctx, dt.EffectiveDeviceID())
}

// ensureIdentity reads the twin, creating the identity first when it is
// absent and provisioning asks for it. A nil twin means the reconcile ends
// here with the returned result.
func (r *DeviceTwinReconciler) ensureIdentity(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub) (*twin.Twin, ctrl.Result, error) {
	current, err := readTwin(ctx, dt, hub)
	if err == nil {
		return current, ctrl.Result{}, nil
	}
	if !errors.Is(err, iothub.ErrNotFound) {
		result, err := r.hubFailed(dt, err)
		return nil, result, err
	}
	if dt.Spec.Provisioning == nil || !dt.Spec.Provisioning.CreateIdentity {
		setFailed(dt, iotv1alpha1.ReasonDeviceNotFound, fmt.Sprintf(
			"device %q%s does not exist on hub %s and spec.provisioning.createIdentity is false",
			dt.EffectiveDeviceID(), moduleSuffix(dt), hub.HostName))
		return nil, ctrl.Result{RequeueAfter: deviceNotFoundRetry}, nil
	}
	if err := createIdentity(ctx, dt, hub); err != nil {
		result, err := r.hubFailed(dt, err)
		return nil, result, err
	}
	r.Recorder.Eventf(dt, nil, corev1.EventTypeNormal, eventIdentityCreated, "Provision",
		"created identity %q%s on hub %s", dt.EffectiveDeviceID(), moduleSuffix(dt), hub.HostName)
	if current, err = readTwin(ctx, dt, hub); err != nil {
		result, err := r.hubFailed(dt, err)
		return nil, result, err
	}
	return current, ctrl.Result{}, nil
}

// createIdentity creates the device and, for a module twin, the module, with
// keys generated by the hub. An identity that already exists is fine.
func createIdentity(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub) error {
	_, err := hub.Client.CreateDevice(ctx, &iothub.Device{DeviceID: dt.EffectiveDeviceID()})
	if err != nil && !errors.Is(err, iothub.ErrConflict) {
		return err
	}
	if dt.Spec.ModuleID == "" {
		return nil
	}
	_, err = hub.Client.CreateModule(ctx, &iothub.Device{DeviceID: dt.EffectiveDeviceID(), ModuleID: dt.Spec.ModuleID})
	if err != nil && !errors.Is(err, iothub.ErrConflict) {
		return err
	}
	return nil
}

func moduleSuffix(dt *iotv1alpha1.DeviceTwin) string {
	if dt.Spec.ModuleID == "" {
		return ""
	}
	return fmt.Sprintf(" module %q", dt.Spec.ModuleID)
}

// ensureDeviceSecret writes the device connection string (and the hub CA)
// into the provisioning Secret, owned by the DeviceTwin. The identity's keys
// are read from the registry only when the Secret is missing or stale, so an
// up-to-date Secret costs no hub call.
func (r *DeviceTwinReconciler) ensureDeviceSecret(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub) error {
	p := dt.Spec.Provisioning
	if p == nil || p.SecretName == "" {
		return nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: dt.Namespace, Name: p.SecretName}}
	if err := r.Get(ctx, client.ObjectKeyFromObject(secret), secret); err == nil && deviceSecretCurrent(secret, dt, hub) {
		return nil
	}
	cs, err := r.deviceConnectionString(ctx, dt, hub)
	if err != nil {
		return err
	}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, secret, func() error {
		secret.Type = corev1.SecretTypeOpaque
		secret.Data = map[string][]byte{DeviceSecretConnectionStringKey: []byte(cs.Secret())}
		if len(hub.CABundle) > 0 {
			secret.Data[DeviceSecretCAKey] = hub.CABundle
		}
		return controllerutil.SetControllerReference(dt, secret, r.Scheme)
	})
	if err != nil {
		return fmt.Errorf("writing Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	if op != controllerutil.OperationResultNone {
		r.Recorder.Eventf(dt, nil, corev1.EventTypeNormal, eventSecretWritten, "Provision",
			"wrote the device connection string into Secret %s", secret.Name)
	}
	return nil
}

// deviceConnectionString builds the identity's connection string from its
// primary key as the registry returns it.
func (r *DeviceTwinReconciler) deviceConnectionString(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub) (*sas.ConnectionString, error) {
	var (
		identity *iothub.Device
		err      error
	)
	if dt.Spec.ModuleID != "" {
		identity, err = hub.Client.GetModule(ctx, dt.EffectiveDeviceID(), dt.Spec.ModuleID)
	} else {
		identity, err = hub.Client.GetDevice(ctx, dt.EffectiveDeviceID())
	}
	if err != nil {
		return nil, fmt.Errorf("reading identity %q: %w", dt.EffectiveDeviceID(), err)
	}
	if identity.Authentication == nil || identity.Authentication.SymmetricKey == nil {
		return nil, &terminalError{fmt.Errorf("identity %q has no symmetric keys to publish", dt.EffectiveDeviceID())}
	}
	key, err := sas.ParseKey(identity.Authentication.SymmetricKey.PrimaryKey)
	if err != nil {
		return nil, &terminalError{fmt.Errorf("identity %q: %w", dt.EffectiveDeviceID(), err)}
	}
	return &sas.ConnectionString{
		HostName:        hub.HostName,
		GatewayHostName: hub.GatewayHostName,
		DeviceID:        dt.EffectiveDeviceID(),
		ModuleID:        dt.Spec.ModuleID,
		SharedAccessKey: key,
	}, nil
}

// deviceSecretCurrent reports whether a provisioning Secret already holds a
// connection string for this identity and hub, the hub's CA and our owner
// reference.
func deviceSecretCurrent(secret *corev1.Secret, dt *iotv1alpha1.DeviceTwin, hub *Hub) bool {
	if metav1OwnerDeviceTwin(secret) != dt.Name || !bytes.Equal(secret.Data[DeviceSecretCAKey], hub.CABundle) {
		return false
	}
	cs, err := sas.ParseConnectionString(string(secret.Data[DeviceSecretConnectionStringKey]))
	return err == nil && cs.HostName == hub.HostName && cs.GatewayHostName == hub.GatewayHostName &&
		cs.DeviceID == dt.EffectiveDeviceID() && cs.ModuleID == dt.Spec.ModuleID && len(cs.SharedAccessKey) > 0
}

// apply makes the hub's twin match the spec for the managed keys: diff,
// conditional PATCH, and on 412 a fresh read and another round. It returns
// the latest twin known, also on error.
func (r *DeviceTwinReconciler) apply(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub, current *twin.Twin) (*twin.Twin, error) {
	specTags, specDesired, err := specSections(dt)
	if err != nil {
		return current, &terminalError{err}
	}
	drift := isSynced(dt)
	for attempt := 1; ; attempt++ {
		tagsPatch, tagsManaged := twin.Diff(dt.Status.ManagedTags, specTags, current.Tags, ownership(dt))
		desiredPatch, desiredManaged := twin.Diff(dt.Status.ManagedDesired, specDesired, current.Properties.Desired.Values, ownership(dt))
		if len(tagsPatch) == 0 && len(desiredPatch) == 0 {
			setManaged(dt, tagsManaged, desiredManaged)
			return current, nil
		}
		if r.beforeUpdate != nil {
			r.beforeUpdate(dt.EffectiveDeviceID())
		}
		updated, err := r.patchTwin(ctx, dt, hub, twinPatch(tagsPatch, desiredPatch), current.ETag)
		switch {
		case err == nil:
			setManaged(dt, tagsManaged, desiredManaged)
			r.recordApplied(dt, drift, tagsPatch, desiredPatch)
			return updated, nil
		case !errors.Is(err, iothub.ErrPreconditionFailed):
			return current, err
		case attempt == maxApplyAttempts:
			return current, fmt.Errorf("the twin changed under %d consecutive writes, retrying later: %w", attempt, err)
		}
		conflictsRetried.Inc()
		logf.FromContext(ctx).V(1).Info("twin changed since read, retrying", "attempt", attempt)
		if current, err = readTwin(ctx, dt, hub); err != nil {
			return nil, err
		}
	}
}

// patchTwin sends one conditional PATCH and records its latency.
func (r *DeviceTwinReconciler) patchTwin(ctx context.Context, dt *iotv1alpha1.DeviceTwin, hub *Hub, patch map[string]any, etag string) (*twin.Twin, error) {
	start := time.Now()
	defer func() { applyDuration.Observe(time.Since(start).Seconds()) }()
	if dt.Spec.ModuleID != "" {
		return hub.Client.UpdateModuleTwin(ctx, dt.EffectiveDeviceID(), dt.Spec.ModuleID, patch, etag)
	}
	return hub.Client.UpdateTwin(ctx, dt.EffectiveDeviceID(), patch, etag)
}

// twinPatch wraps section patches into a twin PATCH body.
func twinPatch(tags, desired map[string]any) map[string]any {
	body := map[string]any{}
	if len(tags) > 0 {
		body["tags"] = tags
	}
	if len(desired) > 0 {
		body["properties"] = map[string]any{"desired": desired}
	}
	return body
}

// recordApplied emits the event and metric of a successful write.
func (r *DeviceTwinReconciler) recordApplied(dt *iotv1alpha1.DeviceTwin, drift bool, tags, desired map[string]any) {
	keys := strings.Join(append(topKeys("tags", tags), topKeys("properties.desired", desired)...), ", ")
	if drift {
		driftCorrected.Inc()
		r.Recorder.Eventf(dt, nil, corev1.EventTypeNormal, eventDriftCorrected, "Apply", "corrected keys changed on the hub: %s", keys)
		return
	}
	r.Recorder.Eventf(dt, nil, corev1.EventTypeNormal, eventApplied, "Apply", "applied generation %d: %s", dt.Generation, keys)
}

// topKeys names the top-level keys of a section patch, sorted, for events.
func topKeys(prefix string, patch map[string]any) []string {
	keys := make([]string, 0, len(patch))
	for k := range patch {
		keys = append(keys, prefix+"."+k)
	}
	sort.Strings(keys)
	return keys
}

// setManaged records the managed leaf paths; nil for none keeps the status
// free of empty lists.
func setManaged(dt *iotv1alpha1.DeviceTwin, tags, desired twin.Managed) {
	dt.Status.ManagedTags = nilIfEmpty(tags)
	dt.Status.ManagedDesired = nilIfEmpty(desired)
}

func nilIfEmpty(m twin.Managed) []string {
	if len(m) == 0 {
		return nil
	}
	return []string(m)
}

// mirror copies what the hub observed into the status. Values the apiserver
// normalises are replaced only when they differ semantically.
func mirror(dt *iotv1alpha1.DeviceTwin, t *twin.Twin) {
	s := &dt.Status
	s.ETag, s.Version = t.ETag, t.Version
	s.DesiredVersion = t.Properties.Desired.Version
	s.ReportedVersion = t.Properties.Reported.Version
	s.ConnectionState = t.ConnectionState
	s.LastActivityTime = nil
	if !t.LastActivityTime.IsZero() {
		// metav1.Time keeps whole seconds: round now so a round trip through
		// the apiserver does not look like a change.
		at := metav1.NewTime(t.LastActivityTime.Time).Rfc3339Copy()
		s.LastActivityTime = &at
	}
	s.Reported = mirrorReported(s.Reported, t.Properties.Reported.Values)
}

// mirrorReported returns the status form of the reported values, keeping old
// when it holds the same JSON.
func mirrorReported(old *apiextensionsv1.JSON, values map[string]any) *apiextensionsv1.JSON {
	if len(values) == 0 {
		return nil
	}
	if old != nil {
		if decoded, err := decodeObject(old.Raw); err == nil && twin.EqualValues(decoded, values) {
			return old
		}
	}
	raw, err := json.Marshal(values)
	if err != nil {
		return old
	}
	return &apiextensionsv1.JSON{Raw: raw}
}

// decodeObject decodes a JSON object with numbers as json.Number.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// metav1Condition builds a condition for the object's current generation.
func metav1Condition(dt *iotv1alpha1.DeviceTwin, typ string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: dt.Generation}
}

// setFailed records a failure in Synced and Ready.
func setFailed(dt *iotv1alpha1.DeviceTwin, reason, message string) {
	dt.Status.ObservedGeneration = dt.Generation
	meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionSynced, metav1.ConditionFalse, reason, message))
	meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message))
}

// isSynced reports whether the current generation was already applied, so
// that a write needed now corrects drift rather than applying a new spec.
func isSynced(dt *iotv1alpha1.DeviceTwin) bool {
	c := meta.FindStatusCondition(dt.Status.Conditions, iotv1alpha1.ConditionSynced)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == dt.Generation
}

// setSynced records that the spec at the current generation is applied.
func setSynced(dt *iotv1alpha1.DeviceTwin) {
	dt.Status.ObservedGeneration = dt.Generation
	meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionSynced,
		metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded, "tags and desired properties are applied to the hub's twin"))
}

// setConverged compares every managed desired leaf with the device's
// reported value at the same path, as JSON.
func setConverged(dt *iotv1alpha1.DeviceTwin, t *twin.Twin) {
	_, desired, err := specSections(dt)
	if err != nil {
		return
	}
	missing := unreportedPaths("", desired, t.Properties.Reported.Values)
	if len(missing) == 0 {
		meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionConverged,
			metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded, "the device reported every desired value"))
		return
	}
	sort.Strings(missing)
	msg := fmt.Sprintf("the device has not reported %d desired value(s): %s", len(missing), strings.Join(firstN(missing, 5), ", "))
	meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionConverged,
		metav1.ConditionFalse, iotv1alpha1.ReasonAwaitingDevice, msg))
}

// unreportedPaths lists the leaf paths of desired whose reported value
// differs. An empty object in desired only asks for an object in reported.
func unreportedPaths(prefix string, desired, reported map[string]any) []string {
	var missing []string
	for k, want := range desired {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		have, found := reported[k]
		if obj, ok := want.(map[string]any); ok {
			haveObj, isObj := have.(map[string]any)
			switch {
			case !isObj:
				missing = append(missing, path)
			case len(obj) > 0:
				missing = append(missing, unreportedPaths(path, obj, haveObj)...)
			}
			continue
		}
		if !found || !twin.EqualValues(want, have) {
			missing = append(missing, path)
		}
	}
	return missing
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}

// summarise derives Ready from Synced and Converged.
func summarise(dt *iotv1alpha1.DeviceTwin) {
	for _, typ := range []string{iotv1alpha1.ConditionSynced, iotv1alpha1.ConditionConverged} {
		c := meta.FindStatusCondition(dt.Status.Conditions, typ)
		if c != nil && c.Status != metav1.ConditionTrue {
			meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message))
			return
		}
	}
	meta.SetStatusCondition(&dt.Status.Conditions, metav1Condition(dt, iotv1alpha1.ConditionReady,
		metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded, "the twin is applied and the device reported every desired value"))
}
