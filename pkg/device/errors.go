package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrRefused: the hub refused the credentials (CONNACK bad user name or
	// password, not authorised, or identifier rejected). Final.
	ErrRefused = errors.New("connection refused by the hub")
	// ErrTLS: the hub's certificate did not verify. Final.
	ErrTLS = errors.New("TLS handshake with the hub failed")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("device client closed")
	// ErrTimeout: a twin request got no response in time.
	ErrTimeout = errors.New("twin request timed out")
	// ErrInvalid: the hub rejected a request as malformed (400).
	ErrInvalid = errors.New("twin request rejected as invalid")
	// ErrUnauthorized: the hub refused a request for lack of rights (401, 403).
	ErrUnauthorized = errors.New("twin request unauthorized")
	// ErrNotFound: the twin does not exist (404).
	ErrNotFound = errors.New("twin not found")
	// ErrTooLarge: the twin or message would exceed a size limit (413, or
	// IoT Hub's 403 for an oversized section).
	ErrTooLarge = errors.New("twin request too large")
	// ErrThrottled: the hub is throttling the device (429).
	ErrThrottled = errors.New("twin request throttled")
	// ErrServer: the hub failed (5xx).
	ErrServer = errors.New("hub server error")
)

// Error is a twin request the hub answered with a failure. Status is the
// status from the response topic, Code the errorCode from the body (for
// example 400004), when present.
type Error struct {
	// Op is the request: "get twin" or "update reported".
	Op string
	// Status is the status from the response topic.
	Status int
	// Code is the body's errorCode, 0 if absent.
	Code int
	// Message is the body's message.
	Message string
	// TrackingID is the body's trackingId, for support requests.
	TrackingID string
}

// Error describes the failure with the hub's own status, code and message.
func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: hub answered %d", e.Op, e.Status)
	if e.Code != 0 {
		msg += fmt.Sprintf(" (errorCode %d)", e.Code)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is maps the status (or, failing that, the errorCode's first three digits)
// to the sentinel errors.
func (e *Error) Is(target error) bool {
	status := e.Status
	if status < 300 && e.Code >= 100000 {
		status = e.Code / 1000
	}
	switch target {
	case ErrInvalid:
		return status == http.StatusBadRequest
	case ErrUnauthorized:
		return status == http.StatusUnauthorized || (status == http.StatusForbidden && !e.tooLarge())
	case ErrNotFound:
		return status == http.StatusNotFound
	case ErrTooLarge:
		return status == http.StatusRequestEntityTooLarge || e.tooLarge()
	case ErrThrottled:
		return status == http.StatusTooManyRequests
	case ErrServer:
		return status >= 500
	}
	return false
}

// tooLarge recognises IoT Hub's 403 for an oversized twin section (403100
// and DeviceModelMaxPropertiesExceeded, spec §2.2 and §4).
func (e *Error) tooLarge() bool {
	return e.Code == 403100 || e.Code == 413001 || e.Code == 413002
}

// errorBody is the MQTT error body (spec §5.2).
type errorBody struct {
	ErrorCode  *int   `json:"errorCode"`
	Message    string `json:"message"`
	TrackingID string `json:"trackingId"`
}

// checkResponse turns a response into an *Error if the status is ≥ 300 or the
// body carries an errorCode, as the Node SDK only looks at the latter.
func checkResponse(op string, r response) error {
	var body errorBody
	hasCode := false
	if len(r.body) > 0 && r.body[0] == '{' {
		if json.Unmarshal(r.body, &body) == nil && body.ErrorCode != nil {
			hasCode = true
		}
	}
	if r.status < 300 && !hasCode {
		return nil
	}
	e := &Error{Op: op, Status: r.status, Message: body.Message, TrackingID: body.TrackingID}
	if hasCode {
		e.Code = *body.ErrorCode
	}
	return e
}
