package device

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// Defaults for the zero values of [Config].
const (
	DefaultTokenLifetime  = time.Hour
	DefaultRenewBefore    = 15 * time.Minute
	DefaultRequestTimeout = 30 * time.Second
	DefaultConnectTimeout = 30 * time.Second
	DefaultKeepAlive      = 60 * time.Second
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	defaultMQTTPort       = "8883"
)

// Version is the client version reported in DeviceClientType.
const Version = "0.1.0"

// Config configures a [Client]. Only ConnectionString is required.
type Config struct {
	// ConnectionString is a device or module connection string with a
	// SharedAccessKey or a SharedAccessSignature. It is a secret.
	ConnectionString string
	// RootCAs verifies the hub's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// TLSConfig is an optional base TLS configuration (cloned). RootCAs, if
	// set, takes precedence over its RootCAs.
	TLSConfig *tls.Config
	// TokenLifetime is the validity of each minted SAS token.
	TokenLifetime time.Duration
	// RenewBefore is how long before expiry the client reconnects with a new
	// token. Zero means 15 minutes, capped at a quarter of TokenLifetime.
	RenewBefore time.Duration
	// RequestTimeout bounds each twin request, reconnects included.
	RequestTimeout time.Duration
	// ConnectTimeout bounds one connection attempt (TCP, TLS and CONNACK).
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive interval.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound the delay between connection attempts.
	MinBackoff, MaxBackoff time.Duration
	// IgnoreDesired skips the desired-property subscription and the GET on
	// connect; DesiredPatches then never yields. For load generators that
	// only report.
	IgnoreDesired bool
	// ProductInfo is appended to DeviceClientType in the MQTT user name.
	ProductInfo string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.TokenLifetime, DefaultTokenLifetime)
	def(&c.RenewBefore, min(DefaultRenewBefore, c.TokenLifetime/4))
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.KeepAlive, DefaultKeepAlive)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Stats are counters of a client's life, for health checks and tests.
type Stats struct {
	// Connects counts successful connections (the first one included).
	Connects int64
	// DesiredVersion is the desired $version last delivered.
	DesiredVersion int64
	// DroppedNotifications counts desired notifications not newer than the
	// state already delivered (the reconnect rule at work).
	DroppedNotifications int64
	// Resyncs counts GETs made because a notification was skipped.
	Resyncs int64
}

// Client is a device twin client. It is safe for concurrent use.
type Client struct {
	cfg       Config
	cs        *sas.ConnectionString
	clientID  string
	userName  string
	broker    string
	tlsConfig *tls.Config
	log       *slog.Logger

	mu      sync.Mutex
	sess    *session      // the live session, nil while (re)connecting
	ready   chan struct{} // closed while sess != nil
	started bool
	err     error // final error, set before done closes

	pmu     sync.Mutex
	pending map[string]chan response
	ridSeq  atomic.Uint64

	seq     *sequencer
	queue   *patchQueue
	desired chan DesiredPatch

	resync    chan struct{}
	reconnect chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}

	connects atomic.Int64
	resyncs  atomic.Int64
}

// New validates cfg and returns a client that is not connected yet.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	cs, err := sas.ParseConnectionString(cfg.ConnectionString)
	if err != nil {
		return nil, err
	}
	switch {
	case cs.DeviceID == "":
		return nil, fmt.Errorf("%w: a device or module connection string (with DeviceId) is required", sas.ErrConnectionString)
	case cs.X509:
		return nil, errors.New("x509 device authentication is not supported; use a SharedAccessKey")
	case cfg.RenewBefore >= cfg.TokenLifetime:
		return nil, fmt.Errorf("RenewBefore (%v) must be shorter than TokenLifetime (%v)", cfg.RenewBefore, cfg.TokenLifetime)
	}
	clientID := cs.DeviceID
	if cs.ModuleID != "" {
		clientID += "/" + cs.ModuleID
	}
	host, port := splitDialHost(cs.DialHost())
	c := &Client{
		cfg:       cfg,
		cs:        cs,
		clientID:  clientID,
		userName:  userName(cs.HostName, clientID, productInfo(cfg.ProductInfo)),
		broker:    "tls://" + net.JoinHostPort(host, port),
		tlsConfig: tlsConfig(cfg, host),
		log:       cfg.Logger.With("device", cs.DeviceID),
		ready:     make(chan struct{}),
		pending:   make(map[string]chan response),
		queue:     newPatchQueue(),
		desired:   make(chan DesiredPatch, 16),
		resync:    make(chan struct{}, 1),
		reconnect: make(chan struct{}, 1),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	if cs.ModuleID != "" {
		c.log = c.log.With("module", cs.ModuleID)
	}
	c.seq = newSequencer(c.queue.push)
	return c, nil
}

