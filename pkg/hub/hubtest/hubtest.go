// Package hubtest starts an embedded IoT Hub (pkg/hub) inside a Go test:
// HTTPS REST and MQTT/TLS on free loopback ports, state in t.TempDir(),
// stopped when the test ends.
//
//	h := hubtest.Start(t)
//	deviceCS := h.AddDevice(t, "dev1")
//	// h.ServiceConnectionString, h.CAPool, h.CAFile, h.MQTTAddr ...
//
// Connection strings carry HostName=127.0.0.1:<https port>, so a service
// client reaches the REST API with the host name alone. Device connection
// strings add GatewayHostName=127.0.0.1:<mqtt port>: the MQTT socket goes
// there while the MQTT user name and the SAS resource keep HostName, exactly
// as IoT Edge gateways work with the official SDKs.
package hubtest

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub"
)

// Hub is a hub started for a test, with everything a client needs.
type Hub struct {
	*hub.Hub
	// ServiceConnectionString is the iothubowner connection string.
	ServiceConnectionString string
	// CAPool trusts the hub's CA (and only it).
	CAPool *x509.CertPool
	// CAFile is a PEM file holding the hub CA certificate.
	CAFile string
	// HTTPSAddr and MQTTAddr are the bound host:port of both endpoints.
	HTTPSAddr string
	MQTTAddr  string
	// DataDir is the hub's data directory ("" with InMemory).
	DataDir string

	recorder *recorder
}

// recorder collects requests for RecordRequests.
type recorder struct {
	mu       sync.Mutex
	requests []hub.Request
}

func (r *recorder) add(req hub.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, req)
	r.mu.Unlock()
}

// Requests returns the REST requests received so far (with
// RecordRequests; nil otherwise), oldest first.
func (h *Hub) Requests() []hub.Request {
	if h.recorder == nil {
		return nil
	}
	h.recorder.mu.Lock()
	defer h.recorder.mu.Unlock()
	return append([]hub.Request(nil), h.recorder.requests...)
}

// ResetRequests forgets the recorded requests.
func (h *Hub) ResetRequests() {
	if h.recorder != nil {
		h.recorder.mu.Lock()
		h.recorder.requests = nil
		h.recorder.mu.Unlock()
	}
}

type options struct {
	cfg    hub.Config
	record bool
}

// Option changes how Start configures the hub.
type Option func(*options)

// InMemory keeps the hub's state in memory (no fsync per write): faster
// for tests that do not test durability.
func InMemory() Option { return func(o *options) { o.cfg.InMemory = true } }

// DataDir uses dir instead of a fresh t.TempDir(), e.g. to restart a hub
// on the same state.
func DataDir(dir string) Option { return func(o *options) { o.cfg.DataDir = dir } }

// Throttled enables simulated IoT Hub throttling for a tier and unit count
// (e.g. "S1", 1).
func Throttled(tier string, units int) Option {
	return func(o *options) { o.cfg.Throttling = hub.Throttling{Tier: tier, Units: units} }
}

// RecordRequests keeps every REST request the hub receives (signatures
// redacted); read them with Requests.
func RecordRequests() Option { return func(o *options) { o.record = true } }

// Logger sends the hub's logs to l (default: discarded).
func Logger(l *slog.Logger) Option { return func(o *options) { o.cfg.Logger = l } }

// Clock sets the hub's clock.
func Clock(now func() time.Time) Option { return func(o *options) { o.cfg.Now = now } }

// Hostname sets the hub name used in connection strings and SAS scopes
// instead of 127.0.0.1:<https port>. Clients must then reach the hub by
// other means (GatewayHostName, a custom dialer).
func Hostname(name string) Option { return func(o *options) { o.cfg.Hostname = name } }

// Start starts a hub on free loopback ports and stops it when the test
// ends. It fails the test on any error.
func Start(t testing.TB, opts ...Option) *Hub {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	httpsLn := listen(t)
	mqttLn := listen(t)
	cfg := o.cfg
	cfg.HTTPSListener, cfg.MQTTListener = httpsLn, mqttLn
	if cfg.Hostname == "" {
		cfg.Hostname = httpsLn.Addr().String()
	}
	if !cfg.InMemory && cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	var rec *recorder
	if o.record {
		rec = &recorder{}
		cfg.ObserveRequest = rec.add
	}
	h, err := hub.New(cfg)
	if err != nil {
		httpsLn.Close()
		mqttLn.Close()
		t.Fatalf("hubtest: start hub: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("hubtest: stop hub: %v", err)
		}
	})
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatalf("hubtest: %v", err)
	}
	caFile := h.CAFile()
	if caFile == "" {
		caFile = filepath.Join(t.TempDir(), "hub-ca.pem")
		if err := os.WriteFile(caFile, h.CACertPEM(), 0o644); err != nil {
			t.Fatalf("hubtest: write CA file: %v", err)
		}
	}
	return &Hub{
		Hub:                     h,
		ServiceConnectionString: cs,
		CAPool:                  h.CACertPool(),
		CAFile:                  caFile,
		HTTPSAddr:               h.HTTPSAddr(),
		MQTTAddr:                h.MQTTAddr(),
		DataDir:                 cfg.DataDir,
		recorder:                rec,
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hubtest: listen: %v", err)
	}
	return ln
}

// AddDevice registers a device with generated keys and returns its
// connection string (HostName, DeviceId, SharedAccessKey and
// GatewayHostName pointing at the MQTT endpoint).
func (h *Hub) AddDevice(t testing.TB, deviceID string) string {
	t.Helper()
	if _, err := h.RegisterDevice(deviceID); err != nil {
		t.Fatalf("hubtest: register device %q: %v", deviceID, err)
	}
	return h.DeviceConnectionString(t, deviceID)
}

// DeviceConnectionString returns the connection string of a registered
// device, with GatewayHostName pointing at the MQTT endpoint.
func (h *Hub) DeviceConnectionString(t testing.TB, deviceID string) string {
	t.Helper()
	cs, err := h.Hub.DeviceConnectionString(deviceID, "")
	if err != nil {
		t.Fatalf("hubtest: %v", err)
	}
	return cs + ";GatewayHostName=" + h.MQTTAddr
}

// AddModule registers a module on a registered device and returns its
// connection string (with ModuleId and GatewayHostName).
func (h *Hub) AddModule(t testing.TB, deviceID, moduleID string) string {
	t.Helper()
	if _, err := h.RegisterModule(deviceID, moduleID); err != nil {
		t.Fatalf("hubtest: register module %q on %q: %v", moduleID, deviceID, err)
	}
	cs, err := h.Hub.DeviceConnectionString(deviceID, moduleID)
	if err != nil {
		t.Fatalf("hubtest: %v", err)
	}
	return cs + ";GatewayHostName=" + h.MQTTAddr
}

// TLSConfig returns a client TLS configuration that trusts the hub CA.
func (h *Hub) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: h.CAPool, MinVersion: tls.VersionTLS12}
}

// HTTPClient returns an HTTP client that trusts the hub CA.
func (h *Hub) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}, Timeout: 30 * time.Second}
}

// MQTTBroker returns the MQTT broker URL for paho: tls://host:port.
func (h *Hub) MQTTBroker() string { return "tls://" + h.MQTTAddr }
