package sas

import (
	"encoding/base64"
	"errors"
)

// Key is a decoded shared access key. Its String and GoString forms are
// redacted so a key never reaches a log by accident.
type Key []byte

// ErrInvalidKey reports a shared access key that is empty or not base64.
var ErrInvalidKey = errors.New("shared access key is empty or not valid base64")

// ParseKey decodes a base64 shared access key as found in connection strings
// and device registrations. Padding is optional. The error never contains the
// input.
func ParseKey(b64 string) (Key, error) {
	if b64 == "" {
		return nil, ErrInvalidKey
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Some tools strip the padding; accept that rather than fail.
		if raw, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return nil, ErrInvalidKey
		}
	}
	if len(raw) == 0 {
		return nil, ErrInvalidKey
	}
	return Key(raw), nil
}

// Base64 returns the key in the padded standard base64 form used on the wire.
// It is a secret: never log it.
func (k Key) Base64() string { return base64.StdEncoding.EncodeToString(k) }

// String returns a redacted placeholder.
func (k Key) String() string { return redacted }

// GoString returns a redacted placeholder, so %#v does not print the key.
func (k Key) GoString() string { return redacted }

const redacted = "<redacted>"