// Dial creates a client and connects it; see [New] and [Client.Connect].
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func productInfo(extra string) string {
	ua := fmt.Sprintf("twinsync-device/%s (%s; %s; %s)", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if extra != "" {
		ua += " " + extra
	}
	return ua
}

// splitDialHost splits host[:port], defaulting to the MQTT TLS port.
func splitDialHost(hp string) (host, port string) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		return h, p
	}
	return hp, defaultMQTTPort
}

func tlsConfig(cfg Config, serverName string) *tls.Config {
	tc := &tls.Config{}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
	}
	if cfg.RootCAs != nil {
		tc.RootCAs = cfg.RootCAs
	}
	if tc.ServerName == "" {
		tc.ServerName = serverName
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	return tc
}

// DeviceID returns the device id from the connection string.
func (c *Client) DeviceID() string { return c.cs.DeviceID }

// ModuleID returns the module id, empty for a device client.
func (c *Client) ModuleID() string { return c.cs.ModuleID }

// Connect opens the first session: it connects, subscribes and reads the
// twin (delivering the desired document as the first, full patch). It
// retries network failures with backoff until ctx ends, and returns at once
// when the hub refuses the credentials ([ErrRefused]) or its certificate does
// not verify ([ErrTLS]). Afterwards the client keeps itself connected until
// [Client.Close]. A failed Connect closes the client.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("device client: Connect called twice")
	}
	c.started = true
	c.mu.Unlock()

	first := make(chan error, 1)
	go c.queue.pump(c.desired, c.done)
	go c.run(first)
	select {
	case err := <-first:
		if err != nil {
			_ = c.Close()
			return err
		}
		return nil
	case <-ctx.Done():
		_ = c.Close()
		return fmt.Errorf("connecting device %q: %w", c.cs.DeviceID, ctx.Err())
	}
}

// DesiredPatches returns the channel of desired-property changes, in
// increasing $version order without duplicates. The first value after
// Connect is the full desired document. The channel is closed when the
// client is done. Read it promptly or set [Config.IgnoreDesired]; patches
// wait in an unbounded queue.
func (c *Client) DesiredPatches() <-chan DesiredPatch { return c.desired }

// Connected reports whether a session is up right now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// Done is closed when the client has stopped, after Close or a final error.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped: nil while running, [ErrClosed] after
// Close, or the final connection error.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	last, dropped := c.seq.stats()
	return Stats{
		Connects:             c.connects.Load(),
		DesiredVersion:       last,
		DroppedNotifications: dropped,
		Resyncs:              c.resyncs.Load(),
	}
}

// Reconnect asks for a planned reconnect with a fresh token, as done for
// renewal: requests in flight finish first and no reported patch is lost.
// It returns at once.
func (c *Client) Reconnect() {
	select {
	case c.reconnect <- struct{}{}:
	default:
	}
}

// Close disconnects, fails waiting requests with [ErrClosed] and closes the
// desired channel. It waits for the client's goroutines and is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	c.mu.Lock()
	started := c.started
	c.started = true // a later Connect must not start anything
	c.mu.Unlock()
	if !started {
		c.finish(ErrClosed)
		close(c.desired)
	}
	<-c.done
	return nil
}

// finish records the final error and closes done, once.
func (c *Client) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.err = err
	close(c.done)
}

// GetTwin reads the device view of the twin.
func (c *Client) GetTwin(ctx context.Context) (*Twin, error) {
	r, err := c.do(ctx, opGet, getTopic, []byte{})
	if err != nil {
		return nil, err
	}
	t, err := decodeTwin(r.body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opGet, err)
	}
	return t, nil
}

