package iothub

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsCollectors checks that every metric is among Collectors (the
// operator registers them in controller-runtime's registry) and that no
// label carries a device id or a secret. It uses the scripted TLS server (helpers_test.go).
func TestMetricsCollectors(t *testing.T) {
	s := newScriptServer(t, answer{status: 429, header: map[string]string{"Retry-After": "1"}}, answer{body: twinJSON})
	slow := Limit{Rate: 1000, Burst: 1}
	c := newScriptClient(t, s, newFakeClock(), WithHubLabel("metrics-test"), WithLimits(Limits{slow, slow, slow, slow}))
	const device = "device-with-a-unique-id-4711"
	if _, err := c.GetTwin(context.Background(), device); err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(Collectors()...)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"twinsync_iothub_requests_total":           false,
		"twinsync_iothub_request_duration_seconds": false,
		"twinsync_iothub_throttled_total":          false,
		"twinsync_iothub_retries_total":            false,
		"twinsync_iothub_limiter_wait_seconds":     false,
	}
	for _, f := range families {
		if _, ok := want[f.GetName()]; !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), device) || strings.Contains(l.GetValue(), scriptKeyB64[:12]) || strings.Contains(l.GetValue(), "SharedAccessSignature") {
					t.Errorf("%s label %s=%q holds a device id or secret", f.GetName(), l.GetName(), l.GetValue())
				}
				if l.GetName() == "hub" && l.GetValue() == "metrics-test" {
					want[f.GetName()] = true
				}
			}
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s has no sample for this client", name)
		}
	}
}

// TestConnectionReuse checks that sequential and concurrent calls share
// keep-alive connections instead of dialling per request.
func TestConnectionReuse(t *testing.T) {
	s := &scriptServer{answers: []answer{{body: twinJSON}}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	var dials atomic.Int32
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			dials.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	c := newScriptClient(t, s, nil)
	for range 20 {
		if _, err := c.GetTwin(context.Background(), "d1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("20 sequential calls opened %d connections, want 1", n)
	}
}
