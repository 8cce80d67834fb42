package device

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// session is one MQTT connection. A fresh paho client is made per session,
// like the Node SDK makes a fresh mqtt.js client: paho's own reconnect
// cannot change the password, and a new client starts with clean state.
type session struct {
	mqtt    paho.Client
	started time.Time
	expiry  time.Time // token expiry; zero for a given token (no renewal)

	lost     chan struct{}
	lostOnce sync.Once
	lostMu   sync.Mutex
	lostWhy  error

	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup
}

// dial connects a new session with a fresh token.
func (c *Client) dial() (*session, error) {
	password, expiry, err := c.token()
	if err != nil {
		return nil, err
	}
	s := &session{started: time.Now(), expiry: expiry, lost: make(chan struct{})}
	opts := paho.NewClientOptions().
		AddBroker(c.broker).
		SetClientID(c.clientID).
		SetUsername(c.userName).
		SetPassword(password).
		SetCleanSession(false).
		SetProtocolVersion(4). // explicit: no silent fallback to 3.1 on refusal
		SetTLSConfig(c.tlsConfig).
		SetKeepAlive(c.cfg.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(c.cfg.ConnectTimeout).
		SetWriteTimeout(c.cfg.RequestTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true). // desired notifications must stay in order
		SetDefaultPublishHandler(c.onMessage).
		SetConnectionLostHandler(func(_ paho.Client, err error) { s.markLost(err) })
	s.mqtt = paho.NewClient(opts)
	tok := s.mqtt.Connect()
	select {
	case <-tok.Done():
	case <-c.closing:
		s.close()
		return nil, ErrClosed
	}
	if err := tok.Error(); err != nil {
		return nil, c.connectError(err)
	}
	return s, nil
}

// token returns the CONNECT password and its expiry (zero if it cannot be
// renewed).
func (c *Client) token() (string, time.Time, error) {
	if len(c.cs.SharedAccessKey) > 0 {
		// se is whole seconds; renew against what the token says.
		expiry := time.Now().Add(c.cfg.TokenLifetime).Truncate(time.Second)
		return sas.Sign(c.cs.Resource(), c.cs.SharedAccessKeyName, c.cs.SharedAccessKey, expiry), expiry, nil
	}
	t, err := sas.ParseToken(c.cs.SharedAccessSignature)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: the connection string's SharedAccessSignature: %w", ErrRefused, err)
	}
	if !time.Now().Before(t.Expiry) {
		return "", time.Time{}, fmt.Errorf("%w: the connection string's SharedAccessSignature expired at %s; supply a new one",
			ErrRefused, t.Expiry.UTC().Format(time.RFC3339))
	}
	return c.cs.SharedAccessSignature, time.Time{}, nil
}

// connectError classifies a failed connection attempt: refused credentials
// and certificate failures are final, everything else is retried.
func (c *Client) connectError(err error) error {
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword),
		errors.Is(err, packets.ErrorRefusedNotAuthorised),
		errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Errorf("%w (%v): check that device %q exists and is enabled and that the key or SAS token in the connection string is current",
			ErrRefused, err, c.clientID)
	case isCertificateError(err):
		return fmt.Errorf("%w: %w (is the hub's CA configured?)", ErrTLS, err)
	default:
		return fmt.Errorf("connecting to %s: %w", c.broker, err)
	}
}

func isCertificateError(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

// isFinal reports errors that retrying cannot fix.
func isFinal(err error) bool { return errors.Is(err, ErrRefused) || errors.Is(err, ErrTLS) }

// onMessage routes an incoming publish. It runs on paho's message goroutine
// and must not block.
func (c *Client) onMessage(_ paho.Client, m paho.Message) {
	topic := m.Topic()
	switch {
	case isResponseTopic(topic):
		r, err := parseResponseTopic(topic)
		if err != nil {
			c.log.Warn("ignoring a malformed twin response", "error", err)
			return
		}
		r.body = m.Payload()
		c.pmu.Lock()
		ch := c.pending[r.rid]
		c.pmu.Unlock()
		if ch != nil {
			select {
			case ch <- r:
			default: // a duplicate (QoS 1 redelivery); the first one won
			}
		}
	case isDesiredTopic(topic):
		values, version, err := decodeSection(m.Payload())
		if err != nil {
			c.log.Warn("ignoring a malformed desired-property notification", "error", err)
			return
		}
		if version == 0 {
			version = desiredTopicVersion(topic)
		}
		if c.seq.notify(DesiredPatch{Version: version, Properties: values}) {
			c.requestResync()
		}
	default:
		c.log.Debug("ignoring a message on an unexpected topic", "topic", topic)
	}
}

func (s *session) markLost(err error) {
	s.lostOnce.Do(func() {
		s.lostMu.Lock()
		s.lostWhy = err
		s.lostMu.Unlock()
		close(s.lost)
	})
}

func (s *session) lostErr() error {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	return s.lostWhy
}

func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

// acquire registers a request unless the session is draining.
func (s *session) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *session) release() { s.inflight.Done() }

// drain refuses new requests and waits up to timeout for those in flight.
func (s *session) drain(timeout time.Duration) {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-s.lost:
	}
}

// close disconnects (DISCONNECT, briefly letting queued work go out) and
// wakes everything waiting on the session.
func (s *session) close() {
	s.markLost(ErrClosed)
	if s.mqtt.IsConnectionOpen() {
		s.mqtt.Disconnect(250)
	}
}

// wait waits for tok for at most timeout or until stop closes; false means
// it did not complete.
func (s *session) wait(tok paho.Token, timeout time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return true
	case <-t.C:
		return false
	case <-s.lost:
		return false
	case <-stop:
		return false
	}
}
