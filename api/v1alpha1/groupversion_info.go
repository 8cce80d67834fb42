// Package v1alpha1 contains the twinsync API: DeviceTwin, which declares an
// Azure IoT Hub device twin's tags and desired properties, and TwinQuery, which
// caches the result of an IoT Hub query.
//
// +kubebuilder:object:generate=true
// +groupName=iot.twinsync.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the twinsync API.
	GroupVersion = schema.GroupVersion{Group: "iot.twinsync.io", Version: "v1alpha1"}

	// SchemeBuilder registers the twinsync types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the twinsync types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
