package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ownership says which keys of the hub's twin a DeviceTwin manages.
// +kubebuilder:validation:Enum=Shared;Exclusive
type Ownership string

const (
	// OwnershipShared manages only the keys this object has set: keys written
	// by other services or users are left alone, and a key removed from the
	// spec is removed from the hub.
	OwnershipShared Ownership = "Shared"
	// OwnershipExclusive also removes every tag and desired key that the spec
	// does not declare.
	OwnershipExclusive Ownership = "Exclusive"
)

// DeletionPolicy says what happens on the hub when a DeviceTwin is deleted.
// +kubebuilder:validation:Enum=Retain;ClearManaged;DeleteDevice
type DeletionPolicy string

const (
	// DeletionPolicyRetain leaves the device and its twin as they are.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyClearManaged removes the tags and desired properties this
	// object manages and keeps the device.
	DeletionPolicyClearManaged DeletionPolicy = "ClearManaged"
	// DeletionPolicyDeleteDevice deletes the device identity, and with it the
	// twin.
	DeletionPolicyDeleteDevice DeletionPolicy = "DeleteDevice"
)

// Condition types of a DeviceTwin, besides Ready.
const (
	// ConditionSynced is True when the spec at observedGeneration is applied
	// to the hub's twin.
	ConditionSynced = "Synced"
	// ConditionConverged is True when the device has reported every managed
	// desired value (compared as JSON).
	ConditionConverged = "Converged"
)

// Condition reasons specific to DeviceTwin.
const (
	// ReasonDeviceNotFound means the device identity does not exist on the hub
	// and provisioning is not asked for.
	ReasonDeviceNotFound = "DeviceNotFound"
	// ReasonConflict means concurrent writers kept changing the twin and the
	// etag retries ran out; the apply is retried with backoff.
	ReasonConflict = "Conflict"
	// ReasonInvalidTwin means the hub refused the tags or desired properties.
	ReasonInvalidTwin = "InvalidTwin"
	// ReasonAwaitingDevice means the device has not yet reported every
	// desired value.
	ReasonAwaitingDevice = "AwaitingDevice"
)

// DeviceTwinSpec declares the tags and desired properties of one device (or
// module) twin on an IoT Hub.
// +kubebuilder:validation:XValidation:rule="has(self.deviceId) == has(oldSelf.deviceId) && (!has(self.deviceId) || self.deviceId == oldSelf.deviceId)",message="deviceId is immutable: it cannot be added, changed or removed after creation"
// +kubebuilder:validation:XValidation:rule="has(self.moduleId) == has(oldSelf.moduleId) && (!has(self.moduleId) || self.moduleId == oldSelf.moduleId)",message="moduleId is immutable: it cannot be added, changed or removed after creation"
type DeviceTwinSpec struct {
	// DeviceID is the IoT Hub device id. It defaults to the object's name and
	// cannot be added, changed or removed after creation. IoT Hub ids are case-sensitive, at most 128
	// characters of ASCII letters, digits and - . + % _ # * ? ! ( ) , : = @ $ '.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9\-.+%_#*?!(),:=@$']+$`
	DeviceID string `json:"deviceId,omitempty"`

	// ModuleID selects a module twin of the device instead of the device twin.
	// Same character rules as deviceId. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9\-.+%_#*?!(),:=@$']+$`
	ModuleID string `json:"moduleId,omitempty"`

	// HubSecretRef names a Secret holding the hub's service connection string.
	// When empty the manager's default hub is used.
	// +optional
	HubSecretRef *HubSecretReference `json:"hubSecretRef,omitempty"`

	// Tags is the twin's tags object to manage: free-form JSON, validated
	// against IoT Hub's limits (8 KB, depth 10, keys without '.', '$' or
	// spaces, no null values).
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Tags *apiextensionsv1.JSON `json:"tags,omitempty"`

	// Desired is the twin's properties.desired object to manage: free-form
	// JSON, validated against IoT Hub's limits (32 KB, depth 10, keys without
	// '.', '$' or spaces, no null values).
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Desired *apiextensionsv1.JSON `json:"desired,omitempty"`

	// Ownership says which keys are managed: Shared (default) manages only the
	// keys this object sets; Exclusive also removes keys nobody declared.
	// +optional
	// +kubebuilder:default=Shared
	Ownership Ownership `json:"ownership,omitempty"`

	// DeletionPolicy says what happens on the hub when this object is
	// deleted: Retain (default), ClearManaged or DeleteDevice.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Provisioning asks the operator to create the device identity when it is
	// absent and to publish its device connection string in a Secret.
	// +optional
	Provisioning *Provisioning `json:"provisioning,omitempty"`
}

