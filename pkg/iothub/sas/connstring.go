package sas

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Kind tells which identity a connection string speaks for.
type Kind int

const (
	// KindService is a hub policy: HostName, SharedAccessKeyName, SharedAccessKey.
	KindService Kind = iota + 1
	// KindDevice is a device identity: HostName, DeviceId and a credential.
	KindDevice
	// KindModule is a module identity: a device string plus ModuleId.
	KindModule
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindService:
		return "service"
	case KindDevice:
		return "device"
	case KindModule:
		return "module"
	default:
		return "unknown"
	}
}

// ErrConnectionString is wrapped by every connection string parse error.
var ErrConnectionString = errors.New("invalid connection string")

// Connection string key names, as spelled by the official SDKs.
const (
	keyHostName              = "HostName"
	keyGatewayHostName       = "GatewayHostName"
	keySharedAccessKeyName   = "SharedAccessKeyName"
	keySharedAccessKey       = "SharedAccessKey"
	keySharedAccessSignature = "SharedAccessSignature"
	keyDeviceID              = "DeviceId"
	keyModuleID              = "ModuleId"
	keyX509                  = "x509"
)

// ConnectionString is a parsed IoT Hub connection string. Build one with
// [ParseConnectionString] or as a literal (then render it with Secret).
type ConnectionString struct {
	// HostName is the hub host, optionally with a port (localhost:8443). It is
	// the host used in token resources and MQTT user names.
	HostName string
	// GatewayHostName, if set, is the host[:port] to dial instead of HostName.
	GatewayHostName string
	// SharedAccessKeyName is the policy name of a service string; device
	// strings may carry one to sign with a hub policy key.
	SharedAccessKeyName string
	// SharedAccessKey is the decoded key. It prints redacted.
	SharedAccessKey Key
	// SharedAccessSignature is a ready-made token used instead of a key. It
	// is a secret: never log it.
	SharedAccessSignature string
	// DeviceID is set for device and module strings.
	DeviceID string
	// ModuleID is set for module strings.
	ModuleID string
	// X509 is set by x509=true: the device authenticates with a certificate.
	X509 bool
}

// ParseConnectionString parses and validates a service, device or module
// connection string (see the package documentation for the rules). Errors
// wrap [ErrConnectionString], name the part that is wrong and never contain
// secrets.
func ParseConnectionString(s string) (*ConnectionString, error) {
	fields, err := splitPairs(s)
	if err != nil {
		return nil, err
	}
	cs := &ConnectionString{
		HostName:              fields[keyHostName],
		GatewayHostName:       fields[keyGatewayHostName],
		SharedAccessKeyName:   fields[keySharedAccessKeyName],
		SharedAccessSignature: fields[keySharedAccessSignature],
		DeviceID:              fields[keyDeviceID],
		ModuleID:              fields[keyModuleID],
	}
	if v, ok := fields[keyX509]; ok {
		if cs.X509, err = strconv.ParseBool(v); err != nil {
			return nil, csError("x509 must be true or false")
		}
	}
	if v, ok := fields[keySharedAccessKey]; ok {
		if cs.SharedAccessKey, err = ParseKey(v); err != nil {
			return nil, csError("SharedAccessKey is not valid base64")
		}
	}
	if err := cs.Validate(); err != nil {
		return nil, err
	}
	return cs, nil
}

// splitPairs splits s into its Key=Value pairs. A later duplicate wins, as in
// the Node SDK.
func splitPairs(s string) (map[string]string, error) {
	fields := make(map[string]string)
	for i, seg := range strings.Split(s, ";") {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		name, value, ok := strings.Cut(seg, "=")
		if !ok {
			// Only the position is reported: the segment may be a key.
			return nil, csError(fmt.Sprintf("segment %d is not Key=Value", i+1))
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, csError(fmt.Sprintf("segment %d has an empty name", i+1))
		}
		if value == "" {
			continue
		}
		fields[name] = value
	}
	return fields, nil
}

// Validate checks that the string is a complete service, device or module
// string. ParseConnectionString calls it; call it on literals built by hand.
func (c *ConnectionString) Validate() error {
	if c.HostName == "" {
		return csError("HostName is missing")
	}
	if err := validateHostPort(c.HostName); err != nil {
		return csError("HostName " + err.Error())
	}
	if c.GatewayHostName != "" {
		if err := validateHostPort(c.GatewayHostName); err != nil {
			return csError("GatewayHostName " + err.Error())
		}
	}
	if c.ModuleID != "" && c.DeviceID == "" {
		return csError("ModuleId needs a DeviceId")
	}
	if c.DeviceID == "" {
		return c.validateService()
	}
	return c.validateDevice()
}

