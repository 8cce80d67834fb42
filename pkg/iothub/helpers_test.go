package iothub

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// This file holds a scripted TLS server for the behaviour the embedded hub
// cannot produce on demand (error body shape B, 5xx answers, Retry-After
// headers, stalled answers). It is a stand-in, said so here and in each test
// that uses it; everything the hub can do is tested against the real hub
// (hub_test.go).

const scriptKeyB64 = "c2NyaXB0ZWQtc2VydmVyLWtleS0wMTIzNDU2Nzg5YWJjZGVm"

// recorded is one request the scripted server saw.
type recorded struct {
	Method, Path, RawPath, RawQuery string
	Header                          http.Header
	Body                            string
}

// answer is a scripted response.
type answer struct {
	status int
	header map[string]string
	body   string
}

// scriptServer answers requests from a queue of answers (the last one
// repeats) and records every request.
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []answer
	requests []recorded
	// handler, when set, replaces the answer queue.
	handler http.HandlerFunc
}

func newScriptServer(t *testing.T, answers ...answer) *scriptServer {
	t.Helper()
	s := &scriptServer{answers: answers}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, recorded{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(body)})
	handler := s.handler
	var a answer
	if len(s.answers) > 0 {
		a = s.answers[0]
		if len(s.answers) > 1 {
			s.answers = s.answers[1:]
		}
	}
	s.mu.Unlock()
	if handler != nil {
		handler(w, r)
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	if a.status == 0 {
		a.status = http.StatusOK
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (s *scriptServer) seen() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.requests...)
}

// host returns the server's host:port.
func (s *scriptServer) host() string { return strings.TrimPrefix(s.URL, "https://") }

// serviceCS returns a service connection string for the scripted server.
func (s *scriptServer) serviceCS() string {
	return "HostName=" + s.host() + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + scriptKeyB64
}

// fakeClock drives the client's clock and sleeps: a sleep advances the
// clock and is recorded instead of waited for.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// newScriptClient returns a client of s that trusts its certificate, has no
// rate limits and uses clock for retry waits.
func newScriptClient(t *testing.T, s *scriptServer, clock *fakeClock, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithRootCAs(rootsOf(s)), WithLimits(NoLimits)}, opts...)
	c, err := NewFromConnectionString(s.serviceCS(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		c.now, c.sleep = clock.Now, clock.Sleep
	}
	return c
}

// rootsOf returns the pool that trusts the scripted server's certificate.
func rootsOf(s *scriptServer) *x509.CertPool {
	return s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

func testKey(t testing.TB) sas.Key {
	t.Helper()
	k, err := sas.ParseKey(scriptKeyB64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
