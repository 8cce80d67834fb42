package hub_test

import (
	"net/http"
	"testing"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

// TestTutorialFlow replays "Get started with device twins" the way the
// Node SDKs put it on the wire (sdk-wire.md §2.3, §3.3).
func TestTutorialFlow(t *testing.T) {
	h := hubtest.Start(t)
	svc := newService(t, h, h.ServiceConnectionString)
	createDevice(t, svc, "myDeviceId")

	r := svc.do("GET", "/twins/myDeviceId", nil)
	etag := r.json(t)["etag"].(string)
	if etag != "AAAAAAAAAAE=" {
		t.Fatalf("new twin etag %q", etag)
	}
	patch := `{"tags":{"location":{"region":"US","plant":"Redmond43"}},"properties":{"desired":{"power_level":1}}}`
	if r = svc.do("PATCH", "/twins/myDeviceId", patch, "If-Match", `"`+etag+`"`); r.status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r = svc.do("PATCH", "/twins/myDeviceId", patch, "If-Match", `"`+etag+`"`); r.status != 412 || r.errorCode(t) != "PreconditionFailed" {
		t.Fatalf("stale etag: %d %s", r.status, r.body)
	}

	byPlant := `{"query":"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'"}`
	byPlantAndCell := `{"query":"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity = 'cellular'"}`
	count := func(q string) int {
		var rows []map[string]any
		mustUnmarshal(t, svc.do("POST", "/devices/query", q).body, &rows)
		return len(rows)
	}
	if n, m := count(byPlant), count(byPlantAndCell); n != 1 || m != 0 {
		t.Fatalf("before reporting: %d by plant, %d by plant and cellular", n, m)
	}

	d := connectDevice(t, h, h.DeviceConnectionString(t, "myDeviceId"))
	d.subscribe("$iothub/twin/res/#", 0)
	if status, _, body := d.request("$iothub/twin/GET/", 0, " "); status != "200" || string(body) != `{"desired":{"power_level":1,"$version":2},"reported":{"$version":1}}` {
		t.Fatalf("GET: %s %s", status, body)
	}
	d.subscribe("$iothub/twin/PATCH/properties/desired/#", 0)
	if status, topic, _ := d.request("$iothub/twin/PATCH/properties/reported/", 0, `{"connectivity":"cellular"}`); status != "204" {
		t.Fatalf("reported: %s %s", status, topic)
	}
	svc.do("PATCH", "/twins/myDeviceId", `{"properties":{"desired":{"power_level":2}}}`)
	if m := d.await("$iothub/twin/PATCH/properties/desired/"); string(m.Payload()) != `{"power_level":2,"$version":3}` {
		t.Fatalf("desired notification %s", m.Payload())
	}
	if n := count(byPlantAndCell); n != 1 {
		t.Fatalf("after reporting: %d by plant and cellular", n)
	}
}
