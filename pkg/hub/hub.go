package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twinsync/twinsync/pkg/query"
	"github.com/twinsync/twinsync/pkg/twin"
)

// Config configures a Hub. The zero value of every field has a usable
// default except that either DataDir or InMemory should be set.
type Config struct {
	// Hostname is the hub name used in connection strings, SAS scopes and
	// MQTT user names, optionally with a port ("localhost:8443"). Default
	// "localhost".
	Hostname string
	// HTTPSAddr is the REST listen address. Default ":8443".
	HTTPSAddr string
	// MQTTAddr is the MQTT/TLS listen address. Default ":8883".
	MQTTAddr string
	// DataDir keeps the store, the CA, the server certificate and the
	// policies. Created if missing.
	DataDir string
	// InMemory keeps everything in memory and writes nothing, not even to
	// DataDir.
	InMemory bool
	// SANs are extra names (DNS or IP) for the server certificate.
	SANs []string
	// PolicyKeys, if set, gives the keys of standard policies (e.g. from a
	// Kubernetes Secret); they override stored keys.
	PolicyKeys PolicyKeys
	// Throttling enables simulated IoT Hub throttling; zero is off.
	Throttling Throttling
	// Logger receives operational logs; never secrets. Default: discard.
	Logger *slog.Logger
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
	// HTTPSListener and MQTTListener, if set, are plain TCP listeners the
	// hub serves on (adding TLS itself) instead of listening on HTTPSAddr
	// and MQTTAddr. They let a caller learn the ports before choosing a
	// Hostname that carries one. The hub closes them.
	HTTPSListener net.Listener
	MQTTListener  net.Listener
	// ObserveRequest, if set, is called with every REST request before it
	// is served (signature redacted), e.g. to compare clients' wire forms.
	ObserveRequest func(Request)
}

// Hub is a running embedded IoT Hub: HTTPS REST API, MQTT device endpoint
// and store. Create it with New, stop it with Close.
type Hub struct {
	cfg      Config
	now      func() time.Time
	log      *slog.Logger
	certs    *certificates
	policies map[string]*Policy
	auth     *authenticator
	throttle *throttler
	store    *store
	index    *twinIndex
	mqtt     *mqttEndpoint

	httpsListener net.Listener
	httpServer    *http.Server
	conns         connTracker
	wg            sync.WaitGroup
	closeOnce     sync.Once
	closeErr      error
}

// New creates the hub's certificates, policies and store, binds both
// listeners and starts serving. Listening on port 0 picks free ports; ask
// HTTPSAddr and MQTTAddr for them.
func New(cfg Config) (*Hub, error) {
	cfg = withDefaults(cfg)
	h := &Hub{cfg: cfg, now: cfg.Now, log: cfg.Logger, index: newTwinIndex()}
	dir := cfg.DataDir
	if cfg.InMemory {
		dir = ""
	} else if dir == "" {
		return nil, errors.New("hub: set DataDir or InMemory")
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var err error
	if h.certs, err = loadOrCreateCertificates(dir, serverNames(cfg.Hostname, cfg.SANs)); err != nil {
		return nil, err
	}
	if h.policies, err = loadOrCreatePolicies(dir, cfg.PolicyKeys); err != nil {
		return nil, err
	}
	if h.throttle, err = newThrottler(cfg.Throttling); err != nil {
		return nil, err
	}
	h.auth = &authenticator{hostname: cfg.Hostname, policies: h.policies, now: h.now}
	if h.store, err = openStore(dir); err != nil {
		return nil, err
	}
	if err := h.start(); err != nil {
		_ = h.store.close()
		return nil, err
	}
	return h, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.HTTPSAddr == "" {
		cfg.HTTPSAddr = ":8443"
	}
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = ":8883"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// start indexes the loaded records, resets connection states left over
// from a previous run and starts both endpoints.
func (h *Hub) start() error {
	for _, rec := range h.store.all() {
		h.index.change(nil, rec)
	}
	h.store.onChange = h.index.change
	if err := h.resetConnectionStates(); err != nil {
		return err
	}
	tlsConfig := h.certs.tlsConfig()
	var err error
	// Listen order matters only for errors; both listeners close on failure.
	mqttLn := h.cfg.MQTTListener
	if mqttLn == nil {
		if mqttLn, err = net.Listen("tcp", h.cfg.MQTTAddr); err != nil {
			return fmt.Errorf("hub: mqtt listener: %w", err)
		}
	}
	if h.mqtt, err = newMQTTEndpoint(h, tls.NewListener(mqttLn, tlsConfig), h.log.With("endpoint", "mqtt")); err != nil {
		_ = mqttLn.Close()
		return fmt.Errorf("hub: mqtt endpoint: %w", err)
	}
	ln := h.cfg.HTTPSListener
	if ln == nil {
		if ln, err = net.Listen("tcp", h.cfg.HTTPSAddr); err != nil {
			_ = h.mqtt.server.Close()
			return fmt.Errorf("hub: https listener: %w", err)
		}
	}
	h.httpsListener = ln
	handler := h.routes()
	if h.cfg.ObserveRequest != nil {
		handler = observe(handler, h.cfg.ObserveRequest)
	}
	h.httpServer = &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		ConnState:         h.conns.track,
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := h.httpServer.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("https server stopped", "error", err)
		}
	}()
	if err := h.mqtt.server.Serve(); err != nil {
		_ = h.httpServer.Close()
		return fmt.Errorf("hub: mqtt server: %w", err)
	}
	h.log.Info("hub started", "hostname", h.cfg.Hostname, "https", h.HTTPSAddr(), "mqtt", h.MQTTAddr(), "inMemory", h.cfg.InMemory)
	return nil
}

