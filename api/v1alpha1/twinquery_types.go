package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a TwinQuery, besides Ready.
const (
	// ConditionStalled is True when the query cannot succeed without a change
	// to the object or its Secret (an invalid query, refused credentials).
	ConditionStalled = "Stalled"
	// ConditionThrottled is True while the hub's query budget delays
	// refreshes beyond spec.refreshInterval.
	ConditionThrottled = "Throttled"
)

// Condition reasons specific to TwinQuery.
const (
	// ReasonInvalidQuery means spec.query does not parse; the message gives
	// the position.
	ReasonInvalidQuery = "InvalidQuery"
	// ReasonQueryFailed means the hub refused or failed the query.
	ReasonQueryFailed = "QueryFailed"
	// ReasonBudgetShort means refreshes are spread out to stay within the
	// hub's query budget.
	ReasonBudgetShort = "BudgetShort"
)

// TwinQuerySpec is an IoT Hub query run on a schedule.
type TwinQuerySpec struct {
	// Query is an IoT Hub query, for example
	// SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'.
	// At most 8192 characters, as on IoT Hub.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Query string `json:"query"`

	// HubSecretRef names a Secret holding the hub's service connection string.
	// When empty the manager's default hub is used.
	// +optional
	HubSecretRef *HubSecretReference `json:"hubSecretRef,omitempty"`

	// RefreshInterval is how often the query runs. At least 3s. Refreshes are
	// spread further apart when the hub's query budget is short.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('3s')",message="refreshInterval must be at least 3s"
	RefreshInterval metav1.Duration `json:"refreshInterval,omitempty"`

	// MaxResults caps the rows kept in status. The count still reports every
	// row the hub returned.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxResults int32 `json:"maxResults,omitempty"`
}

// TwinQueryStatus holds the cached result of the query.
type TwinQueryStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Stalled, Throttled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Count is the number of rows the hub returned, including rows cut by
	// maxResults or the size budget.
	// +optional
	Count int64 `json:"count,omitempty"`

	// DeviceIDs lists the matching twins of a SELECT * query, in the hub's
	// order; a module twin is written deviceId/moduleId.
	// +optional
	// +listType=atomic
	DeviceIDs []string `json:"deviceIds,omitempty"`

	// Rows holds the rows of a projection or aggregate query.
	// +optional
	// +listType=atomic
	Rows []apiextensionsv1.JSON `json:"rows,omitempty"`

	// Truncated is true when deviceIds or rows were cut to maxResults or to
	// the status size budget.
	// +optional
	Truncated bool `json:"truncated,omitempty"`

	// LastRefreshTime is when the result last changed, or was confirmed
	// unchanged after a long quiet period; it does not move on every refresh.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// LastHandledReconcileAt is the last value of the
	// iot.twinsync.io/reconcile-requested-at annotation that was handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// TwinQuery runs an IoT Hub query on a schedule and caches the result in its
// status.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tq,categories=iot
// +kubebuilder:printcolumn:name="Count",type=integer,JSONPath=`.status.count`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last Refresh",type=date,JSONPath=`.status.lastRefreshTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TwinQuery struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the query and its schedule.
	// +required
	Spec TwinQuerySpec `json:"spec"`

	// Status holds the cached result.
	// +optional
	Status TwinQueryStatus `json:"status,omitempty"`
}

// TwinQueryList is a list of TwinQuery.
// +kubebuilder:object:root=true
type TwinQueryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TwinQuery `json:"items"`
}
