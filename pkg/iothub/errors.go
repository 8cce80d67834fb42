package iothub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Match them with errors.Is on any error a Client returns;
// the concrete type is *Error, which carries the hub's code and message.
var (
	// ErrInvalid is a request the hub refused as malformed (400).
	ErrInvalid = errors.New("iothub: invalid request")
	// ErrUnauthorized is a missing, expired or insufficient credential (401,
	// or 403 for an access rule).
	ErrUnauthorized = errors.New("iothub: unauthorized")
	// ErrNotFound is an unknown device, module or hub (404).
	ErrNotFound = errors.New("iothub: not found")
	// ErrConflict is an identity that already exists (409).
	ErrConflict = errors.New("iothub: conflict")
	// ErrPreconditionFailed is an If-Match etag that no longer matches (412).
	ErrPreconditionFailed = errors.New("iothub: precondition failed")
	// ErrTooLarge is a document or message over a hub limit (413, or 403
	// DeviceModelMaxPropertiesExceeded for an oversized twin section).
	ErrTooLarge = errors.New("iothub: too large")
	// ErrQuotaExceeded is a daily message or device quota used up (403).
	ErrQuotaExceeded = errors.New("iothub: quota exceeded")
	// ErrThrottled is a request the hub throttled (429) after the client
	// ran out of retry time.
	ErrThrottled = errors.New("iothub: throttled")
	// ErrServer is a hub-side failure (5xx).
	ErrServer = errors.New("iothub: server error")

	// ErrEmptyETag is returned before any request when a conditional call
	// gets an empty etag. Pass [ETagAny] to write unconditionally.
	ErrEmptyETag = errors.New("iothub: empty etag; pass iothub.ETagAny to write unconditionally")
	// ErrEmptyID is returned before any request for an empty device or
	// module id.
	ErrEmptyID = errors.New("iothub: empty device or module id")
)

// Error is an error answer from the hub.
type Error struct {
	// Operation is the client call, e.g. "UpdateTwin".
	Operation string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the hub's error name, e.g. "DeviceNotFound", from the
	// iothub-errorcode header or the body; empty if the hub gave none.
	Code string
	// Number is the hub's numeric error code, e.g. 404001, when the body
	// carried one.
	Number int
	// Message is the hub's error text.
	Message string
	// TrackingID identifies the request in the hub's logs, when given.
	TrackingID string
	// RetryAfter is the wait a 429 answer asked for, zero if none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "iothub: %s: %d", e.Operation, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is matches the sentinel errors by HTTP status and error code.
func (e *Error) Is(target error) bool {
	return e.kind() == target
}

// kind maps the answer onto a sentinel.
func (e *Error) kind() error {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		switch e.Code {
		case "DeviceModelMaxPropertiesExceeded":
			return ErrTooLarge
		case "IotHubQuotaExceeded", "TooManyDevices", "DeviceMaximumQueueDepthExceeded":
			return ErrQuotaExceeded
		}
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusTooManyRequests:
		return ErrThrottled
	}
	if e.StatusCode >= 500 {
		return ErrServer
	}
	return nil
}

// maxMessageLen bounds the hub message kept in an Error.
const maxMessageLen = 1024

// parseError builds an Error from a failed response. It reads both body
// shapes IoT Hub uses (see the package documentation) and prefers the
// iothub-errorcode header for the code.
func parseError(op string, status int, header http.Header, body []byte) *Error {
	e := &Error{Operation: op, StatusCode: status}
	parseErrorBody(e, body)
	if h := header.Get("iothub-errorcode"); h != "" {
		e.Code = h
	}
	if e.Code == "" && e.Number != 0 {
		e.Code = codeNames[e.Number]
	}
	if len(e.Message) > maxMessageLen {
		e.Message = e.Message[:maxMessageLen] + "…"
	}
	return e
}

// errorBody covers shape A ({"Message":"ErrorCode:X;text","ExceptionMessage":
// "Tracking ID:..."}) and the JSON object of shape B, which IoT Hub either
// embeds as a string in Message or, on some endpoints, sends bare.
type errorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
	ErrorCode        int    `json:"errorCode"`
	TrackingID       string `json:"trackingId"`
	LowerMessage     string `json:"message"`
}

func parseErrorBody(e *Error, body []byte) {
	var outer errorBody
	if len(body) == 0 || json.Unmarshal(body, &outer) != nil {
		e.Message = strings.TrimSpace(string(body))
		return
	}
	if outer.ErrorCode != 0 { // bare shape B
		e.Number, e.Message, e.TrackingID = outer.ErrorCode, outer.LowerMessage, outer.TrackingID
		return
	}
	var inner errorBody
	if strings.HasPrefix(outer.Message, "{") && json.Unmarshal([]byte(outer.Message), &inner) == nil && inner.ErrorCode != 0 {
		e.Number, e.Message, e.TrackingID = inner.ErrorCode, inner.LowerMessage, inner.TrackingID
		return
	}
	e.Code, e.Message = splitErrorCode(outer.Message)
	if id, ok := strings.CutPrefix(outer.ExceptionMessage, "Tracking ID:"); ok {
		e.TrackingID = id
	}
}

// splitErrorCode splits "ErrorCode:Name;text" into Name and text.
func splitErrorCode(msg string) (code, text string) {
	rest, ok := strings.CutPrefix(msg, "ErrorCode:")
	if !ok {
		return "", msg
	}
	code, text, _ = strings.Cut(rest, ";")
	return strings.TrimSpace(code), text
}

// codeNames names the numeric codes of spec §2.2 for bodies that carry
// only a number.
var codeNames = map[int]string{
	400004: "ArgumentInvalid",
	400005: "ArgumentNull",
	400006: "IotHubFormatError",
	401002: "IotHubUnauthorizedAccess",
	401003: "IotHubUnauthorized",
	403002: "IotHubQuotaExceeded",
	403100: "DeviceModelMaxPropertiesExceeded",
	404001: "DeviceNotFound",
	404010: "ModuleNotFound",
	404103: "DeviceNotOnline",
	409001: "DeviceAlreadyExists",
	409301: "ModuleAlreadyExistsOnDevice",
	412001: "PreconditionFailed",
	413001: "MessageTooLarge",
	413002: "TooManyDevices",
	413003: "TooManyModulesOnDevice",
	429001: "ThrottlingException",
	429002: "ThrottleBacklogLimitExceeded",
	429003: "ThrottlingBacklogTimeout",
	500001: "ServerError",
	503001: "ServiceUnavailable",
}

// statusText is the bounded metrics label for a status code.
func statusText(status int) string { return strconv.Itoa(status) }
