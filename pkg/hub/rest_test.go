package hub_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

const jsonCT = "application/json; charset=utf-8"

func createDevice(t *testing.T, svc *service, id string) map[string]any {
	t.Helper()
	r := svc.do("PUT", "/devices/"+id, map[string]any{"deviceId": id,
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": "", "secondaryKey": ""}}})
	if r.status != http.StatusOK {
		t.Fatalf("create %s: %d %s", id, r.status, r.body)
	}
	return r.json(t)
}

func TestRegistryRoutes(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)

	dev := createDevice(t, svc, "dev-1")
	keys := dev["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	for _, k := range []string{"primaryKey", "secondaryKey"} {
		raw, err := base64.StdEncoding.DecodeString(keys[k].(string))
		if err != nil || len(raw) != 32 {
			t.Errorf("%s was not generated as 32 random bytes", k)
		}
	}
	if dev["status"] != "enabled" || dev["connectionState"] != "Disconnected" || dev["etag"] == "" || len(dev["generationId"].(string)) != 18 {
		t.Errorf("created device: %v", dev)
	}
	etag := dev["etag"].(string)

	cases := []struct {
		name       string
		method     string
		path       string
		body       any
		headers    []string
		wantStatus int
		wantCode   string
	}{
		{"create existing without If-Match", "PUT", "/devices/dev-1", map[string]any{"deviceId": "dev-1"}, nil, 409, "DeviceAlreadyExists"},
		{"body id differs from URL", "PUT", "/devices/dev-2", map[string]any{"deviceId": "other"}, nil, 400, "ArgumentInvalid"},
		{"invalid id", "PUT", "/devices/bad%20id", map[string]any{}, nil, 400, "ArgumentInvalid"},
		{"key too short", "PUT", "/devices/dev-3", map[string]any{"authentication": map[string]any{"symmetricKey": map[string]any{"primaryKey": "AAAA"}}}, nil, 400, "ArgumentInvalid"},
		{"malformed body", "PUT", "/devices/dev-4", "{", nil, 400, "ArgumentInvalid"},
		{"get", "GET", "/devices/dev-1", nil, nil, 200, ""},
		{"get unknown", "GET", "/devices/nope", nil, nil, 404, "DeviceNotFound"},
		{"list", "GET", "/devices", nil, nil, 200, ""},
		{"list with trailing slash", "GET", "/devices/", nil, nil, 200, ""},
		{"update with stale etag", "PUT", "/devices/dev-1", map[string]any{"status": "disabled"}, []string{"If-Match", `"stale"`}, 412, "PreconditionFailed"},
		{"delete with unquoted etag", "DELETE", "/devices/dev-1", nil, []string{"If-Match", etag}, 412, "PreconditionFailed"},
		{"delete unknown", "DELETE", "/devices/nope", nil, []string{"If-Match", `"*"`}, 404, "DeviceNotFound"},
		{"update with wildcard", "PUT", "/devices/dev-1", map[string]any{"status": "disabled"}, []string{"If-Match", `"*"`}, 200, ""},
		{"statistics", "GET", "/statistics/devices", nil, nil, 200, ""},
		{"service statistics", "GET", "/statistics/service", nil, nil, 200, ""},
		{"unknown route", "GET", "/nothing/here", nil, nil, 404, "IotHubNotFound"},
		{"unsupported method", "PATCH", "/devices/dev-1", map[string]any{}, nil, 405, "MethodNotAllowed"},
		{"module on unknown device", "PUT", "/devices/nope/modules/m1", map[string]any{}, nil, 404, "DeviceNotFound"},
		{"create module", "PUT", "/devices/dev-1/modules/mod-1", map[string]any{"moduleId": "mod-1"}, nil, 200, ""},
		{"create module again", "PUT", "/devices/dev-1/modules/mod-1", map[string]any{"moduleId": "mod-1"}, nil, 409, "ModuleAlreadyExistsOnDevice"},
		{"get module", "GET", "/devices/dev-1/modules/mod-1", nil, nil, 200, ""},
		{"get unknown module", "GET", "/devices/dev-1/modules/nope", nil, nil, 404, "ModuleNotFound"},
		{"list modules", "GET", "/devices/dev-1/modules", nil, nil, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := svc.do(c.method, c.path, c.body, c.headers...)
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.body)
			}
			if c.wantCode != "" {
				if got := r.errorCode(t); got != c.wantCode {
					t.Fatalf("error code %q, want %q", got, c.wantCode)
				}
			} else if r.header.Get("Content-Type") != jsonCT {
				t.Fatalf("content type %q", r.header.Get("Content-Type"))
			}
		})
	}

	t.Run("update changed status and etag", func(t *testing.T) {
		got := svc.do("GET", "/devices/dev-1", nil).json(t)
		if got["status"] != "disabled" || got["etag"] == etag {
			t.Fatalf("after update: status %v etag %v (was %v)", got["status"], got["etag"], etag)
		}
		if tw := svc.do("GET", "/twins/dev-1", nil).json(t); tw["status"] != "disabled" || tw["deviceEtag"] != got["etag"] {
			t.Fatalf("twin does not show the identity's status and etag: %v", tw)
		}
	})
	t.Run("lists hold the right identities", func(t *testing.T) {
		var devices, modules []map[string]any
		mustUnmarshal(t, svc.do("GET", "/devices/", nil).body, &devices)
		mustUnmarshal(t, svc.do("GET", "/devices/dev-1/modules", nil).body, &modules)
		if len(devices) != 1 || devices[0]["deviceId"] != "dev-1" {
			t.Fatalf("devices: %v", devices)
		}
		if len(modules) != 1 || modules[0]["moduleId"] != "mod-1" {
			t.Fatalf("modules: %v", modules)
		}
	})
	t.Run("delete removes device and modules", func(t *testing.T) {
		cur := svc.do("GET", "/devices/dev-1", nil).json(t)["etag"].(string)
		if r := svc.do("DELETE", "/devices/dev-1", nil, "If-Match", `"`+cur+`"`); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		if r := svc.do("GET", "/devices/dev-1/modules/mod-1", nil); r.status != 404 {
			t.Fatalf("module survived its device: %d", r.status)
		}
		if r := svc.do("GET", "/twins/dev-1", nil); r.status != 404 || r.errorCode(t) != "DeviceNotFound" {
			t.Fatalf("twin survived its device: %d", r.status)
		}
	})
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
}