// resetConnectionStates marks every identity disconnected: after a crash
// no device is connected yet. The writes run concurrently so that the
// group committer batches them instead of one fsync per identity.
func (h *Hub) resetConnectionStates() error {
	now := h.now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, commitBatchSize)
	for _, rec := range h.store.all() {
		if rec.Device.ConnectionState != stateConnected {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(key string) {
			defer func() { <-sem; wg.Done() }()
			_, err := h.store.update(key, func(cur *identity) (*identity, error) {
				next := cur.clone()
				next.Device.ConnectionState = stateDisconnected
				next.Device.ConnectionStateUpdatedTime = formatTime(now)
				next.refresh()
				return next, nil
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(rec.key())
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops both endpoints, waits for them and closes the store.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		// Shutdown would wait up to 5 s for connections a client opened but
		// never used; close those first so that stopping is immediate.
		h.conns.closeUnused()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs := []error{}
		if err := h.httpServer.Shutdown(ctx); err != nil {
			errs = append(errs, h.httpServer.Close())
		}
		errs = append(errs, h.mqtt.close())
		h.wg.Wait()
		errs = append(errs, h.store.close())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// Hostname returns the configured hub name.
func (h *Hub) Hostname() string { return h.cfg.Hostname }

// HTTPSAddr returns the bound REST address (host:port).
func (h *Hub) HTTPSAddr() string { return h.httpsListener.Addr().String() }

// MQTTAddr returns the bound MQTT/TLS address (host:port).
func (h *Hub) MQTTAddr() string { return h.mqtt.addr }

// CACertPEM returns the hub CA certificate in PEM form; trust it to talk to
// the hub.
func (h *Hub) CACertPEM() []byte { return append([]byte(nil), h.certs.caPEM...) }

// CACertPool returns a pool holding only the hub CA.
func (h *Hub) CACertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(h.certs.caCert)
	return pool
}

// CAFile returns the path of the CA PEM file in the data directory, or ""
// when the hub runs in memory.
func (h *Hub) CAFile() string {
	if h.cfg.InMemory {
		return ""
	}
	return filepath.Join(h.cfg.DataDir, caCertFile)
}

// ServerCertificate returns the TLS server certificate (for tests that
// build their own listeners, e.g. a reference server in a benchmark).
func (h *Hub) ServerCertificate() tls.Certificate { return h.certs.server }

// Policy returns a shared access policy by name.
func (h *Hub) Policy(name string) (Policy, bool) {
	p, ok := h.policies[name]
	if !ok {
		return Policy{}, false
	}
	return *p, true
}

// ServiceConnectionString returns the connection string of a policy, e.g.
// "iothubowner". It is a secret.
func (h *Hub) ServiceConnectionString(policy string) (string, error) {
	p, ok := h.policies[policy]
	if !ok {
		return "", fmt.Errorf("hub: no policy %q", policy)
	}
	return "HostName=" + h.cfg.Hostname + ";SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.PrimaryKey, nil
}

// DeviceConnectionString returns the connection string of a registered
// device (moduleID "") or module with its primary key. It is a secret.
func (h *Hub) DeviceConnectionString(deviceID, moduleID string) (string, error) {
	rec := h.store.get(query.Key(deviceID, moduleID))
	if rec == nil {
		return "", fmt.Errorf("hub: identity %q is not registered", query.Key(deviceID, moduleID))
	}
	if rec.Device.Authentication.Type != authSAS {
		return "", fmt.Errorf("hub: identity %q does not use SAS keys", query.Key(deviceID, moduleID))
	}
	cs := "HostName=" + h.cfg.Hostname + ";DeviceId=" + deviceID
	if moduleID != "" {
		cs += ";ModuleId=" + moduleID
	}
	return cs + ";SharedAccessKey=" + rec.Device.Authentication.SymmetricKey.PrimaryKey, nil
}

// RegisterDevice creates a device identity with generated keys, as PUT
// /devices/{id} does, and returns it. It fails if the id exists.
func (h *Hub) RegisterDevice(deviceID string) (Device, error) {
	if err := validateID("device", deviceID); err != nil {
		return Device{}, err
	}
	rec, err := h.store.update(deviceID, func(cur *identity) (*identity, error) {
		if cur != nil {
			return nil, errDeviceExists(deviceID)
		}
		return h.newIdentity(Device{DeviceID: deviceID}, h.now())
	})
	if err != nil {
		return Device{}, err
	}
	return rec.Device, nil
}

// RegisterModule creates a module identity with generated keys on a
// registered device, as PUT /devices/{id}/modules/{mid} does.
func (h *Hub) RegisterModule(deviceID, moduleID string) (Device, error) {
	if err := validateID("module", moduleID); err != nil {
		return Device{}, err
	}
	if h.store.get(deviceID) == nil {
		return Device{}, errDeviceNotFound(deviceID)
	}
	key := query.Key(deviceID, moduleID)
	rec, err := h.store.update(key, func(cur *identity) (*identity, error) {
		if cur != nil {
			return nil, errModuleExists(deviceID, moduleID)
		}
		return h.newIdentity(Device{DeviceID: deviceID, ModuleID: moduleID}, h.now())
	})
	if err != nil {
		return Device{}, err
	}
	return rec.Device, nil
}

// Twin returns a copy of an identity's twin, as GET /twins shows it.
func (h *Hub) Twin(deviceID, moduleID string) (*twin.Twin, bool) {
	rec := h.store.get(query.Key(deviceID, moduleID))
	if rec == nil {
		return nil, false
	}
	return rec.Twin.Clone(), true
}

// Device returns an identity's registry entry, as GET /devices shows it.
func (h *Hub) Device(deviceID, moduleID string) (Device, bool) {
	rec := h.store.get(query.Key(deviceID, moduleID))
	if rec == nil {
		return Device{}, false
	}
	d := rec.Device
	d.ParentScopes = append([]string(nil), d.ParentScopes...)
	return d, true
}

// TelemetryCount returns how many telemetry messages the hub accepted from
// an identity since it started.
func (h *Hub) TelemetryCount(deviceID, moduleID string) int64 {
	return h.mqtt.telemetryCount(query.Key(deviceID, moduleID))
}

// Connected reports whether an identity has a live MQTT connection.
func (h *Hub) Connected(deviceID, moduleID string) bool {
	h.mqtt.mu.Lock()
	defer h.mqtt.mu.Unlock()
	_, ok := h.mqtt.sessions[query.Key(deviceID, moduleID)]
	return ok
}

// isHubHost reports whether host names this hub (case-insensitive, with or
// without the configured port).
func (h *Hub) isHubHost(host string) bool {
	return strings.EqualFold(host, h.cfg.Hostname) || strings.EqualFold(host, hostOnly(h.cfg.Hostname))
}

// connTracker records the state of HTTPS connections so that Close can drop
// the ones that never carried a request.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

func (c *connTracker) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[net.Conn]http.ConnState{}
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(c.conns, conn)
	default:
		c.conns[conn] = state
	}
}

// closeUnused closes connections that are new (no request yet) or idle.
func (c *connTracker) closeUnused() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn, state := range c.conns {
		if state == http.StateNew || state == http.StateIdle {
			_ = conn.Close()
		}
	}
}
