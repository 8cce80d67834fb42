package twin

import (
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Twin is a device or module twin as IoT Hub serialises it. Marshal it with
// encoding/json to get the service (REST) form; DeviceView gives the MQTT
// GET body.
//
// All root fields except Tags and Properties.Desired are read-only for
// service writes; the hub that owns the twin sets them directly (connection
// state, activity time, identity status and etag). Tags and both property
// sections change only through the write methods, which keep $metadata,
// $version, Version and ETag consistent.
type Twin struct {
	DeviceID                  string          `json:"deviceId"`
	ModuleID                  string          `json:"moduleId,omitempty"`
	ETag                      string          `json:"etag"`
	DeviceETag                string          `json:"deviceEtag,omitempty"`
	Status                    string          `json:"status,omitempty"`
	StatusReason              string          `json:"statusReason,omitempty"`
	StatusUpdateTime          Time            `json:"statusUpdateTime"`
	ConnectionState           string          `json:"connectionState,omitempty"`
	LastActivityTime          Time            `json:"lastActivityTime"`
	CloudToDeviceMessageCount int64           `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string          `json:"authenticationType,omitempty"`
	X509Thumbprint            *X509Thumbprint `json:"x509Thumbprint,omitempty"`
	ModelID                   string          `json:"modelId"`
	Version                   int64           `json:"version"`
	// Tags holds the tags section: plain JSON values (see the package doc for
	// the value types), no $metadata, no $version. Omitted when empty.
	Tags           map[string]any                 `json:"tags,omitempty"`
	Properties     Properties                     `json:"properties"`
	Capabilities   *Capabilities                  `json:"capabilities,omitempty"`
	DeviceScope    string                         `json:"deviceScope,omitempty"`
	ParentScopes   []string                       `json:"parentScopes,omitempty"`
	Configurations map[string]ConfigurationStatus `json:"configurations,omitempty"`
}

// Properties holds the two property sections of a twin.
type Properties struct {
	Desired  Collection `json:"desired"`
	Reported Collection `json:"reported"`
}

// X509Thumbprint holds the certificate thumbprints of an X.509 identity.
// Both are null in the hub's JSON when unset.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities are the identity's capabilities.
type Capabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// ConfigurationStatus is the state of one automatic configuration on a twin.
type ConfigurationStatus struct {
	// Status is "targeted" or "applied".
	Status string `json:"status"`
}

// Connection states as IoT Hub writes them (capitalised).
const (
	Connected    = "Connected"
	Disconnected = "Disconnected"
)

// New returns the twin of a freshly created device (moduleID "") or module,
// exactly as IoT Hub shows it: version 2, etag counter 1 ("AAAAAAAAAAE="),
// desired and reported both at $version 1 with a root $metadata whose
// $lastUpdated is now, status "enabled", "Disconnected", authentication
// "sas", modelId "", no tags.
func New(deviceID, moduleID string, now time.Time) *Twin {
	created := NewTime(now)
	t := &Twin{
		DeviceID:           deviceID,
		ModuleID:           moduleID,
		ETag:               ETagFromCounter(1),
		Status:             "enabled",
		ConnectionState:    Disconnected,
		AuthenticationType: "sas",
		X509Thumbprint:     &X509Thumbprint{},
		Version:            2,
		Properties: Properties{
			Desired:  newCollection(created),
			Reported: newCollection(created),
		},
	}
	if moduleID == "" {
		t.Capabilities = &Capabilities{}
	}
	return t
}

// newCollection returns an empty property section at $version 1.
func newCollection(now Time) Collection {
	return Collection{Metadata: Metadata{LastUpdated: now}, Version: 1}
}

// ETagFromCounter returns the twin etag for an etag counter: the standard
// base64 of the counter as 8 big-endian bytes (1 → "AAAAAAAAAAE=").
func ETagFromCounter(counter uint64) string {
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], counter)
	return base64.StdEncoding.EncodeToString(raw[:])
}

// CounterFromETag decodes a twin etag made by ETagFromCounter. ok is false
// for anything else (an etag from another source, surrounding quotes).
func CounterFromETag(etag string) (counter uint64, ok bool) {
	var raw [9]byte // one spare byte so that a longer value is noticed
	if len(etag) != base64.StdEncoding.EncodedLen(8) {
		return 0, false
	}
	n, err := base64.StdEncoding.Decode(raw[:], []byte(etag))
	if err != nil || n != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(raw[:8]), true
}

// bumpETag advances the etag counter by one. An etag that is not a counter
// (imported from elsewhere) restarts the count at 1 so it still changes.
func (t *Twin) bumpETag() {
	counter, _ := CounterFromETag(t.ETag)
	t.ETag = ETagFromCounter(counter + 1)
}
