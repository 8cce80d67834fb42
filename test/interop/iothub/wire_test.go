// Package iothubwire checks that pkg/iothub puts on the wire what the
// official Azure IoT Hub Node service SDK (azure-iothub) puts there, for the
// same calls against the same embedded hub.
package iothubwire

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
	"github.com/twinsync/twinsync/test/interop/nodetest"
)

const (
	deviceID = "wire-device"
	// Three devices besides deviceID make two pages of two.
	querySQL = "SELECT * FROM devices"
)

var queryDevices = []string{"wire-q1", "wire-q2", "wire-q3"}

// exchange is one request as the hub received it, with the continuation
// token the hub answered (for query paging).
type exchange struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	AnsweredContinuation   string
	Status                 int
}

// recorder is a TLS reverse proxy in front of the hub that records every
// exchange. It serves the hub's own certificate, so clients trust it as the
// hub.
type recorder struct {
	mu        sync.Mutex
	exchanges []exchange
}

func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.exchanges
	r.exchanges = nil
	return out
}

func startRecorder(t *testing.T, h *hubtest.Hub) (port string, rec *recorder) {
	t.Helper()
	rec = &recorder{}
	target := &url.URL{Scheme: "https", Host: h.HTTPSAddr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.CAPool, ServerName: "localhost", MinVersion: tls.VersionTLS12}},
		ModifyResponse: func(resp *http.Response) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			last := &rec.exchanges[len(rec.exchanges)-1]
			last.AnsweredContinuation = resp.Header.Get("x-ms-continuation")
			last.Status = resp.StatusCode
			return nil
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec.mu.Lock()
		rec.exchanges = append(rec.exchanges, exchange{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   handler,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{h.ServerCertificate()}, MinVersion: tls.VersionTLS12},
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, rec
}

// TestWireMatchesNodeSDK runs the same calls with azure-iothub and with
// pkg/iothub and compares method, path, api-version, If-Match, content
// type, paging headers and body of each request.
func TestWireMatchesNodeSDK(t *testing.T) {
	nodetest.Require(t, ".")

	h := hubtest.Start(t, hubtest.InMemory(), hubtest.Hostname("localhost"))
	for _, id := range queryDevices {
		if _, err := h.RegisterDevice(id); err != nil {
			t.Fatal(err)
		}
	}
	port, rec := startRecorder(t, h)

	runNode(t, h, port)
	node := rec.take()
	runGo(t, h, port)
	goReqs := rec.take()

	names := []string{"create", "get twin", "conditional update", "unconditional update", "query page 1", "query page 2", "delete"}
	if len(node) != len(names) || len(goReqs) != len(names) {
		t.Fatalf("recorded %d Node and %d Go requests, want %d each:\nnode %v\ngo   %v", len(node), len(goReqs), len(names), summary(node), summary(goReqs))
	}
	for i, name := range names {
		n, g := node[i], goReqs[i]
		t.Run(name, func(t *testing.T) {
			compare(t, "method", n.Method, g.Method)
			compare(t, "path", n.Path, g.Path)
			compare(t, "api-version", queryParam(n.RawQuery, "api-version"), queryParam(g.RawQuery, "api-version"))
			compare(t, "If-Match", n.Header.Get("If-Match"), g.Header.Get("If-Match"))
			compare(t, "Content-Type", n.Header.Get("Content-Type"), g.Header.Get("Content-Type"))
			compare(t, "x-ms-max-item-count", n.Header.Get("x-ms-max-item-count"), g.Header.Get("x-ms-max-item-count"))
			compare(t, "x-ms-continuation present", n.Header.Get("x-ms-continuation") != "", g.Header.Get("x-ms-continuation") != "")
			compareJSON(t, n.Body, g.Body)
			for who, ex := range map[string]exchange{"node": n, "go": g} {
				if ex.Status >= 300 {
					t.Errorf("%s request answered %d", who, ex.Status)
				}
				if !strings.HasPrefix(ex.Header.Get("Authorization"), "SharedAccessSignature sr=") || ex.Header.Get("Request-Id") == "" {
					t.Errorf("%s request lacks Authorization or Request-Id", who)
				}
			}
		})
	}
	// Each client echoes the continuation token of page 1 on page 2.
	for who, reqs := range map[string][]exchange{"node": node, "go": goReqs} {
		p1, p2 := reqs[4], reqs[5]
		if p1.AnsweredContinuation == "" || p2.Header.Get("x-ms-continuation") != p1.AnsweredContinuation {
			t.Errorf("%s: page 2 sent continuation %q, page 1 was answered %q", who, p2.Header.Get("x-ms-continuation"), p1.AnsweredContinuation)
		}
	}
}

