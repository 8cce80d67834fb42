package hub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twinsync/twinsync/pkg/query"
	"github.com/twinsync/twinsync/pkg/twin"
)

// maxBodyBytes bounds request bodies: twins are at most 72 KB of sections
// plus root fields, device bodies are small.
const maxBodyBytes = 256 << 10

// Query paging bounds (see the package doc).
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	maxListTop      = 1000
)

// routes returns the REST API handler (spec §2).
func (h *Hub) routes() http.Handler {
	mux := http.NewServeMux()
	read, write := []Permission{RegistryRead}, []Permission{RegistryWrite}
	svc := []Permission{ServiceConnect}

	mux.Handle("GET /devices", h.api(classRegistry, read, h.listDevices))
	mux.Handle("GET /devices/{$}", h.api(classRegistry, read, h.listDevices))
	mux.Handle("PUT /devices/{id}", h.api(classRegistry, write, h.putDevice))
	mux.Handle("GET /devices/{id}", h.api(classRegistry, read, h.getDevice))
	mux.Handle("DELETE /devices/{id}", h.api(classRegistry, write, h.deleteDevice))
	mux.Handle("GET /devices/{id}/modules", h.api(classRegistry, read, h.listModules))
	mux.Handle("PUT /devices/{id}/modules/{mid}", h.api(classRegistry, write, h.putDevice))
	mux.Handle("GET /devices/{id}/modules/{mid}", h.api(classRegistry, read, h.getDevice))
	mux.Handle("DELETE /devices/{id}/modules/{mid}", h.api(classRegistry, write, h.deleteDevice))

	// Queries need ServiceConnect per the docs; RegistryRead is accepted too
	// because a query over devices reads only what the registry shows.
	mux.Handle("POST /devices/query", h.api(classQuery, []Permission{ServiceConnect, RegistryRead}, h.query))

	mux.Handle("GET /twins/{id}", h.api(classTwinRead, svc, h.getTwin))
	mux.Handle("PATCH /twins/{id}", h.api(classTwinUpdate, svc, h.updateTwin))
	mux.Handle("PUT /twins/{id}", h.api(classTwinUpdate, svc, h.updateTwin))
	mux.Handle("GET /twins/{id}/modules/{mid}", h.api(classTwinRead, svc, h.getTwin))
	mux.Handle("PATCH /twins/{id}/modules/{mid}", h.api(classTwinUpdate, svc, h.updateTwin))
	mux.Handle("PUT /twins/{id}/modules/{mid}", h.api(classTwinUpdate, svc, h.updateTwin))

	mux.Handle("GET /statistics/devices", h.api(classRegistry, read, h.deviceStatistics))
	mux.Handle("GET /statistics/service", h.api(classRegistry, svc, h.serviceStatistics))

	mux.HandleFunc("GET "+webSocketPath, h.mqtt.serveWebSocket)

	// Known paths with an unsupported method get IoT Hub's error shape
	// instead of the mux's plain-text 405.
	for _, path := range []string{"/devices", "/devices/{id}", "/devices/{id}/modules", "/devices/{id}/modules/{mid}",
		"/twins/{id}", "/twins/{id}/modules/{mid}", "/statistics/devices", "/statistics/service"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &hubError{http.StatusMethodNotAllowed, "MethodNotAllowed", 405000, "The method " + r.Method + " is not allowed on " + r.URL.Path + "."})
		})
	}

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errNotFoundRoute()) })
	return mux
}

// apiHandler is a REST handler that returns the response value (written as
// JSON with status 200, or nothing when nil) or an error.
type apiHandler func(w http.ResponseWriter, r *http.Request) (any, *hubError)

// api wraps a handler with authorization, throttling and response writing.
func (h *Hub) api(class opClass, perms []Permission, fn apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := h.auth.authorizeService(r.Header.Get("Authorization"), servicePath(r), perms...); e != nil {
			writeError(w, e)
			return
		}
		if !h.throttle.allow(class) {
			// IoT Hub's own Retry-After is unverified; the hub sends one so
			// that clients' handling of it can be tested.
			w.Header().Set("Retry-After", strconv.Itoa(h.throttle.retryAfter(class)))
			writeError(w, errThrottled())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		v, e := fn(w, r)
		if e != nil {
			writeError(w, e)
			return
		}
		switch body := v.(type) {
		case nil:
			w.WriteHeader(http.StatusNoContent)
		case pooledJSON:
			writeJSON(w, http.StatusOK, rawJSON(*body.buf))
			pageBuffers.Put(body.buf)
		default:
			writeJSON(w, http.StatusOK, v)
		}
	})
}

