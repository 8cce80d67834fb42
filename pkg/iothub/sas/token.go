package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every token, followed by one space.
const Prefix = "SharedAccessSignature"

// Errors returned by [ParseToken] and [Token.Verify]. Messages never contain
// the token, its signature or a key.
var (
	// ErrMalformedToken wraps every parse error.
	ErrMalformedToken = errors.New("malformed shared access signature")
	// ErrExpired reports a token whose se is not in the future.
	ErrExpired = errors.New("shared access signature expired")
	// ErrSignature reports a signature that matches none of the given keys.
	ErrSignature = errors.New("shared access signature does not match")
	// ErrScope reports a token whose sr does not cover the resource.
	ErrScope = errors.New("shared access signature does not cover the resource")
)

// Sign mints a token for the unencoded resource URI, signed with key and
// valid until expiry (rounded down to the second). keyName is the policy
// name; leave it empty for device and module keys. The resource is encoded
// with [url.QueryEscape] and the HMAC is computed over that encoded text.
func Sign(resource, keyName string, key Key, expiry time.Time) string {
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := url.QueryEscape(signature(key, sr, se))
	n := len(Prefix) + len(sr) + len(sig) + len(se) + len(keyName) + 24
	var b strings.Builder
	b.Grow(n)
	b.WriteString(Prefix)
	b.WriteString(" sr=")
	b.WriteString(sr)
	b.WriteString("&sig=")
	b.WriteString(sig)
	b.WriteString("&se=")
	b.WriteString(se)
	if keyName != "" {
		b.WriteString("&skn=")
		b.WriteString(url.QueryEscape(keyName))
	}
	return b.String()
}

// signature returns base64(HMAC-SHA256(key, sr + "\n" + se)).
func signature(key Key, sr, se string) string {
	return base64.StdEncoding.EncodeToString(mac(key, sr, se))
}

func mac(key Key, sr, se string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sr))
	h.Write([]byte{'\n'})
	h.Write([]byte(se))
	return h.Sum(nil)
}

// Token is a parsed token. It holds a signature: do not log it.
type Token struct {
	// RawResource is sr exactly as received; the signature covers this text.
	RawResource string
	// Resource is sr URL-decoded, used for the scope check.
	Resource string
	// KeyName is skn, the policy name, or empty for a device or module key.
	KeyName string
	// Expiry is se.
	Expiry time.Time

	rawExpiry string
	signature []byte
}

// ParseToken parses a token with its fields in any order. It needs sr, sig
// and se; skn is optional, unknown fields are ignored and duplicates are
// refused. Errors wrap [ErrMalformedToken] and name the bad field.
func ParseToken(s string) (*Token, error) {
	rest, ok := strings.CutPrefix(s, Prefix+" ")
	if !ok {
		return nil, tokenError("missing the " + Prefix + " prefix")
	}
	var t Token
	var sig string
	seen := make(map[string]bool, 4)
	for _, field := range strings.Split(strings.TrimSpace(rest), "&") {
		name, value, _ := strings.Cut(field, "=")
		switch name {
		case "sr", "sig", "se", "skn":
		default:
			continue
		}
		if seen[name] {
			return nil, tokenError(name + " appears twice")
		}
		seen[name] = true
		switch name {
		case "sr":
			t.RawResource = value
		case "sig":
			sig = value
		case "se":
			t.rawExpiry = value
		case "skn":
			t.KeyName = value
		}
	}
	if err := t.decode(sig); err != nil {
		return nil, err
	}
	return &t, nil
}

// decode fills the decoded fields from the raw ones.
func (t *Token) decode(sig string) error {
	if t.RawResource == "" {
		return tokenError("sr is missing")
	}
	if sig == "" {
		return tokenError("sig is missing")
	}
	if t.rawExpiry == "" {
		return tokenError("se is missing")
	}
	var err error
	// Path unescaping keeps a literal '+' (device ids, raw base64) intact.
	if t.Resource, err = url.PathUnescape(t.RawResource); err != nil {
		return tokenError("sr is not URL-encoded correctly")
	}
	if t.KeyName, err = url.PathUnescape(t.KeyName); err != nil {
		return tokenError("skn is not URL-encoded correctly")
	}
	plain, err := url.PathUnescape(sig)
	if err != nil {
		return tokenError("sig is not URL-encoded correctly")
	}
	if t.signature, err = base64.StdEncoding.DecodeString(plain); err != nil {
		return tokenError("sig is not base64")
	}
	secs, err := strconv.ParseInt(t.rawExpiry, 10, 64)
	if err != nil || secs < 0 {
		return tokenError("se is not a Unix time in seconds")
	}
	t.Expiry = time.Unix(secs, 0)
	return nil
}

func tokenError(detail string) error {
	return fmt.Errorf("%w: %s", ErrMalformedToken, detail)
}

// Verify checks, in this order, that the token has not expired at now, that
// its sr covers resource (see [Token.Covers]) and that it was signed with one
// of keys (pass a primary and a secondary key to accept either). It returns
// [ErrExpired], [ErrScope] or [ErrSignature].
func (t *Token) Verify(resource string, now time.Time, keys ...Key) error {
	if !now.Before(t.Expiry) {
		return ErrExpired
	}
	if !t.Covers(resource) {
		return ErrScope
	}
	for _, k := range keys {
		if len(k) > 0 && hmac.Equal(mac(k, t.RawResource, t.rawExpiry), t.signature) {
			return nil
		}
	}
	return ErrSignature
}

// Covers reports whether the token's scope includes the unencoded resource
// URI: sr must equal it or be a prefix of it ending at a '/' boundary. The
// host part compares case-insensitively, the path exactly. A trailing '/' in
// either is ignored.
func (t *Token) Covers(resource string) bool {
	return covers(t.Resource, resource)
}

func covers(scope, resource string) bool {
	scopeHost, scopePath := splitResource(scope)
	resHost, resPath := splitResource(resource)
	if !strings.EqualFold(scopeHost, resHost) {
		return false
	}
	if scopePath == "" {
		return true
	}
	rest, ok := strings.CutPrefix(resPath, scopePath)
	return ok && (rest == "" || rest[0] == '/')
}

// splitResource splits host/path into host and "/path" without a trailing '/'.
func splitResource(r string) (host, path string) {
	r = strings.TrimRight(r, "/")
	if i := strings.IndexByte(r, '/'); i >= 0 {
		return r[:i], r[i:]
	}
	return r, ""
}

// String describes the token with its signature redacted; it is safe to log.
func (t *Token) String() string {
	s := Prefix + " sr=" + t.RawResource + "&sig=" + redacted + "&se=" + t.rawExpiry
	if t.KeyName != "" {
		s += "&skn=" + t.KeyName
	}
	return s
}

// GoString is the redacted form too.
func (t *Token) GoString() string { return t.String() }