// UpdateReported sends a reported-property merge patch (a JSON object, or
// anything that marshals to one; a nil value deletes the key) and returns
// the reported $version it produced.
func (c *Client) UpdateReported(ctx context.Context, patch any) (int64, error) {
	payload, err := marshalPatch(patch)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %w", opReported, ErrInvalid, err)
	}
	r, err := c.do(ctx, opReported, reportedTopic, payload)
	if err != nil {
		return 0, err
	}
	return r.version, nil
}

const (
	opGet      = "get twin"
	opReported = "update reported"
)

func marshalPatch(patch any) ([]byte, error) {
	var b []byte
	switch p := patch.(type) {
	case json.RawMessage:
		b = p
	case []byte:
		b = p
	default:
		var err error
		if b, err = json.Marshal(patch); err != nil {
			return nil, err
		}
	}
	if trimmed := bytes.TrimLeft(b, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("a reported patch must be a JSON object")
	}
	return b, nil
}

// do sends a request on the current session, waiting for one if the client
// is reconnecting, and sends it again if the session is lost before the
// response arrives. RequestTimeout bounds the whole.
func (c *Client) do(ctx context.Context, op string, topic func(string) string, payload []byte) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	for {
		s, err := c.acquire(ctx)
		if err != nil {
			return response{}, requestError(op, err)
		}
		r, err, retry := c.roundTrip(ctx, s, topic, payload)
		s.release()
		if retry {
			continue
		}
		if err != nil {
			return response{}, requestError(op, err)
		}
		return r, checkResponse(op, r)
	}
}

func requestError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, ErrTimeout)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// acquire waits for a live session and registers a request on it.
func (c *Client) acquire(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ready := c.sess, c.ready
		c.mu.Unlock()
		if s != nil && s.acquire() {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
				return nil, fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return nil, ErrClosed
		}
	}
}

// roundTrip publishes one request on s and waits for its response. retry
// is true when s was lost first, so the request may not have been answered.
func (c *Client) roundTrip(ctx context.Context, s *session, topic func(string) string, payload []byte) (r response, err error, retry bool) {
	rid := strconv.FormatUint(c.ridSeq.Add(1), 10)
	ch := make(chan response, 1)
	c.pmu.Lock()
	c.pending[rid] = ch
	c.pmu.Unlock()
	defer func() {
		c.pmu.Lock()
		delete(c.pending, rid)
		c.pmu.Unlock()
	}()

	tok := s.mqtt.Publish(topic(rid), 1, false, payload)
	select {
	case <-tok.Done():
		if tok.Error() != nil {
			if s.isLost() {
				return response{}, nil, true
			}
			return response{}, fmt.Errorf("publishing: %w", tok.Error()), false
		}
	case <-s.lost:
		return response{}, nil, true
	case <-ctx.Done():
		return response{}, ctx.Err(), false
	case <-c.closing:
		return response{}, ErrClosed, false
	}
	select {
	case r := <-ch:
		return r, nil, false
	case <-s.lost:
		return response{}, nil, true
	case <-ctx.Done():
		return response{}, ctx.Err(), false
	case <-c.closing:
		return response{}, ErrClosed, false
	}
}

// run keeps the client connected until Close or a final error. first
// receives the outcome of the first connection.
func (c *Client) run(first chan<- error) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.MinBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.cfg.MaxBackoff,
	}
	bo.Reset()
	reported := false
	report := func(err error) {
		if !reported {
			reported = true
			first <- err
		}
	}
	for {
		s, err := c.dial()
		if err == nil {
			err = c.start(s)
		}
		if err != nil {
			if errors.Is(err, ErrClosed) || isFinal(err) {
				c.stop(err)
				report(err)
				return
			}
			delay := bo.NextBackOff()
			c.log.Warn("connecting to the hub failed; retrying", "error", err, "retryIn", delay)
			if !c.sleep(delay) {
				c.stop(ErrClosed)
				report(ErrClosed)
				return
			}
			continue
		}
		report(nil)
		reason := c.serve(s)
		c.endSession(s)
		if reason == reasonClosed {
			c.stop(ErrClosed)
			return
		}
		if reason == reasonLost {
			// A session that dies young (another process using the same
			// identity, a hub refusing after CONNACK) must not spin.
			if time.Since(s.started) < c.cfg.MaxBackoff {
				if !c.sleep(bo.NextBackOff()) {
					c.stop(ErrClosed)
					return
				}
			} else {
				bo.Reset()
			}
		}
	}
}

