package hub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// zeroTime is how IoT Hub renders a time that was never set.
const zeroTime = "0001-01-01T00:00:00Z"

// Device is a device or module identity as the registry REST API returns it
// (spec §2.5). Module identities carry ModuleID and ManagedBy.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	ModuleID                   string         `json:"moduleId,omitempty"`
	ManagedBy                  string         `json:"managedBy,omitempty"`
	GenerationID               string         `json:"generationId"`
	Etag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status,omitempty"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string         `json:"statusUpdatedTime,omitempty"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int64          `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               *Capabilities  `json:"capabilities,omitempty"`
	DeviceScope                string         `json:"deviceScope,omitempty"`
	ParentScopes               []string       `json:"parentScopes,omitempty"`
}

// Authentication is a device's credential description.
type Authentication struct {
	SymmetricKey   SymmetricKey   `json:"symmetricKey"`
	X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
	Type           string         `json:"type"`
}

// SymmetricKey holds a device's two SAS keys (base64). They are secrets.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint holds certificate thumbprints for self-signed devices.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities are the device's capability flags.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Connection states as IoT Hub spells them (capitalised).
const (
	stateConnected    = "Connected"
	stateDisconnected = "Disconnected"
)

// Authentication types.
const (
	authSAS  = "sas"
	authNone = "none"
)

// normalizeNewDevice fills what the hub owns on a created identity: a
// generation id, generated keys when empty, defaults for status and times.
// Client-supplied read-only fields are overwritten.
func normalizeNewDevice(d *Device, now time.Time) error {
	d.GenerationID = newGenerationID()
	d.ConnectionState = stateDisconnected
	d.ConnectionStateUpdatedTime = zeroTime
	d.LastActivityTime = zeroTime
	d.CloudToDeviceMessageCount = 0
	if d.Status == "" {
		d.Status = "enabled"
	}
	d.StatusUpdatedTime = zeroTime
	if d.Capabilities == nil && d.ModuleID == "" {
		d.Capabilities = &Capabilities{}
	}
	return normalizeAuth(&d.Authentication)
}

// normalizeAuth validates supplied keys and generates missing ones.
func normalizeAuth(a *Authentication) error {
	if a.Type == "" {
		a.Type = authSAS
	}
	if a.Type != authSAS {
		return nil
	}
	for _, k := range []*string{&a.SymmetricKey.PrimaryKey, &a.SymmetricKey.SecondaryKey} {
		if *k == "" {
			*k = NewKey()
			continue
		}
		if err := validateKey(*k); err != nil {
			return err
		}
	}
	return nil
}

// validateID checks a device or module id against IoT Hub's rules: at most
// 128 ASCII letters, digits and - . + % _ # * ? ! ( ) , = @ $ ' : ;
func validateID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("%s id must not be empty", kind)
	}
	if len(id) > 128 {
		return fmt.Errorf("%s id is longer than 128 characters", kind)
	}
	for _, r := range id {
		ok := r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("-.+%_#*?!(),=@$':;", r))
		if !ok {
			return fmt.Errorf("%s id contains the character %q, which IoT Hub does not allow", kind, r)
		}
	}
	return nil
}

// newGenerationID returns an 18-digit decimal string like IoT Hub's.
func newGenerationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := binary.BigEndian.Uint64(b[:])%900000000000000000 + 100000000000000000
	return strconv.FormatUint(n, 10)
}

// deviceEtag renders an identity etag: base64 of a decimal counter, the form
// IoT Hub uses for identities.
func deviceEtag(counter uint64) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatUint(counter, 10)))
}

// formatTime renders t as IoT Hub does: UTC with 7 fractional digits.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}