// ids returns the device and module id of the request path and validates
// them.
func ids(r *http.Request) (id, mid string, e *hubError) {
	id, mid = r.PathValue("id"), r.PathValue("mid")
	if err := validateID("device", id); err != nil {
		return "", "", errArgumentInvalid(err.Error())
	}
	if mid != "" || strings.Contains(r.URL.Path, "/modules/") {
		if err := validateID("module", mid); err != nil {
			return "", "", errArgumentInvalid(err.Error())
		}
	}
	return id, mid, nil
}

func notFound(id, mid string) *hubError {
	if mid != "" {
		return errModuleNotFound(id, mid)
	}
	return errDeviceNotFound(id)
}

// ifMatch is a parsed If-Match header (spec §2.3, §8.1).
type ifMatch struct {
	present  bool   // a header was sent
	wildcard bool   // * or "*"
	quoted   bool   // the etag was in double quotes
	etag     string // the etag without quotes
}

func parseIfMatch(r *http.Request) ifMatch {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return ifMatch{}
	}
	m := ifMatch{present: true}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		m.quoted, v = true, v[1:len(v)-1]
	}
	m.wildcard = v == "*"
	m.etag = v
	return m
}

// allowsTwin applies the twin rule: unconditional when absent or a
// wildcard, a quoted etag must match, an unquoted etag is ignored (as IoT
// Hub does).
func (m ifMatch) allowsTwin(etag string) bool {
	return !m.present || m.wildcard || !m.quoted || m.etag == etag
}

// allowsIdentity applies the registry rule: a real etag, quoted or not,
// must match (IoT Hub answers 412 to an unquoted device etag).
func (m ifMatch) allowsIdentity(etag string) bool {
	return !m.present || m.wildcard || (m.quoted && m.etag == etag)
}

// readJSON decodes the request body into v.
func readJSON(r *http.Request, v any) *hubError {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &hubError{http.StatusRequestEntityTooLarge, "MessageTooLarge", 413001, "The request body is too large."}
		}
		return errArgumentInvalid("The request body could not be read.")
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return errArgumentNull("The request body is empty.")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errArgumentInvalid("The request body is not valid JSON: " + err.Error())
	}
	return nil
}

func (h *Hub) listDevices(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	top := maxListTop
	if s := r.URL.Query().Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, errArgumentInvalid("top must be a positive integer")
		}
		top = min(n, maxListTop)
	}
	out := []Device{}
	for _, rec := range h.store.all() {
		if len(out) == top {
			break
		}
		if !rec.isModule() {
			out = append(out, rec.Device)
		}
	}
	return out, nil
}

func (h *Hub) listModules(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	id, _, e := ids(r)
	if e != nil {
		return nil, e
	}
	if h.store.get(id) == nil {
		return nil, errDeviceNotFound(id)
	}
	out := []Device{}
	for _, rec := range h.store.all() {
		if rec.isModule() && rec.Device.DeviceID == id {
			out = append(out, rec.Device)
		}
	}
	return out, nil
}

func (h *Hub) getDevice(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	id, mid, e := ids(r)
	if e != nil {
		return nil, e
	}
	rec := h.store.get(query.Key(id, mid))
	if rec == nil {
		return nil, notFound(id, mid)
	}
	return rec.Device, nil
}

// putDevice creates or updates a device or module identity (spec §2.5).
// Without If-Match it only creates (409 when the id exists); with If-Match
// it updates, or creates when the identity does not exist yet.
func (h *Hub) putDevice(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	id, mid, e := ids(r)
	if e != nil {
		return nil, e
	}
	var in Device
	if e := readJSON(r, &in); e != nil {
		return nil, e
	}
	if in.DeviceID != "" && in.DeviceID != id {
		return nil, errArgumentInvalid("The deviceId in the body does not match the URL.")
	}
	if mid != "" && in.ModuleID != "" && in.ModuleID != mid {
		return nil, errArgumentInvalid("The moduleId in the body does not match the URL.")
	}
	in.DeviceID, in.ModuleID = id, mid
	match := parseIfMatch(r)
	now := h.now()
	if mid != "" && h.store.get(id) == nil {
		return nil, errDeviceNotFound(id)
	}
	if mid != "" && h.store.get(query.Key(id, mid)) == nil && h.moduleCount(id) >= 50 {
		return nil, errTooManyModules()
	}
	var herr *hubError
	rec, err := h.store.update(query.Key(id, mid), func(cur *identity) (*identity, error) {
		if cur == nil {
			next, err := h.newIdentity(in, now)
			if err != nil {
				herr = errArgumentInvalid(err.Error())
				return nil, herr
			}
			return next, nil
		}
		if !match.present {
			if mid != "" {
				herr = errModuleExists(id, mid)
			} else {
				herr = errDeviceExists(id)
			}
			return nil, herr
		}
		if !match.allowsIdentity(cur.Device.Etag) {
			herr = errPreconditionFailed()
			return nil, herr
		}
		next, err := updateIdentity(cur, in, now)
		if err != nil {
			herr = errArgumentInvalid(err.Error())
			return nil, herr
		}
		return next, nil
	})
	if herr != nil {
		return nil, herr
	}
	if err != nil {
		return nil, errServer("the change could not be stored")
	}
	if rec.Device.Status != "enabled" {
		h.mqtt.disconnect(rec.key())
	}
	return rec.Device, nil
}