// sleep waits d or until Close; false means closing.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closing:
		return false
	}
}

// stop ends the client with err. Requests still waiting see done (in
// acquire) or closing (in roundTrip) and fail.
func (c *Client) stop(err error) { c.finish(err) }

// start subscribes on a fresh session, publishes it for requests and, unless
// desired properties are ignored, reads the twin to apply the reconnect rule.
func (c *Client) start(s *session) error {
	c.connects.Add(1)
	if !c.cfg.IgnoreDesired {
		c.seq.beginSync()
	}
	if err := c.subscribe(s); err != nil {
		s.close()
		return err
	}
	c.setSession(s)
	c.log.Info("connected to the hub", "connects", c.connects.Load(), "tokenExpiry", s.expiry)
	if c.cfg.IgnoreDesired {
		return nil
	}
	if err := c.syncDesired(s); err != nil {
		c.endSession(s)
		return err
	}
	return nil
}

func (c *Client) subscribe(s *session) error {
	filters := map[string]byte{topicResponsesFilter: 1}
	if !c.cfg.IgnoreDesired {
		filters[topicDesiredFilter] = 1
	}
	tok := s.mqtt.SubscribeMultiple(filters, nil)
	if !s.wait(tok, c.cfg.RequestTimeout, c.closing) {
		return fmt.Errorf("subscribing to twin topics: %w", ErrTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribing to twin topics: %w", err)
	}
	sub, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for filter, qos := range sub.Result() {
		if qos == 0x80 {
			return fmt.Errorf("the hub refused the subscription to %s", filter)
		}
	}
	return nil
}

// syncDesired GETs the twin on s and hands its desired section to the
// sequencer, repeating while held notifications reveal gaps.
func (c *Client) syncDesired(s *session) error {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		r, err, retry := c.roundTrip(ctx, s, getTopic, []byte{})
		cancel()
		if retry {
			return errors.New("connection lost while reading the twin")
		}
		if err == nil {
			err = checkResponse(opGet, r)
		}
		if err != nil {
			return requestError(opGet, err)
		}
		t, err := decodeTwin(r.body)
		if err != nil {
			return fmt.Errorf("%s: %w", opGet, err)
		}
		if !c.seq.endSync(t.Desired) {
			return nil
		}
		c.resyncs.Add(1)
	}
}

type endReason int

const (
	reasonLost endReason = iota
	reasonPlanned
	reasonClosed
)

// serve watches a live session until it is lost, due for renewal, asked to
// reconnect, or the client closes.
func (c *Client) serve(s *session) endReason {
	var renew <-chan time.Time
	if !s.expiry.IsZero() {
		t := time.NewTimer(time.Until(s.expiry.Add(-c.cfg.RenewBefore)))
		defer t.Stop()
		renew = t.C
	}
	for {
		select {
		case <-s.lost:
			c.log.Warn("connection to the hub lost", "error", s.lostErr())
			return reasonLost
		case <-renew:
			c.log.Info("renewing the SAS token by reconnecting")
			c.drain(s)
			return reasonPlanned
		case <-c.reconnect:
			c.log.Info("reconnecting on request")
			c.drain(s)
			return reasonPlanned
		case <-c.resync:
			c.resyncs.Add(1)
			if err := c.syncDesired(s); err != nil {
				c.log.Warn("re-reading the twin failed; reconnecting", "error", err)
				return reasonLost
			}
		case <-c.closing:
			c.drain(s)
			return reasonClosed
		}
	}
}

// drain stops handing s to new requests and waits for those in flight.
func (c *Client) drain(s *session) {
	c.clearSession(s)
	s.drain(c.cfg.RequestTimeout)
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	close(c.ready)
}

func (c *Client) clearSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		c.ready = make(chan struct{})
	}
}

func (c *Client) endSession(s *session) {
	c.clearSession(s)
	s.close()
}

func (c *Client) requestResync() {
	select {
	case c.resync <- struct{}{}:
	default:
	}
}