func TestTwinRoutes(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	createDevice(t, svc, "d1")
	if r := svc.do("PUT", "/devices/d1/modules/m1", map[string]any{}); r.status != 200 {
		t.Fatalf("create module: %d %s", r.status, r.body)
	}
	etagOf := func(path string) string { return svc.do("GET", path, nil).json(t)["etag"].(string) }

	cases := []struct {
		name       string
		method     string
		path       string
		body       string
		ifMatch    func() string // nil: no header
		wantStatus int
		wantCode   string
	}{
		{"get", "GET", "/twins/d1", "", nil, 200, ""},
		{"get unknown", "GET", "/twins/nope", "", nil, 404, "DeviceNotFound"},
		{"patch without If-Match", "PATCH", "/twins/d1", `{"tags":{"a":1}}`, nil, 200, ""},
		{"patch with *", "PATCH", "/twins/d1", `{"tags":{"a":2}}`, func() string { return "*" }, 200, ""},
		{"patch with quoted *", "PATCH", "/twins/d1", `{"tags":{"a":3}}`, func() string { return `"*"` }, 200, ""},
		{"patch with current etag", "PATCH", "/twins/d1", `{"tags":{"a":4}}`, func() string { return `"` + etagOf("/twins/d1") + `"` }, 200, ""},
		{"patch with stale etag", "PATCH", "/twins/d1", `{"tags":{"a":5}}`, func() string { return `"AAAAAAAAAAE="` }, 412, "PreconditionFailed"},
		{"patch with unquoted stale etag is unconditional", "PATCH", "/twins/d1", `{"tags":{"a":6}}`, func() string { return "AAAAAAAAAAE=" }, 200, ""},
		{"patch invalid JSON", "PATCH", "/twins/d1", `{"tags":`, nil, 400, "ArgumentInvalid"},
		{"patch unknown twin", "PATCH", "/twins/nope", `{"tags":{}}`, nil, 404, "DeviceNotFound"},
		{"put replaces", "PUT", "/twins/d1", `{"tags":{"b":1},"properties":{"desired":{"x":1}}}`, nil, 200, ""},
		{"put with null", "PUT", "/twins/d1", `{"tags":{"b":null}}`, nil, 400, "ArgumentInvalid"},
		{"put with stale etag", "PUT", "/twins/d1", `{"tags":{"b":2}}`, func() string { return `"AAAAAAAAAAE="` }, 412, "PreconditionFailed"},
		{"module get", "GET", "/twins/d1/modules/m1", "", nil, 200, ""},
		{"module patch", "PATCH", "/twins/d1/modules/m1", `{"properties":{"desired":{"m":1}}}`, nil, 200, ""},
		{"module put", "PUT", "/twins/d1/modules/m1", `{"properties":{"desired":{"m":2}}}`, nil, 200, ""},
		{"module unknown", "GET", "/twins/d1/modules/nope", "", nil, 404, "ModuleNotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.ifMatch != nil {
				headers = []string{"If-Match", c.ifMatch()}
			}
			var body any
			if c.body != "" {
				body = c.body
			}
			r := svc.do(c.method, c.path, body, headers...)
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.body)
			}
			if c.wantCode != "" {
				if got := r.errorCode(t); got != c.wantCode {
					t.Fatalf("error code %q, want %q", got, c.wantCode)
				}
				return
			}
			if r.header.Get("Content-Type") != jsonCT {
				t.Fatalf("content type %q", r.header.Get("Content-Type"))
			}
			tw := r.json(t)
			if tw["deviceId"] != "d1" || tw["etag"] == "" {
				t.Fatalf("twin body: %s", r.body)
			}
		})
	}

	t.Run("Go accessors agree with REST", func(t *testing.T) {
		tw, ok := h.Twin("d1", "")
		dev, okDev := h.Device("d1", "m1")
		if !ok || !okDev || tw.Tags["b"] == nil || tw.ETag != etagOf("/twins/d1") || dev.ModuleID != "m1" {
			t.Fatalf("Twin/Device: %v %v %+v", ok, okDev, dev)
		}
		if _, ok := h.Twin("nope", ""); ok {
			t.Fatal("Twin of an unknown device")
		}
	})

	t.Run("final state", func(t *testing.T) {
		tw := svc.do("GET", "/twins/d1", nil).json(t)
		tags := tw["tags"].(map[string]any)
		if _, ok := tags["a"]; ok || tags["b"] != float64(1) {
			t.Fatalf("PUT did not replace the tags: %v", tags)
		}
		mt := svc.do("GET", "/twins/d1/modules/m1", nil).json(t)
		desired := mt["properties"].(map[string]any)["desired"].(map[string]any)
		if mt["moduleId"] != "m1" || desired["m"] != float64(2) {
			t.Fatalf("module twin: %v", mt)
		}
	})
}