// moduleCount counts the modules registered on a device.
func (h *Hub) moduleCount(id string) int {
	n := 0
	for _, rec := range h.store.all() {
		if rec.isModule() && rec.Device.DeviceID == id {
			n++
		}
	}
	return n
}

// newIdentity builds the record of a created device or module.
func (h *Hub) newIdentity(in Device, now time.Time) (*identity, error) {
	if err := normalizeNewDevice(&in, now); err != nil {
		return nil, err
	}
	rec := &identity{Device: in, DeviceEtagCounter: 1, Twin: twin.New(in.DeviceID, in.ModuleID, now)}
	rec.Device.Etag = deviceEtag(rec.DeviceEtagCounter)
	rec.refresh()
	return rec, nil
}

// updateIdentity applies the writable fields of a registry update: status,
// statusReason, keys and capabilities.
func updateIdentity(cur *identity, in Device, now time.Time) (*identity, error) {
	next := cur.clone()
	d := &next.Device
	if in.Status != "" && in.Status != d.Status {
		if in.Status != "enabled" && in.Status != "disabled" {
			return nil, errors.New("status must be enabled or disabled")
		}
		d.Status = in.Status
		d.StatusUpdatedTime = formatTime(now)
	}
	d.StatusReason = in.StatusReason
	if in.Capabilities != nil && !next.isModule() {
		d.Capabilities = &Capabilities{IotEdge: in.Capabilities.IotEdge}
	}
	if in.Authentication.Type != "" || in.Authentication.SymmetricKey != (SymmetricKey{}) {
		auth := in.Authentication
		if err := normalizeAuth(&auth); err != nil {
			return nil, err
		}
		d.Authentication = auth
	}
	next.DeviceEtagCounter++
	d.Etag = deviceEtag(next.DeviceEtagCounter)
	next.refresh()
	return next, nil
}

func (h *Hub) deleteDevice(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	id, mid, e := ids(r)
	if e != nil {
		return nil, e
	}
	match := parseIfMatch(r)
	var herr *hubError
	_, err := h.store.update(query.Key(id, mid), func(cur *identity) (*identity, error) {
		if cur == nil {
			herr = notFound(id, mid)
			return nil, herr
		}
		if !match.allowsIdentity(cur.Device.Etag) {
			herr = errPreconditionFailed()
			return nil, herr
		}
		return nil, nil
	})
	if herr != nil {
		return nil, herr
	}
	if err != nil {
		return nil, errServer("the change could not be stored")
	}
	h.mqtt.disconnect(query.Key(id, mid))
	if mid == "" {
		h.deleteModulesOf(id)
	}
	return nil, nil
}

// deleteModulesOf removes the modules of a deleted device.
func (h *Hub) deleteModulesOf(id string) {
	for _, rec := range h.store.all() {
		if rec.isModule() && rec.Device.DeviceID == id {
			key := rec.key()
			_, _ = h.store.update(key, func(*identity) (*identity, error) { return nil, nil })
			h.mqtt.disconnect(key)
		}
	}
}

func (h *Hub) getTwin(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	id, mid, e := ids(r)
	if e != nil {
		return nil, e
	}
	rec := h.store.get(query.Key(id, mid))
	if rec == nil {
		return nil, notFound(id, mid)
	}
	return rec.twinJSON(), nil
}

