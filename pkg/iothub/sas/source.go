package sas

import (
	"errors"
	"sync"
	"time"
)

// Defaults for [KeySource], matching the Node SDKs: tokens live one hour and
// are renewed 15 minutes before they expire.
const (
	DefaultTTL         = time.Hour
	DefaultRenewBefore = 15 * time.Minute
)

// Source hands out a token for each request or connection.
type Source interface {
	// Token returns a valid token and its expiry.
	Token() (token string, expiry time.Time, err error)
}

// KeySource mints tokens from a key and caches each until it is within
// RenewBefore of its expiry. It is safe for concurrent use.
type KeySource struct {
	resource string
	keyName  string
	key      Key

	// TTL is the lifetime of each minted token.
	TTL time.Duration
	// RenewBefore is how long before expiry a cached token is replaced.
	RenewBefore time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time

	mu     sync.Mutex
	token  string
	expiry time.Time
}

// NewKeySource returns a source of tokens for the unencoded resource URI
// signed with key; keyName is the policy name or empty for a device key. It
// uses [DefaultTTL] and [DefaultRenewBefore]; change the fields before first
// use to override them.
func NewKeySource(resource, keyName string, key Key) *KeySource {
	return &KeySource{
		resource:    resource,
		keyName:     keyName,
		key:         key,
		TTL:         DefaultTTL,
		RenewBefore: DefaultRenewBefore,
		Now:         time.Now,
	}
}

// Token returns the cached token, minting a new one when none is cached or
// the cached one expires within RenewBefore. It never fails.
func (s *KeySource) Token() (string, time.Time, error) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == "" || !now.Add(s.RenewBefore).Before(s.expiry) {
		s.expiry = now.Add(s.TTL).Truncate(time.Second)
		s.token = Sign(s.resource, s.keyName, s.key, s.expiry)
	}
	return s.token, s.expiry, nil
}

// StaticSource hands out one fixed token, such as a SharedAccessSignature
// from a connection string. It cannot renew the token.
type StaticSource struct {
	token  string
	expiry time.Time
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// NewStaticSource parses token and returns a source that hands it out until
// it expires.
func NewStaticSource(token string) (*StaticSource, error) {
	t, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	return &StaticSource{token: token, expiry: t.Expiry, Now: time.Now}, nil
}

// Token returns the fixed token, or [ErrExpired] once it has expired.
func (s *StaticSource) Token() (string, time.Time, error) {
	if !s.Now().Before(s.expiry) {
		return "", s.expiry, ErrExpired
	}
	return s.token, s.expiry, nil
}

// ErrNoCredential reports a connection string without a key or token, such
// as an x509=true device string.
var ErrNoCredential = errors.New("connection string has no SharedAccessKey or SharedAccessSignature")

// TokenSource returns the token source for the connection string: a
// [KeySource] scoped to [ConnectionString.Resource] when it has a key (signed
// under SharedAccessKeyName when set), else a [StaticSource] for its
// SharedAccessSignature.
func (c *ConnectionString) TokenSource() (Source, error) {
	switch {
	case len(c.SharedAccessKey) > 0:
		return NewKeySource(c.Resource(), c.SharedAccessKeyName, c.SharedAccessKey), nil
	case c.SharedAccessSignature != "":
		return NewStaticSource(c.SharedAccessSignature)
	default:
		return nil, ErrNoCredential
	}
}
