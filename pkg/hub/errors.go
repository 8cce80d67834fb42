package hub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

// hubError is an error the hub reports to a client with IoT Hub's status,
// error code name and numeric code. Messages never contain secrets.
type hubError struct {
	status  int
	code    string // e.g. DeviceNotFound
	number  int    // e.g. 404001
	message string
}

func (e *hubError) Error() string { return e.code + ": " + e.message }

// Constructors for the errors the hub produces, named after IoT Hub's codes.
func errArgumentInvalid(msg string) *hubError {
	return &hubError{http.StatusBadRequest, "ArgumentInvalid", 400004, msg}
}
func errArgumentNull(msg string) *hubError {
	return &hubError{http.StatusBadRequest, "ArgumentNull", 400005, msg}
}
func errUnauthorized(msg string) *hubError {
	return &hubError{http.StatusUnauthorized, "IotHubUnauthorizedAccess", 401002, msg}
}
func errDeviceNotFound(id string) *hubError {
	return &hubError{http.StatusNotFound, "DeviceNotFound", 404001, "Device " + id + " not registered"}
}
func errModuleNotFound(id, mid string) *hubError {
	return &hubError{http.StatusNotFound, "ModuleNotFound", 404010, "Module " + mid + " on device " + id + " not registered"}
}
func errDeviceExists(id string) *hubError {
	return &hubError{http.StatusConflict, "DeviceAlreadyExists", 409001, "A device with ID '" + id + "' is already registered."}
}
func errModuleExists(id, mid string) *hubError {
	return &hubError{http.StatusConflict, "ModuleAlreadyExistsOnDevice", 409301, "A module with ID '" + mid + "' already exists on device '" + id + "'."}
}
func errPreconditionFailed() *hubError {
	return &hubError{http.StatusPreconditionFailed, "PreconditionFailed", 412001, "Precondition failed: Invalid ETag"}
}
func errThrottled() *hubError {
	return &hubError{http.StatusTooManyRequests, "ThrottlingException", 429001, "IotHub is throttling requests. Please retry later."}
}
func errServer(msg string) *hubError {
	return &hubError{http.StatusInternalServerError, "ServerError", 500001, msg}
}
func errNotFoundRoute() *hubError {
	return &hubError{http.StatusNotFound, "IotHubNotFound", 404000, "The requested resource does not exist."}
}
func errTooManyModules() *hubError {
	return &hubError{http.StatusForbidden, "TooManyModulesOnDevice", 413003, "The device has reached its limit of 50 modules."}
}

// trackingID returns a fresh IoT-Hub-like tracking id (32 hex digits).
func trackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// restErrorBody is IoT Hub's error body "shape A" (spec §2.2): the Node SDK
// reads the code from Message, C# requires ExceptionMessage to start with
// "Tracking ID:".
type restErrorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// writeError writes e as a REST error: shape A plus iothub-errorcode.
func writeError(w http.ResponseWriter, e *hubError) {
	now := time.Now().UTC()
	body := restErrorBody{
		Message:          "ErrorCode:" + e.code + ";" + e.message,
		ExceptionMessage: "Tracking ID:" + trackingID() + "-G:0-TimeStamp:" + now.Format("01/02/2006 15:04:05"),
	}
	w.Header().Set("iothub-errorcode", e.code)
	writeJSON(w, e.status, body)
}

// mqttErrorBody is the body of a failed MQTT twin response. The Node device
// SDK detects failure only by the errorCode property.
type mqttErrorBody struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

func mqttErrorPayload(e *hubError) []byte {
	b, _ := json.Marshal(mqttErrorBody{
		ErrorCode:    e.number,
		TrackingID:   trackingID(),
		Message:      e.message,
		TimestampUTC: formatTime(time.Now()),
	})
	return b
}

// jsonContentType is sent with every JSON response; the Node service SDK
// parses a body only when the content type contains application/json.
const jsonContentType = "application/json; charset=utf-8"

// rawJSON is a response body that is JSON already and is written as is.
type rawJSON []byte

// writeJSON writes v as JSON with IoT Hub's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, ok := v.(rawJSON)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			status, data = http.StatusInternalServerError, []byte(`{"Message":"ErrorCode:ServerError;encoding failed"}`)
		}
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