// updateTwin handles PATCH (merge) and PUT (replace) of a twin's tags and
// desired properties, then notifies a subscribed device of desired changes.
func (h *Hub) updateTwin(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	id, mid, e := ids(r)
	if e != nil {
		return nil, e
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, errArgumentInvalid("The request body could not be read.")
	}
	match := parseIfMatch(r)
	replace := r.Method == http.MethodPut
	now := h.now()
	var herr *hubError
	var notify *twin.DesiredNotification
	// The notification goes out under the twin's lock, so a device gets
	// the patches of successive writes in $version order.
	rec, err := h.store.updateThen(query.Key(id, mid), func(cur *identity) (*identity, error) {
		if cur == nil {
			herr = notFound(id, mid)
			return nil, herr
		}
		if !match.allowsTwin(cur.Twin.ETag) {
			herr = errPreconditionFailed()
			return nil, herr
		}
		next := cur.clone()
		n, err := applyServiceWrite(next.Twin, body, replace, now, r.URL.Query().Get("api-version"))
		if err != nil {
			herr = twinError(err)
			return nil, herr
		}
		notify = n
		next.refresh()
		return next, nil
	}, func(next *identity) { h.mqtt.notifyDesired(next.key(), notify) })
	if herr != nil {
		return nil, herr
	}
	if err != nil {
		return nil, errServer("the change could not be stored")
	}
	return rec.twinJSON(), nil
}

// twinError converts an error of pkg/twin to the hub's error.
func twinError(err error) *hubError {
	var te *twin.Error
	if errors.As(err, &te) {
		return &hubError{te.HTTPStatus, te.Code, te.Number, te.Message}
	}
	return errArgumentInvalid(err.Error())
}

// query runs POST /devices/query (spec §2.6).
func (h *Hub) query(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	var body map[string]json.RawMessage
	if e := readJSON(r, &body); e != nil {
		return nil, e
	}
	var text string
	for k, v := range body {
		if strings.EqualFold(k, "query") {
			if err := json.Unmarshal(v, &text); err != nil {
				return nil, errArgumentInvalid("The query must be a string.")
			}
		}
	}
	if strings.TrimSpace(text) == "" {
		return nil, errArgumentNull("The query is missing.")
	}
	q, err := query.Parse(text)
	if err != nil {
		return nil, errArgumentInvalid("The query is invalid: " + err.Error())
	}
	pageSize := defaultPageSize
	if s := r.Header.Get("x-ms-max-item-count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, errArgumentInvalid("x-ms-max-item-count must be a positive integer")
		}
		pageSize = min(n, maxPageSize)
	}
	page, err := query.Execute(r.Context(), q, h.index, query.Options{
		PageSize:     pageSize,
		Continuation: r.Header.Get("x-ms-continuation"),
	})
	if err != nil {
		return nil, errArgumentInvalid("The query could not run: " + err.Error())
	}
	w.Header().Set("x-ms-item-type", string(page.ItemType))
	if page.Continuation != "" {
		w.Header().Set("x-ms-continuation", page.Continuation)
	}
	return h.encodeRows(page), nil
}

// pageBuffers recycles query response buffers: a page of full twins is
// megabytes, and allocating it per query makes the collector mark the
// whole store far more often.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// pooledJSON is a response body in a buffer from pageBuffers; api writes
// it and returns the buffer to the pool.
type pooledJSON struct{ buf *[]byte }

// encodeRows renders a query page as a JSON array. Twin rows that are
// still the stored record's document reuse the record's cached JSON;
// projections, aggregates and rows of a record that changed meanwhile are
// marshalled.
func (h *Hub) encodeRows(page *query.Page) pooledJSON {
	bp := pageBuffers.Get().(*[]byte)
	buf := append((*bp)[:0], '[')
	for i, item := range page.Items {
		if i > 0 {
			buf = append(buf, ',')
		}
		if page.ItemType == query.ItemTwin {
			if cached := h.index.cachedJSON(item); cached != nil {
				buf = append(buf, cached...)
				continue
			}
		}
		data, err := json.Marshal(item)
		if err != nil {
			data = []byte("null")
		}
		buf = append(buf, data...)
	}
	*bp = append(buf, ']')
	return pooledJSON{bp}
}

// deviceStatistics answers GET /statistics/devices.
func (h *Hub) deviceStatistics(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	var total, enabled int
	for _, rec := range h.store.all() {
		if rec.isModule() {
			continue
		}
		total++
		if rec.Device.Status == "enabled" {
			enabled++
		}
	}
	return map[string]int{"totalDeviceCount": total, "enabledDeviceCount": enabled, "disabledDeviceCount": total - enabled}, nil
}

// serviceStatistics answers GET /statistics/service.
func (h *Hub) serviceStatistics(w http.ResponseWriter, r *http.Request) (any, *hubError) {
	return map[string]int{"connectedDeviceCount": h.mqtt.connectedCount()}, nil
}
