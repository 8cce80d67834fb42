package twin

import (
	"fmt"
	"net/http"
)

// IoT Hub error names used by this package (the `iothub-errorcode` header
// and the "ErrorCode:<Name>;" prefix of error bodies).
const (
	// CodeArgumentInvalid is IoT Hub's error for a malformed or out-of-limit
	// document: bad key, depth, value, type, null where none is allowed.
	CodeArgumentInvalid = "ArgumentInvalid"
	// CodeDeviceModelMaxPropertiesExceeded is IoT Hub's error for a section
	// (tags, desired, reported) that would grow over its size limit.
	CodeDeviceModelMaxPropertiesExceeded = "DeviceModelMaxPropertiesExceeded"
)

// Numeric IoT Hub error codes matching the names above.
const (
	NumberArgumentInvalid                  = 400004
	NumberDeviceModelMaxPropertiesExceeded = 403100
)

// Error is a refused twin write or an invalid document. Its fields map
// one-to-one onto IoT Hub's error responses: Code is the error name for the
// `iothub-errorcode` header and the "ErrorCode:<Code>;<Message>" body,
// Number the numeric code of MQTT error bodies, HTTPStatus the REST status.
// Path names the offending key from the twin root, e.g.
// "properties.desired.a.b" or "tags.location"; it is empty when the error
// concerns the whole body.
type Error struct {
	Code       string
	Number     int
	HTTPStatus int
	Path       string
	Message    string
}

// Error implements error.
func (e *Error) Error() string {
	return e.Code + ": " + e.Message
}

// argumentInvalid returns an ArgumentInvalid error for path.
func argumentInvalid(path, format string, args ...any) *Error {
	return &Error{
		Code:       CodeArgumentInvalid,
		Number:     NumberArgumentInvalid,
		HTTPStatus: http.StatusBadRequest,
		Path:       path,
		Message:    fmt.Sprintf(format, args...),
	}
}

// sizeExceeded returns the error IoT Hub gives for an oversized section.
func sizeExceeded(section Section, limit int) *Error {
	return &Error{
		Code:       CodeDeviceModelMaxPropertiesExceeded,
		Number:     NumberDeviceModelMaxPropertiesExceeded,
		HTTPStatus: http.StatusForbidden,
		Path:       section.Path(),
		Message:    fmt.Sprintf("'%s' size should be less than %d bytes.", section.displayName(), limit),
	}
}
