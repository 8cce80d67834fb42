package controllers

import (
	"context"
	"errors"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/twin"
)

// +kubebuilder:webhook:path=/validate-iot-twinsync-io-v1alpha1-devicetwin,mutating=false,failurePolicy=fail,sideEffects=None,groups=iot.twinsync.io,resources=devicetwins,verbs=create;update,versions=v1alpha1,name=vdevicetwin.iot.twinsync.io,admissionReviewVersions=v1

// DeviceTwinValidator refuses DeviceTwins whose tags or desired properties
// break IoT Hub's twin limits (key characters and length, depth, value
// types, string length, integer range, section size), with pkg/twin's
// validator: the same code the embedded hub answers with, so what passes
// admission passes the hub. Each refusal names the field path and the limit.
// CEL in the CRD keeps what it can express cheaply (ids, enums,
// immutability); these limits need a recursive walk and byte counting that
// CEL's cost budget does not allow on free-form JSON.
type DeviceTwinValidator struct{}

var _ admission.Validator[*iotv1alpha1.DeviceTwin] = DeviceTwinValidator{}

// SetupDeviceTwinWebhookWithManager registers the validating webhook.
func SetupDeviceTwinWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &iotv1alpha1.DeviceTwin{}).
		WithValidator(DeviceTwinValidator{}).
		Complete()
}

// ValidateCreate checks a new DeviceTwin.
func (DeviceTwinValidator) ValidateCreate(_ context.Context, dt *iotv1alpha1.DeviceTwin) (admission.Warnings, error) {
	return nil, validateDeviceTwin(dt)
}

// ValidateUpdate checks a changed DeviceTwin. Objects being deleted are let
// through so that a finalizer can always be removed.
func (DeviceTwinValidator) ValidateUpdate(_ context.Context, _, dt *iotv1alpha1.DeviceTwin) (admission.Warnings, error) {
	if !dt.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return nil, validateDeviceTwin(dt)
}

// ValidateDelete allows every deletion.
func (DeviceTwinValidator) ValidateDelete(context.Context, *iotv1alpha1.DeviceTwin) (admission.Warnings, error) {
	return nil, nil
}

// validateDeviceTwin checks both sections and gathers the refusals.
func validateDeviceTwin(dt *iotv1alpha1.DeviceTwin) error {
	specPath := field.NewPath("spec")
	var errs field.ErrorList
	errs = append(errs, validateSection(specPath.Child("tags"), twin.SectionTags, dt.Spec.Tags)...)
	errs = append(errs, validateSection(specPath.Child("desired"), twin.SectionDesired, dt.Spec.Desired)...)
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(iotv1alpha1.GroupVersion.WithKind("DeviceTwin").GroupKind(), dt.Name, errs)
}

// validateSection checks one section against its IoT Hub limits.
func validateSection(path *field.Path, section twin.Section, doc *apiextensionsv1.JSON) field.ErrorList {
	if doc == nil {
		return nil
	}
	err := twin.ValidateSectionJSON(section, doc.Raw, twin.Options{})
	if err == nil {
		return nil
	}
	var te *twin.Error
	if !errors.As(err, &te) {
		return field.ErrorList{field.Invalid(path, "<object>", err.Error())}
	}
	// The twin error's path starts at the twin root ("tags.a.b" or
	// "properties.desired.a"); map it onto the spec field.
	p := path
	if rest, ok := strings.CutPrefix(te.Path, section.Path()); ok {
		for _, key := range strings.Split(strings.TrimPrefix(rest, "."), ".") {
			if key != "" {
				p = p.Child(key)
			}
		}
	}
	// The hub's own wording names the limit (and, for sizes, the number of
	// bytes allowed); the value is not echoed back, it may be large.
	return field.ErrorList{field.Invalid(p, "<value>", te.Message)}
}
