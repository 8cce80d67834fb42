package hub_test

import (
	"os"
	"strings"
	"testing"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

// TestRestartKeepsEverything writes through every path (registry, service
// twin write, device reported patch), restarts the hub on the same data
// directory and compares.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	h := hubtest.Start(t, hubtest.DataDir(dir))
	svc := newService(t, h, h.ServiceConnectionString)
	dev := createDevice(t, svc, "d1")
	svc.do("PATCH", "/twins/d1", `{"tags":{"plant":"Redmond43"},"properties":{"desired":{"power_level":1}}}`)
	svc.do("PUT", "/devices/d1/modules/m1", map[string]any{})
	d := connectDevice(t, h, h.DeviceConnectionString(t, "d1"))
	d.subscribe("$iothub/twin/res/#", 1)
	if status, _, _ := d.request("$iothub/twin/PATCH/properties/reported/", 1, `{"connectivity":"cellular"}`); status != "204" {
		t.Fatalf("reported patch: %s", status)
	}
	d.client.Disconnect(0)
	eventually(t, "disconnect recorded", func() bool {
		return svc.do("GET", "/twins/d1", nil).json(t)["connectionState"] == "Disconnected"
	})
	twinBefore := string(svc.do("GET", "/twins/d1", nil).body)
	devBefore := string(svc.do("GET", "/devices/d1", nil).body)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := hubtest.Start(t, hubtest.DataDir(dir))
	svc2 := newService(t, h2, h2.ServiceConnectionString)
	if got := string(svc2.do("GET", "/twins/d1", nil).body); got != twinBefore {
		t.Fatalf("twin changed across restart:\n%s\n%s", twinBefore, got)
	}
	if got := string(svc2.do("GET", "/devices/d1", nil).body); got != devBefore {
		t.Fatalf("device changed across restart:\n%s\n%s", devBefore, got)
	}
	if r := svc2.do("GET", "/twins/d1/modules/m1", nil); r.status != 200 {
		t.Fatalf("module lost: %d", r.status)
	}
	var rows []map[string]any
	mustUnmarshal(t, svc2.do("POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE tags.plant = 'Redmond43'"}`).body, &rows)
	if len(rows) != 1 {
		t.Fatalf("index not rebuilt: %d rows", len(rows))
	}
	// The old device key still works: keys were kept.
	keys := dev["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	if cs := h2.DeviceConnectionString(t, "d1"); !strings.Contains(cs, keys["primaryKey"].(string)) {
		t.Fatal("device key changed across restart")
	}
	connectDevice(t, h2, h2.DeviceConnectionString(t, "d1"))
}

func TestInMemoryWritesNothing(t *testing.T) {
	dir := t.TempDir()
	h := hubtest.Start(t, hubtest.InMemory(), hubtest.DataDir(dir))
	svc := newService(t, h, h.ServiceConnectionString)
	createDevice(t, svc, "d1")
	svc.do("PATCH", "/twins/d1", `{"tags":{"a":1}}`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("in-memory hub wrote %d files", len(entries))
	}
}
