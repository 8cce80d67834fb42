package hub_test

import (
	"net/http"
	"testing"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

func TestTutorialFlow(t *testing.T) {
	h := hubtest.Start(t)
	svc := newService(t, h, h.ServiceConnectionString)

	r := svc.do("PUT", "/devices/myDeviceId", map[string]any{"deviceId": "myDeviceId",
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": "", "secondaryKey": ""}}})
	if r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = svc.do("GET", "/twins/myDeviceId", nil)
	if r.status != 200 {
		t.Fatalf("get twin: %d %s", r.status, r.body)
	}
	etag := r.json(t)["etag"].(string)
	r = svc.do("PATCH", "/twins/myDeviceId", `{"tags":{"location":{"region":"US","plant":"Redmond43"}},"properties":{"desired":{"power_level":1}}}`, "If-Match", `"`+etag+`"`)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	r = svc.do("PATCH", "/twins/myDeviceId", `{"tags":{"x":1}}`, "If-Match", `"`+etag+`"`)
	if r.status != 412 || r.errorCode(t) != "PreconditionFailed" {
		t.Fatalf("stale etag: %d %s", r.status, r.body)
	}
	r = svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'"}`)
	if r.status != 200 || r.header.Get("x-ms-item-type") != "Twin" {
		t.Fatalf("query: %d %v %s", r.status, r.header, r.body)
	}
	t.Logf("%s", r.body)

	cs, err := h.Hub.DeviceConnectionString("myDeviceId", "")
	if err != nil {
		t.Fatal(err)
	}
	d := connectDevice(t, h, cs+";GatewayHostName="+h.MQTTAddr)
	d.subscribe("$iothub/twin/res/#", 0)
	d.subscribe("$iothub/twin/PATCH/properties/desired/#", 0)
	status, _, body := d.request("$iothub/twin/GET/", 0, " ")
	t.Logf("GET %s %s", status, body)
	status, topic, body := d.request("$iothub/twin/PATCH/properties/reported/", 1, `{"connectivity":"cellular"}`)
	t.Logf("PATCH %s %s %s", status, topic, body)
	svc.do("PATCH", "/twins/myDeviceId", `{"properties":{"desired":{"power_level":2}}}`)
	m := d.await("$iothub/twin/PATCH/properties/desired/")
	t.Logf("notify %s %s", m.Topic(), m.Payload())
	r = svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity = 'cellular'"}`)
	t.Logf("%s", r.body)
}
