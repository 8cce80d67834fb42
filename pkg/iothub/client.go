package iothub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// APIVersion is the service API version sent with every request, the one
// the current official service SDKs send.
const APIVersion = "2021-04-12"

// DefaultUserAgent identifies this client in the User-Agent header.
const DefaultUserAgent = "twinsync-iothub/0.1"

// Client calls the IoT Hub service REST API: twins, the identity registry
// and queries. It is safe for concurrent use and reuses connections; create
// one per hub and share it.
type Client struct {
	host      string
	base      string
	tokens    sas.Source
	http      *http.Client
	limits    Limits
	limiters  *limiters
	retry     RetryPolicy
	hubLabel  string
	userAgent string

	// sleep waits between retries; tests replace it to observe delays
	// without waiting.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

// config collects the options before a Client is built.
type config struct {
	httpClient *http.Client
	tlsConfig  *tls.Config
	rootCAs    *x509.CertPool
	limits     *Limits
	retry      *RetryPolicy
	hubLabel   string
	userAgent  string
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient makes the client send requests with hc instead of its own
// keep-alive client. WithTLSConfig and WithRootCAs are then ignored.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithTLSConfig sets the TLS configuration of the client's own transport;
// it is cloned.
func WithTLSConfig(cfg *tls.Config) Option { return func(c *config) { c.tlsConfig = cfg } }

// WithRootCAs trusts pool instead of the system roots, e.g. the CA of an
// embedded hub.
func WithRootCAs(pool *x509.CertPool) Option { return func(c *config) { c.rootCAs = pool } }

// WithLimits sets the client-side rate limits (see TierLimits and NoLimits).
// The default is TierLimits(S1, 1).
func WithLimits(l Limits) Option { return func(c *config) { c.limits = &l } }

// WithRetry sets the retry policy; the default is DefaultRetryPolicy.
func WithRetry(p RetryPolicy) Option { return func(c *config) { c.retry = &p } }

// WithHubLabel sets the hub label of the client's metrics. It must come
// from a small fixed set (one value per hub); the default is the host name.
func WithHubLabel(name string) Option { return func(c *config) { c.hubLabel = name } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *config) { c.userAgent = ua } }

// NewFromConnectionString returns a client for a service connection string
// (HostName, SharedAccessKeyName, SharedAccessKey). Tokens are minted per
// request from a cached, self-renewing source.
func NewFromConnectionString(connectionString string, opts ...Option) (*Client, error) {
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	if cs.Kind() != sas.KindService {
		return nil, fmt.Errorf("iothub: need a service connection string, got a %s string", cs.Kind())
	}
	tokens, err := cs.TokenSource()
	if err != nil {
		return nil, err
	}
	return New(cs.HostName, tokens, opts...)
}

// New returns a client for the hub at host (host[:port]) that authorizes
// every request with a token from tokens.
func New(host string, tokens sas.Source, opts ...Option) (*Client, error) {
	if host == "" || strings.ContainsAny(host, "/?#") {
		return nil, errors.New("iothub: host must be host or host:port")
	}
	cfg := config{hubLabel: host, userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(&cfg)
	}
	limits := MustTierLimits(S1, 1)
	if cfg.limits != nil {
		limits = *cfg.limits
	}
	lims, err := newLimiters(limits)
	if err != nil {
		return nil, err
	}
	retry := DefaultRetryPolicy
	if cfg.retry != nil {
		retry = *cfg.retry
	}
	return &Client{
		host:      host,
		base:      "https://" + host,
		tokens:    tokens,
		http:      cfg.buildHTTPClient(),
		limits:    limits,
		limiters:  lims,
		retry:     retry.withDefaults(),
		hubLabel:  cfg.hubLabel,
		userAgent: cfg.userAgent,
		sleep:     sleepContext,
		now:       time.Now,
	}, nil
}

// buildHTTPClient returns the caller's client or a keep-alive HTTP/1.1
// client like the official SDKs' (Node uses an https.Agent with keepAlive).
func (c *config) buildHTTPClient() *http.Client {
	if c.httpClient != nil {
		return c.httpClient
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsConfig != nil {
		tlsCfg = c.tlsConfig.Clone()
	}
	if c.rootCAs != nil {
		tlsCfg.RootCAs = c.rootCAs
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tlsCfg
	t.ForceAttemptHTTP2 = false
	// Controllers run many workers against one host; the default of 2 idle
	// connections per host would make them reconnect constantly.
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}

// Host returns the hub host[:port] the client talks to.
func (c *Client) Host() string { return c.host }

// Limits returns the client-side rate limits in effect.
func (c *Client) Limits() Limits { return c.limits }

// request is one logical API call; do may send it several times.
type request struct {
	op         string
	class      Class
	method     string
	path       string // escaped path below the host, starting with '/'
	query      string // extra query parameters, "&k=v"
	body       []byte
	ifMatch    string // header value, already quoted; empty for none
	header     map[string]string
	idempotent bool
}

// response is a successful answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r through the limiter, retrying as the policy allows, and
// returns the first 2xx answer or an error.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	start := c.now()
	for attempt := 0; ; attempt++ {
		if err := c.wait(ctx, r.class); err != nil {
			return nil, err
		}
		token, _, err := c.tokens.Token()
		if err != nil { // not retried: a token source does not heal by waiting
			return nil, fmt.Errorf("iothub: %s: getting a token: %w", r.op, err)
		}
		resp, err := c.send(ctx, r, token)
		var (
			reason string
			delay  time.Duration
		)
		switch {
		case err != nil:
			if ctx.Err() != nil || !r.idempotent {
				return nil, err
			}
			reason, delay = reasonTransport, c.retry.backoff(attempt)
		case resp.status == http.StatusTooManyRequests:
			throttledTotal.WithLabelValues(c.hubLabel, r.op).Inc()
			err = c.errorFrom(r.op, resp)
			delay = retryAfter(resp.header, c.now())
			if delay <= 0 {
				delay = c.retry.backoff(attempt)
			}
			reason = reasonThrottled
		case resp.status >= 500 && r.idempotent:
			err = c.errorFrom(r.op, resp)
			reason, delay = reasonServer, c.retry.backoff(attempt)
		case resp.status >= 300:
			return nil, c.errorFrom(r.op, resp)
		default:
			return resp, nil
		}
		if !c.retry.allows(attempt+1, c.now().Sub(start)+delay) || pastDeadline(ctx, c.now().Add(delay)) {
			return nil, err
		}
		retriesTotal.WithLabelValues(c.hubLabel, r.op, reason).Inc()
		if err := c.sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// wait takes a token from the class's bucket and records the wait.
func (c *Client) wait(ctx context.Context, class Class) error {
	lim := c.limiters[class]
	if lim.Limit() == rate.Inf {
		return nil
	}
	begin := time.Now()
	if err := lim.Wait(ctx); err != nil {
		return fmt.Errorf("iothub: waiting for the %s rate limiter: %w", class, err)
	}
	limiterWait.WithLabelValues(c.hubLabel, class.String()).Observe(time.Since(begin).Seconds())
	return nil
}

// send performs one HTTP exchange and reads the whole answer.
func (c *Client) send(ctx context.Context, r *request, token string) (*response, error) {
	if c.retry.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.retry.AttemptTimeout)
		defer cancel()
	}
	url := c.base + r.path + "?api-version=" + APIVersion + r.query
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, url, body)
	if err != nil {
		return nil, fmt.Errorf("iothub: %s: %w", r.op, err)
	}
	c.setHeaders(req, r, token)

	begin := time.Now()
	hr, err := c.http.Do(req)
	if err != nil {
		requestsTotal.WithLabelValues(c.hubLabel, r.op, "0").Inc()
		return nil, fmt.Errorf("iothub: %s: %w", r.op, err)
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(hr.Body)
	requestDuration.WithLabelValues(c.hubLabel, r.op).Observe(time.Since(begin).Seconds())
	requestsTotal.WithLabelValues(c.hubLabel, r.op, statusText(hr.StatusCode)).Inc()
	if err != nil {
		return nil, fmt.Errorf("iothub: %s: reading the answer: %w", r.op, err)
	}
	return &response{status: hr.StatusCode, header: hr.Header, body: data}, nil
}

// setHeaders writes the headers the official service SDKs send.
func (c *Client) setHeaders(req *http.Request, r *request, token string) {
	h := req.Header
	if r.body != nil {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	if r.ifMatch != "" {
		h.Set("If-Match", r.ifMatch)
	}
	for k, v := range r.header {
		h.Set(k, v)
	}
	h.Set("Authorization", token)
	h.Set("Request-Id", uuid.NewString())
	h.Set("User-Agent", c.userAgent)
}

func (c *Client) errorFrom(op string, resp *response) *Error {
	e := parseError(op, resp.status, resp.header, resp.body)
	if resp.status == http.StatusTooManyRequests {
		e.RetryAfter = retryAfter(resp.header, c.now())
	}
	return e
}

// pastDeadline reports whether ctx ends before t, so waiting is pointless.
func pastDeadline(ctx context.Context, t time.Time) bool {
	deadline, ok := ctx.Deadline()
	return ok && deadline.Before(t)
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