// Provisioning configures creation of the device identity.
type Provisioning struct {
	// CreateIdentity creates the device (and module) identity on the hub when
	// it does not exist.
	// +optional
	CreateIdentity bool `json:"createIdentity,omitempty"`

	// SecretName is the Secret, in the object's namespace and owned by it,
	// that receives the device connection string (key connectionString) and,
	// for a private hub, its CA bundle (key ca.crt).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`
}

// DeviceTwinStatus is what the operator observed on the hub.
type DeviceTwinStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (summary), Synced (spec applied), Converged (device
	// reported every desired value).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// DeviceID is the device id in use (spec.deviceId or the object's name).
	// +optional
	DeviceID string `json:"deviceId,omitempty"`

	// ETag is the twin's etag as last read or written.
	// +optional
	ETag string `json:"etag,omitempty"`

	// Version is the twin's version.
	// +optional
	Version int64 `json:"version,omitempty"`

	// DesiredVersion is properties.desired.$version.
	// +optional
	DesiredVersion int64 `json:"desiredVersion,omitempty"`

	// ReportedVersion is properties.reported.$version.
	// +optional
	ReportedVersion int64 `json:"reportedVersion,omitempty"`

	// Reported mirrors the twin's properties.reported, without $metadata and
	// $version.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Reported *apiextensionsv1.JSON `json:"reported,omitempty"`

	// ConnectionState is the device's connection state: Connected or
	// Disconnected.
	// +optional
	ConnectionState string `json:"connectionState,omitempty"`

	// LastActivityTime is the last time the device talked to the hub.
	// +optional
	LastActivityTime *metav1.Time `json:"lastActivityTime,omitempty"`

	// ManagedTags lists the tag key paths (dot-separated) this object wrote,
	// so that keys later removed from the spec are removed from the hub.
	// +optional
	// +listType=set
	ManagedTags []string `json:"managedTags,omitempty"`

	// ManagedDesired lists the desired property key paths (dot-separated)
	// this object wrote.
	// +optional
	// +listType=set
	ManagedDesired []string `json:"managedDesired,omitempty"`

	// LastHandledReconcileAt is the last value of the
	// iot.twinsync.io/reconcile-requested-at annotation that was handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// DeviceTwin keeps the tags and desired properties of an Azure IoT Hub device
// twin, and mirrors what the device reports.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dt,categories=iot
// +kubebuilder:printcolumn:name="Device",type=string,JSONPath=`.status.deviceId`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Converged",type=string,JSONPath=`.status.conditions[?(@.type=="Converged")].status`
// +kubebuilder:printcolumn:name="Connection",type=string,JSONPath=`.status.connectionState`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeviceTwin struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec declares the twin's managed tags and desired properties.
	// +required
	Spec DeviceTwinSpec `json:"spec"`

	// Status is what the operator observed on the hub.
	// +optional
	Status DeviceTwinStatus `json:"status,omitempty"`
}

// DeviceTwinList is a list of DeviceTwin.
// +kubebuilder:object:root=true
type DeviceTwinList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeviceTwin `json:"items"`
}

// EffectiveDeviceID returns spec.deviceId, or the object's name when unset.
func (dt *DeviceTwin) EffectiveDeviceID() string {
	if dt.Spec.DeviceID != "" {
		return dt.Spec.DeviceID
	}
	return dt.Name
}
