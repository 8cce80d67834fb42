package hub_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

func TestRESTAuthorization(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	owner := newService(t, h, h.ServiceConnectionString)
	createDevice(t, owner, "d1")
	host := owner.cs.HostName

	policyKey := func(name string) sas.Key {
		p, ok := h.Policy(name)
		if !ok {
			t.Fatalf("no policy %s", name)
		}
		k, err := sas.ParseKey(p.PrimaryKey)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	hour := time.Now().Add(time.Hour)
	signWith := func(policy, resource string, expiry time.Time) string {
		return sas.Sign(resource, policy, policyKey(policy), expiry)
	}
	devCS, err := sas.ParseConnectionString(h.AddDevice(t, "d2"))
	if err != nil {
		t.Fatal(err)
	}
	// A token whose sr is the host name verbatim, as the Node service SDK
	// signs it (sas.Sign would encode the ':' of host:port).
	verbatim := func(policy string) string {
		p, _ := h.Policy(policy)
		return signVerbatim(t, host, policy, p.PrimaryKey, hour)
	}

	cases := []struct {
		name       string
		auth       string
		method     string
		path       string
		wantStatus int
	}{
		{"no header", "", "GET", "/twins/d1", 401},
		{"malformed", "Bearer abc", "GET", "/twins/d1", 401},
		{"unknown policy", sas.Sign(host, "nobody", policyKey("iothubowner"), hour), "GET", "/twins/d1", 401},
		{"wrong key", sas.Sign(host, "iothubowner", policyKey("service"), hour), "GET", "/twins/d1", 401},
		{"expired", signWith("iothubowner", host, time.Now().Add(-time.Minute)), "GET", "/twins/d1", 401},
		{"other host", signWith("iothubowner", "otherhub.example", hour), "GET", "/twins/d1", 401},
		{"device key token", sas.Sign(host+"/devices/d2", "", devCS.SharedAccessKey, hour), "GET", "/twins/d2", 401},
		{"scope covers path", signWith("iothubowner", host+"/twins/d1", hour), "GET", "/twins/d1", 200},
		{"same token, path outside its scope", signWith("iothubowner", host+"/twins/d1", hour), "GET", "/twins/d2", 401},
		{"scope by path segment", signWith("iothubowner", host+"/twins/d", hour), "GET", "/twins/d1", 401},
		{"url-encoded sr", signWith("iothubowner", host, hour), "GET", "/twins/d1", 200},
		{"verbatim sr", verbatim("iothubowner"), "GET", "/twins/d1", 200},
		{"service reads twins", signWith("service", host, hour), "GET", "/twins/d1", 200},
		{"service queries", signWith("service", host, hour), "POST", "/devices/query", 200},
		{"service cannot read registry", signWith("service", host, hour), "GET", "/devices/d1", 401},
		{"registryRead reads registry", signWith("registryRead", host, hour), "GET", "/devices/d1", 200},
		{"registryRead cannot write", signWith("registryRead", host, hour), "PUT", "/devices/d9", 401},
		{"registryRead cannot read twins", signWith("registryRead", host, hour), "GET", "/twins/d1", 401},
		{"registryReadWrite writes", signWith("registryReadWrite", host, hour), "PUT", "/devices/d9", 200},
		{"device policy cannot read twins", signWith("device", host, hour), "GET", "/twins/d1", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			switch c.method {
			case "PUT":
				body = map[string]any{}
			case "POST":
				body = map[string]any{"query": "SELECT * FROM devices"}
			}
			r := owner.doAuth(c.auth, c.method, c.path, body)
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.body)
			}
			if c.wantStatus == 401 {
				if code := r.errorCode(t); code != "IotHubUnauthorizedAccess" {
					t.Fatalf("code %q", code)
				}
				if c.auth != "" && strings.Contains(string(r.body), c.auth) {
					t.Fatal("the refusal echoes the token")
				}
				if _, sig, ok := strings.Cut(c.auth, "sig="); ok {
					sig, _, _ = strings.Cut(sig, "&")
					if strings.Contains(string(r.body), sig) {
						t.Fatal("the refusal echoes the signature")
					}
				}
			}
		})
	}
}

// signVerbatim signs a token with sr exactly as given (not URL-encoded),
// the way the Node service SDK signs its host name.
func signVerbatim(t *testing.T, sr, policy, b64Key string, expiry time.Time) string {
	t.Helper()
	key, err := sas.ParseKey(b64Key)
	if err != nil {
		t.Fatal(err)
	}
	// sas.Sign encodes the resource; decoding its sr gives the bytes it
	// signed, so re-sign the verbatim text via a token over the decoded
	// form only when they are equal. Otherwise compute by hand.
	tok := sas.Sign(sr, policy, key, expiry)
	parsed, err := sas.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.RawResource == sr {
		return tok
	}
	return handSigned(key, sr, policy, expiry)
}

func handSigned(key sas.Key, sr, policy string, expiry time.Time) string {
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(hmacB64(key, sr+"\n"+itoa(expiry.Unix()))) + "&skn=" + policy + "&se=" + itoa(expiry.Unix())
}