func (c *ConnectionString) validateService() error {
	if c.SharedAccessKeyName == "" {
		return csError("SharedAccessKeyName is missing (a service string needs it; a device string needs DeviceId)")
	}
	if len(c.SharedAccessKey) == 0 && c.SharedAccessSignature == "" {
		return csError("SharedAccessKey is missing")
	}
	if c.X509 {
		return csError("x509 is only valid in a device or module string")
	}
	return nil
}

func (c *ConnectionString) validateDevice() error {
	credentials := 0
	if len(c.SharedAccessKey) > 0 {
		credentials++
	}
	if c.SharedAccessSignature != "" {
		credentials++
	}
	if c.X509 {
		credentials++
	}
	switch credentials {
	case 0:
		return csError("one of SharedAccessKey, SharedAccessSignature or x509=true is required")
	case 1:
		return nil
	default:
		return csError("only one of SharedAccessKey, SharedAccessSignature and x509=true may be given")
	}
}

// validateHostPort accepts host or host:port (IPv6 literals in brackets).
func validateHostPort(hp string) error {
	if strings.ContainsAny(hp, "/?#@ \t") {
		return errors.New("must be host or host:port without scheme or path")
	}
	host := hp
	if strings.Contains(hp, ":") {
		h, port, err := net.SplitHostPort(hp)
		if err != nil {
			return errors.New("must be host or host:port")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("has an invalid port")
		}
		host = h
	}
	if host == "" {
		return errors.New("has an empty host")
	}
	return nil
}

func csError(detail string) error {
	return fmt.Errorf("%w: %s", ErrConnectionString, detail)
}

// Kind returns the kind of identity the string speaks for.
func (c *ConnectionString) Kind() Kind {
	switch {
	case c.ModuleID != "":
		return KindModule
	case c.DeviceID != "":
		return KindDevice
	default:
		return KindService
	}
}

// DialHost returns the host[:port] to connect to: GatewayHostName when set,
// else HostName. Callers add their protocol's default port when none is given.
func (c *ConnectionString) DialHost() string {
	if c.GatewayHostName != "" {
		return c.GatewayHostName
	}
	return c.HostName
}

// Resource returns the unencoded resource URI a token for this identity is
// scoped to: the host for a service string, host/devices/{id} for a device
// and host/devices/{id}/modules/{mid} for a module.
func (c *ConnectionString) Resource() string {
	return Resource(c.HostName, c.DeviceID, c.ModuleID)
}

// Resource builds an unencoded resource URI: host, host/devices/{deviceID} or
// host/devices/{deviceID}/modules/{moduleID}. Empty ids are left out.
func Resource(host, deviceID, moduleID string) string {
	switch {
	case deviceID == "":
		return host
	case moduleID == "":
		return host + "/devices/" + deviceID
	default:
		return host + "/devices/" + deviceID + "/modules/" + moduleID
	}
}

// String renders the connection string with the key and token redacted; it
// is safe to log.
func (c *ConnectionString) String() string { return c.render(false) }

// GoString is the redacted form too, so %#v does not leak secrets.
func (c *ConnectionString) GoString() string { return c.render(false) }

// Secret renders the full connection string including its key or token, for
// writing into a Kubernetes Secret or handing to an SDK. Never log it.
func (c *ConnectionString) Secret() string { return c.render(true) }

func (c *ConnectionString) render(reveal bool) string {
	var b strings.Builder
	add := func(name, value string) {
		if value == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
	}
	secret := func(v string) string {
		if v == "" || reveal {
			return v
		}
		return redacted
	}
	add(keyHostName, c.HostName)
	add(keyDeviceID, c.DeviceID)
	add(keyModuleID, c.ModuleID)
	add(keySharedAccessKeyName, c.SharedAccessKeyName)
	if len(c.SharedAccessKey) > 0 {
		add(keySharedAccessKey, secret(c.SharedAccessKey.Base64()))
	}
	add(keySharedAccessSignature, secret(c.SharedAccessSignature))
	if c.X509 {
		add(keyX509, "true")
	}
	add(keyGatewayHostName, c.GatewayHostName)
	return b.String()
}
