package device_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// service plays the cloud side of the tutorial against the real embedded
// hub over HTTPS: it writes desired properties and reads twins. It is a few
// lines of net/http so this package's tests depend on the hub alone.
type service struct {
	h      *hubtest.Hub
	cs     *sas.ConnectionString
	client *http.Client
}

func newService(t *testing.T, h *hubtest.Hub) *service {
	t.Helper()
	cs, err := sas.ParseConnectionString(h.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	return &service{h: h, cs: cs, client: h.HTTPClient()}
}

func (s *service) do(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+s.cs.HostName+path+"?api-version=2021-04-12", r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", sas.Sign(s.cs.HostName, s.cs.SharedAccessKeyName, s.cs.SharedAccessKey, time.Now().Add(time.Hour)))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if method == http.MethodPatch {
		req.Header.Set("If-Match", `"*"`)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out
}

// patchDesired merges desired into the twin and returns the new desired
// $version.
func (s *service) patchDesired(t *testing.T, deviceID string, desired map[string]any) int64 {
	t.Helper()
	twin := s.do(t, http.MethodPatch, "/twins/"+url.PathEscape(deviceID), map[string]any{"properties": map[string]any{"desired": desired}})
	return int64(twin["properties"].(map[string]any)["desired"].(map[string]any)["$version"].(float64))
}

// reported returns the twin's reported properties.
func (s *service) reported(t *testing.T, deviceID string) map[string]any {
	t.Helper()
	twin := s.do(t, http.MethodGet, "/twins/"+url.PathEscape(deviceID), nil)
	return twin["properties"].(map[string]any)["reported"].(map[string]any)
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
