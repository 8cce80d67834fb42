// Package v1alpha1 contains the twinsync API: DeviceTwin, which declares an
// Azure IoT Hub device twin's tags and desired properties, and TwinQuery, which
// caches the result of an IoT Hub query.
//
// +kubebuilder:object:generate=true
// +groupName=iot.twinsync.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the twinsync API.
	GroupVersion = schema.GroupVersion{Group: "iot.twinsync.io", Version: "v1alpha1"}

	// SchemeBuilder registers the twinsync types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the twinsync types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds of this group version. The API package
// depends on apimachinery and apiextensions' JSON type only, so that other
// projects can import it cheaply.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&DeviceTwin{}, &DeviceTwinList{},
		&TwinQuery{}, &TwinQueryList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
