package hub_test

import (
	"os"
	"path/filepath"
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

// TestCrashImageStartsDisconnected copies the data directory while a device
// is connected (what a crash leaves behind) and starts a hub on the copy:
// nobody is connected there.
func TestCrashImageStartsDisconnected(t *testing.T) {
	dir := t.TempDir()
	h := hubtest.Start(t, hubtest.DataDir(dir))
	connectDevice(t, h, h.AddDevice(t, "d1"))
	svc := newService(t, h, h.ServiceConnectionString)
	if st := svc.do("GET", "/twins/d1", nil).json(t)["connectionState"]; st != "Connected" {
		t.Fatalf("state before the crash: %v", st)
	}
	image := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(image, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h2 := hubtest.Start(t, hubtest.DataDir(image))
	svc2 := newService(t, h2, h2.ServiceConnectionString)
	tw := svc2.do("GET", "/twins/d1", nil).json(t)
	dev := svc2.do("GET", "/devices/d1", nil).json(t)
	if tw["connectionState"] != "Disconnected" || dev["connectionState"] != "Disconnected" {
		t.Fatalf("after restart from the crash image: twin %v, device %v", tw["connectionState"], dev["connectionState"])
	}
}
