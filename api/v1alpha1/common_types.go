package v1alpha1

// HubSecretReference points at a Secret in the object's namespace that holds
// an IoT Hub service connection string
// (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...).
type HubSecretReference struct {
	// Name of the Secret, in the same namespace as the referring object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the Secret whose value is the service connection string.
	// +optional
	// +kubebuilder:default=connectionString
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key,omitempty"`

	// CAKey is the key in the Secret holding a PEM CA bundle to trust for the
	// hub's TLS certificate, for a private hub such as the embedded one. When
	// empty the system roots are used.
	// +optional
	CAKey string `json:"caKey,omitempty"`
}

// Condition types shared by the twinsync kinds.
const (
	// ConditionReady summarises the object's state: True when the object is
	// fully reconciled and healthy.
	ConditionReady = "Ready"
)

// Condition reasons shared by the twinsync kinds.
const (
	// ReasonSucceeded means the last reconcile did everything it had to.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing means work is under way.
	ReasonProgressing = "Progressing"
	// ReasonSecretNotFound means the hub credentials Secret does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInvalidSecret means the hub credentials Secret lacks the key or
	// holds a malformed connection string.
	ReasonInvalidSecret = "InvalidSecret"
	// ReasonHubUnreachable means the hub could not be reached.
	ReasonHubUnreachable = "HubUnreachable"
	// ReasonUnauthorized means the hub refused the credentials.
	ReasonUnauthorized = "Unauthorized"
	// ReasonThrottled means the hub's rate limits delayed the work.
	ReasonThrottled = "Throttled"
	// ReasonPaused means reconciliation is paused by annotation.
	ReasonPaused = "Paused"
)

// Annotations that steer reconciliation.
const (
	// PausedAnnotation, set to "true", stops reconciliation of the object
	// until it is removed. Deletion is still handled.
	PausedAnnotation = "iot.twinsync.io/paused"

	// ReconcileRequestAnnotation asks for an immediate reconcile whenever its
	// value changes (any string, conventionally a timestamp). The value is
	// echoed in status.lastHandledReconcileAt once handled.
	ReconcileRequestAnnotation = "iot.twinsync.io/reconcile-requested-at"
)
