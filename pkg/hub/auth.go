package hub

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// authenticator checks SAS tokens against the hub's policies and device keys
// (spec §1.2, §1.3; sdk-wire §1). The HMAC is computed over sr exactly as
// received, because each SDK signs the sr text it emits and they encode it
// differently; sr is URL-decoded only for the scope check.
type authenticator struct {
	hostname string // configured hub name, possibly with a port
	policies map[string]*Policy
	now      func() time.Time

	// verified caches policy tokens whose signature checked out, by the
	// exact header text: the Node service SDK signs a token per request
	// but with second resolution, and other clients reuse theirs. Expiry
	// and scope are still checked on every use.
	mu       sync.RWMutex
	verified map[string]*sas.Token
}

// maxVerifiedTokens bounds the cache; it is simply emptied when full.
const maxVerifiedTokens = 4096

// hostResources returns the resource roots a token may name: the configured
// host name and, when it carries a port, the bare host too (SDKs differ in
// whether they keep the port).
func (a *authenticator) hostResources() []string {
	if h := hostOnly(a.hostname); h != a.hostname {
		return []string{a.hostname, h}
	}
	return []string{a.hostname}
}

// authorizeService checks an Authorization header for a REST call that
// needs one of the permissions in anyOf on the resource path (e.g.
// "/devices/d1"). Only hub-policy tokens (with skn) are accepted here: a
// device-key token never opens the service API.
func (a *authenticator) authorizeService(header, path string, anyOf ...Permission) *hubError {
	if header == "" {
		return errUnauthorized("Authorization header missing")
	}
	a.mu.RLock()
	tok := a.verified[header]
	a.mu.RUnlock()
	if tok != nil {
		if !a.coversAny(tok, path) {
			return errUnauthorized("Unauthorized: the shared access signature is invalid, expired or does not cover the resource")
		}
	} else {
		var err error
		if tok, err = sas.ParseToken(header); err != nil {
			return errUnauthorized("Malformed authorization header")
		}
		policy := a.policies[tok.KeyName]
		if tok.KeyName == "" || policy == nil {
			return errUnauthorized("Authorization rule is missing or unknown")
		}
		if !a.verifyAny(tok, path, policyKeys(policy)) {
			return errUnauthorized("Unauthorized: the shared access signature is invalid, expired or does not cover the resource")
		}
		a.remember(header, tok)
	}
	policy := a.policies[tok.KeyName]
	for _, p := range anyOf {
		if policy.Rights.Has(p) {
			return nil
		}
	}
	return errUnauthorized("Authorization rule '" + policy.Name + "' does not allow access for '" + path + "'")
}

// authorizeDevice checks the SAS password of a device (or module) MQTT
// connection. The token may be signed with the identity's own keys (no
// skn) or with a policy that has DeviceConnect. resourcePath is
// "/devices/{id}" or "/devices/{id}/modules/{mid}".
func (a *authenticator) authorizeDevice(password, resourcePath string, dev *Device) bool {
	tok, err := sas.ParseToken(password)
	if err != nil {
		return false
	}
	if tok.KeyName != "" {
		policy := a.policies[tok.KeyName]
		return policy != nil && policy.Rights.Has(DeviceConnect) && a.verifyAny(tok, resourcePath, policyKeys(policy))
	}
	if dev.Authentication.Type != authSAS {
		return false
	}
	return a.verifyAny(tok, resourcePath, identityKeys(dev))
}

// verifyAny verifies tok for path under any accepted host root.
func (a *authenticator) verifyAny(tok *sas.Token, path string, keys []sas.Key) bool {
	now := a.now()
	for _, host := range a.hostResources() {
		if tok.Verify(host+path, now, keys...) == nil {
			return true
		}
	}
	return false
}

// coversAny checks a cached token's expiry and scope for path.
func (a *authenticator) coversAny(tok *sas.Token, path string) bool {
	if !a.now().Before(tok.Expiry) {
		return false
	}
	for _, host := range a.hostResources() {
		if tok.Covers(host + path) {
			return true
		}
	}
	return false
}

func (a *authenticator) remember(header string, tok *sas.Token) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.verified == nil || len(a.verified) >= maxVerifiedTokens {
		a.verified = make(map[string]*sas.Token)
	}
	a.verified[header] = tok
}

func policyKeys(p *Policy) []sas.Key {
	return decodeKeys(p.PrimaryKey, p.SecondaryKey)
}

func identityKeys(d *Device) []sas.Key {
	return decodeKeys(d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey)
}

func decodeKeys(b64 ...string) []sas.Key {
	keys := make([]sas.Key, 0, len(b64))
	for _, s := range b64 {
		if k, err := sas.ParseKey(s); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// servicePath is the resource path a REST request is checked against: the
// URL path without a trailing slash.
func servicePath(r *http.Request) string {
	return strings.TrimRight(r.URL.Path, "/")
}
