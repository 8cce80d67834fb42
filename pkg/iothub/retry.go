package iothub

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy says how a Client retries. Throttled answers (429) are
// retried for every call, because the hub did not run them; server errors
// (5xx) and transport errors only for idempotent calls (reads, queries,
// ReplaceTwin, DeleteDevice), because a PATCH or a create may have taken
// effect. A 429's Retry-After is honoured when present; otherwise the
// client backs off exponentially with jitter.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts per call, the first included.
	MaxAttempts int
	// MaxElapsed bounds the time from the first attempt to the start of
	// the last; a wait that would cross it ends the call with the last
	// error.
	MaxElapsed time.Duration
	// BaseDelay is the first backoff; it doubles per attempt.
	BaseDelay time.Duration
	// MaxDelay caps one backoff.
	MaxDelay time.Duration
	// AttemptTimeout bounds one HTTP exchange; zero means only the
	// caller's context bounds it.
	AttemptTimeout time.Duration
}

// DefaultRetryPolicy retries up to 8 attempts within one minute, backing off
// from 500 ms to at most 20 s, each attempt limited to 30 s.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:    8,
	MaxElapsed:     time.Minute,
	BaseDelay:      500 * time.Millisecond,
	MaxDelay:       20 * time.Second,
	AttemptTimeout: 30 * time.Second,
}

// NoRetry makes every call a single attempt.
var NoRetry = RetryPolicy{MaxAttempts: 1}

// withDefaults fills unset fields from DefaultRetryPolicy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts < 1 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultRetryPolicy.MaxElapsed
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	return p
}

// allows reports whether attempt number next may start after elapsed.
func (p RetryPolicy) allows(next int, elapsed time.Duration) bool {
	return next < p.MaxAttempts && elapsed <= p.MaxElapsed
}

// backoff returns the wait before retry number attempt+1: the exponential
// delay with "equal jitter", half fixed and half random, so that many
// clients throttled together spread out but none retries at once.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.BaseDelay << min(attempt, 30)
	if d <= 0 || d > p.MaxDelay {
		d = p.MaxDelay
	}
	half := d / 2
	return half + rand.N(half+1)
}

// retryAfter reads how long a throttled answer asks the client to wait:
// the millisecond headers Azure services send, then Retry-After in seconds
// or as an HTTP date. Zero means no usable header.
func retryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if ms, err := strconv.ParseInt(h.Get(name), 10, 64); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return max(0, time.Duration(secs)*time.Second)
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, at.Sub(now))
	}
	return 0
}
