package device_test

import (
	"encoding/json"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
)

// service plays the cloud side of the tutorial against the real embedded
// hub with the project's service client: it writes desired properties and
// reads twins.
type service struct {
	c *iothub.Client
}

func newService(t *testing.T, h *hubtest.Hub) *service {
	t.Helper()
	c, err := iothub.NewFromConnectionString(h.ServiceConnectionString,
		iothub.WithRootCAs(h.CAPool), iothub.WithLimits(iothub.NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	return &service{c: c}
}

// patchDesired merges desired into the twin and returns the new desired
// $version.
func (s *service) patchDesired(t *testing.T, deviceID string, desired map[string]any) int64 {
	t.Helper()
	tw, err := s.c.UpdateTwin(t.Context(), deviceID, map[string]any{"properties": map[string]any{"desired": desired}}, iothub.ETagAny)
	if err != nil {
		t.Fatal(err)
	}
	return tw.Properties.Desired.Version
}

// reported returns the device twin's reported properties.
func (s *service) reported(t *testing.T, deviceID string) map[string]any {
	t.Helper()
	tw, err := s.c.GetTwin(t.Context(), deviceID)
	if err != nil {
		t.Fatal(err)
	}
	return plainJSON(t, tw.Properties.Reported.Values)
}

// moduleReported returns a module twin's reported properties.
func (s *service) moduleReported(t *testing.T, deviceID, moduleID string) map[string]any {
	t.Helper()
	tw, err := s.c.GetModuleTwin(t.Context(), deviceID, moduleID)
	if err != nil {
		t.Fatal(err)
	}
	return plainJSON(t, tw.Properties.Reported.Values)
}

// addModule creates a module identity.
func (s *service) addModule(t *testing.T, deviceID, moduleID string) {
	t.Helper()
	if _, err := s.c.CreateModule(t.Context(), &iothub.Device{DeviceID: deviceID, ModuleID: moduleID}); err != nil {
		t.Fatal(err)
	}
}

// plainJSON returns v as encoding/json decodes it into any (numbers as
// float64), the form the assertions compare with.
func plainJSON(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// faultProxy forwards TCP to the hub's MQTT port and can cut every
// connection and refuse new ones, to take a device offline without the
// device's cooperation. TLS passes through untouched.
type faultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go p.serve()
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		go pipe(in, out)
		go pipe(out, in)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *faultProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