func TestQueryRoute(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	for i := range 5 {
		id := fmt.Sprintf("q%d", i)
		createDevice(t, svc, id)
		plant := "Redmond43"
		if i == 4 {
			plant = "Other"
		}
		svc.do("PATCH", "/twins/"+id, map[string]any{"tags": map[string]any{"location": map[string]any{"plant": plant}}})
	}

	t.Run("paging", func(t *testing.T) {
		var ids []string
		cont := ""
		for page := 0; ; page++ {
			headers := []string{"x-ms-max-item-count", "2"}
			if cont != "" {
				headers = append(headers, "x-ms-continuation", cont)
			}
			r := svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'"}`, headers...)
			if r.status != 200 || r.header.Get("x-ms-item-type") != "Twin" || r.header.Get("Content-Type") != jsonCT {
				t.Fatalf("page %d: %d %v %s", page, r.status, r.header, r.body)
			}
			var rows []map[string]any
			mustUnmarshal(t, r.body, &rows)
			for _, row := range rows {
				ids = append(ids, row["deviceId"].(string))
			}
			vals, present := r.header["X-Ms-Continuation"]
			if !present {
				break
			}
			if len(vals) != 1 || vals[0] == "" {
				t.Fatalf("empty continuation header on page %d", page)
			}
			cont = vals[0]
			if page > 5 {
				t.Fatal("paging does not end")
			}
		}
		if fmt.Sprint(ids) != "[q0 q1 q2 q3]" {
			t.Fatalf("rows %v", ids)
		}
	})

	t.Run("invalid continuation", func(t *testing.T) {
		r := svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "x-ms-continuation", "garbage", "x-ms-max-item-count", "1")
		if r.status != 400 || r.errorCode(t) != "ArgumentInvalid" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})

	cases := []struct {
		name, body   string
		wantStatus   int
		wantItemType string
		wantRows     int
	}{
		{"capitalised body key", `{"Query":"SELECT * FROM devices"}`, 200, "Twin", 5},
		{"projection", `{"query":"SELECT deviceId FROM devices WHERE tags.location.plant = 'Other'"}`, 200, "Raw", 1},
		{"aggregate", `{"query":"SELECT COUNT() AS n FROM devices"}`, 200, "Raw", 1},
		{"invalid query", `{"query":"SELECT FROM"}`, 400, "", 0},
		{"missing query", `{}`, 400, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := svc.do("POST", "/devices/query", c.body)
			if r.status != c.wantStatus {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if c.wantStatus != 200 {
				r.errorCode(t)
				return
			}
			var rows []map[string]any
			mustUnmarshal(t, r.body, &rows)
			if r.header.Get("x-ms-item-type") != c.wantItemType || len(rows) != c.wantRows {
				t.Fatalf("item type %q rows %d: %s", r.header.Get("x-ms-item-type"), len(rows), r.body)
			}
		})
	}
}
