package hub_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

func TestThrottlingS1(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory(), hubtest.Throttled("S1", 1))
	svc := newService(t, h, h.ServiceConnectionString)
	createDevice(t, svc, "d1")

	t.Run("queries: 20 per minute", func(t *testing.T) {
		for i := range 20 {
			if r := svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`); r.status != 200 {
				t.Fatalf("query %d: %d %s", i, r.status, r.body)
			}
		}
		r := svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`)
		if r.status != 429 || r.errorCode(t) != "ThrottlingException" {
			t.Fatalf("21st query: %d %s", r.status, r.body)
		}
		// 20 per minute: the next token is about 3 s away.
		if ra := r.header.Get("Retry-After"); ra != "3" && ra != "2" {
			t.Fatalf("Retry-After %q, want about 3 seconds", ra)
		}
	})

	t.Run("registry: 100 per minute", func(t *testing.T) {
		throttled := 0
		for range 101 {
			if r := svc.do("GET", "/devices/d1", nil); r.status == 429 {
				throttled++
			}
		}
		// createDevice already used one operation.
		if throttled != 2 {
			t.Fatalf("%d of 101 registry reads throttled, want 2", throttled)
		}
	})

	t.Run("twin updates over MQTT: 50 per second", func(t *testing.T) {
		d := connectDevice(t, h, h.DeviceConnectionString(t, "d1"))
		d.subscribe("$iothub/twin/res/#", 0)
		const n = 150
		start := time.Now()
		for i := range n {
			d.client.Publish(fmt.Sprintf("$iothub/twin/PATCH/properties/reported/?$rid=%d", i), 0, false, `{"a":1}`)
		}
		var ok, throttled int
		for range n {
			m := d.await("$iothub/twin/res/")
			switch {
			case strings.HasPrefix(m.Topic(), "$iothub/twin/res/204/"):
				ok++
			case strings.HasPrefix(m.Topic(), "$iothub/twin/res/429/"):
				checkErrorCode(429001)(t, m.Topic(), m.Payload())
				throttled++
			default:
				t.Fatalf("unexpected response %s %s", m.Topic(), m.Payload())
			}
		}
		// A burst of 50 plus what refills until the last answer.
		maxOK := 50 + int(time.Since(start).Seconds()*50) + 1
		if throttled == 0 || ok < 50 || ok > maxOK {
			t.Fatalf("%d accepted, %d throttled (at most %d may pass)", ok, throttled, maxOK)
		}
	})
}

func TestNoThrottlingByDefault(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	for i := range 40 {
		if r := svc.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`); r.status != 200 {
			t.Fatalf("query %d: %d", i, r.status)
		}
	}
}