func runNode(t *testing.T, h *hubtest.Hub, port string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "wire.js")
	cmd.Env = nodetest.Env([]string{"NODE_EXTRA_CA_CERTS"},
		"NODE_EXTRA_CA_CERTS="+h.CAFile,
		"SERVICE_CONNECTION_STRING="+h.ServiceConnectionString,
		"HUB_PORT="+port,
		"DEVICE_ID="+deviceID,
		"QUERY="+querySQL,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("wire.js:\n%s", out)
	if strings.Contains(string(out), h.ServiceConnectionString) {
		t.Error("wire.js printed the connection string")
	}
	if err != nil {
		t.Fatalf("wire.js: %v", err)
	}
}

// runGo makes the same calls with pkg/iothub. HostName stays "localhost"
// for the token, as in Node; only the dialled address carries the port.
func runGo(t *testing.T, h *hubtest.Hub, port string) {
	t.Helper()
	ctx := context.Background()
	cs, err := sas.ParseConnectionString(h.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := cs.TokenSource()
	if err != nil {
		t.Fatal(err)
	}
	c, err := iothub.New("localhost:"+port, tokens, iothub.WithRootCAs(h.CAPool), iothub.WithLimits(iothub.NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDevice(ctx, &iothub.Device{DeviceID: deviceID}); err != nil {
		t.Fatalf("create: %v", err)
	}
	tw, err := c.GetTwin(ctx, deviceID)
	if err != nil {
		t.Fatalf("get twin: %v", err)
	}
	conditional := map[string]any{
		"tags":       map[string]any{"location": map[string]any{"region": "US", "plant": "Redmond43"}},
		"properties": map[string]any{"desired": map[string]any{"power_level": 1}},
	}
	if _, err := c.UpdateTwin(ctx, deviceID, conditional, tw.ETag); err != nil {
		t.Fatalf("conditional update: %v", err)
	}
	unconditional := map[string]any{"properties": map[string]any{"desired": map[string]any{"power_level": 2, "mode": nil}}}
	if _, err := c.UpdateTwin(ctx, deviceID, unconditional, iothub.ETagAny); err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	pager := c.Query(querySQL, iothub.WithPageSize(2))
	for i := range 2 {
		if _, err := pager.NextPage(ctx); err != nil {
			t.Fatalf("query page %d: %v", i+1, err)
		}
	}
	if err := c.DeleteDevice(ctx, deviceID, iothub.ETagAny); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func compare(t *testing.T, what string, node, goValue any) {
	t.Helper()
	if node != goValue {
		t.Errorf("%s: node %q, go %q", what, node, goValue)
	}
}

// compareJSON compares bodies as JSON values: key order is not part of the
// contract, every key and value is.
func compareJSON(t *testing.T, node, goBody []byte) {
	t.Helper()
	if len(node) == 0 || len(goBody) == 0 {
		if len(node) != len(goBody) {
			t.Errorf("body: node %q, go %q", node, goBody)
		}
		return
	}
	var n, g any
	if err := json.Unmarshal(node, &n); err != nil {
		t.Fatalf("node body: %v", err)
	}
	if err := json.Unmarshal(goBody, &g); err != nil {
		t.Fatalf("go body: %v", err)
	}
	if !reflect.DeepEqual(n, g) {
		t.Errorf("body: node %s, go %s", node, goBody)
	}
}

func queryParam(raw, name string) string {
	v, _ := url.ParseQuery(raw)
	return v.Get(name)
}

func summary(ex []exchange) []string {
	out := make([]string, len(ex))
	for i, e := range ex {
		out[i] = e.Method + " " + e.Path
	}
	return out
}
