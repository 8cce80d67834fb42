package hub

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCertificates(t *testing.T) {
	dir := t.TempDir()
	names := serverNames("myhub.example:8443", []string{"10.1.2.3", "hub.svc"})
	c, err := loadOrCreateCertificates(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.caCert)
	for _, n := range []string{"myhub.example", "localhost", "127.0.0.1", "::1", "10.1.2.3", "hub.svc"} {
		if _, err := c.srvLeaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", n, err)
		}
	}
	if c.srvLeaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("server key is %v, want ECDSA", c.srvLeaf.PublicKeyAlgorithm)
	}
	if fi, err := os.Stat(filepath.Join(dir, caKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key file: %v %v", fi.Mode(), err)
	}

	again, err := loadOrCreateCertificates(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.caCert.Raw, c.caCert.Raw) || !bytes.Equal(again.srvLeaf.Raw, c.srvLeaf.Raw) {
		t.Error("restart re-created the certificates")
	}

	more, err := loadOrCreateCertificates(dir, append(names, "extra.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(more.caCert.Raw, c.caCert.Raw) {
		t.Error("a new SAN replaced the CA")
	}
	if bytes.Equal(more.srvLeaf.Raw, c.srvLeaf.Raw) || more.srvLeaf.VerifyHostname("extra.example") != nil {
		t.Error("a new SAN did not re-issue the server certificate")
	}
}

func TestPolicies(t *testing.T) {
	dir := t.TempDir()
	first, err := loadOrCreatePolicies(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 5 {
		t.Fatalf("%d policies", len(first))
	}
	for name, rights := range StandardPolicyRights {
		p := first[name]
		if p == nil || p.Rights != rights || validateKey(p.PrimaryKey) != nil || validateKey(p.SecondaryKey) != nil {
			t.Errorf("policy %s: %+v", name, p)
		}
	}
	again, _ := loadOrCreatePolicies(dir, nil)
	if again["service"].PrimaryKey != first["service"].PrimaryKey {
		t.Error("keys changed across restart")
	}
	given := NewKey()
	keys, err := ParsePolicyKeys([]byte(`{"service":{"primaryKey":"` + given + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	withKeys, _ := loadOrCreatePolicies(dir, keys)
	if withKeys["service"].PrimaryKey != given || withKeys["service"].SecondaryKey != first["service"].SecondaryKey {
		t.Error("given key not applied, or the secondary key changed")
	}
	if withKeys["iothubowner"].PrimaryKey != first["iothubowner"].PrimaryKey {
		t.Error("a policy without a given key changed")
	}
}

func TestParsePolicyKeysErrors(t *testing.T) {
	secret := "not-base64-but-secret!"
	cases := map[string]string{
		"unknown policy": `{"admin":{"primaryKey":"` + NewKey() + `"}}`,
		"bad key":        `{"service":{"primaryKey":"` + secret + `"}}`,
		"short key":      `{"service":{"primaryKey":"AAAA"}}`,
		"not JSON":       `{`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePolicyKeys([]byte(in))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("the error echoes the key")
			}
		})
	}
}

func TestTierLimits(t *testing.T) {
	cases := []struct {
		tier        string
		units       int
		class       opClass
		perSecond   float64
		burst       int
		wantErrText string
	}{
		{"S1", 1, classQuery, 20.0 / 60, 20, ""},
		{"S1", 1, classTwinUpdate, 50, 50, ""},
		{"S1", 10, classConnect, 120, 120, ""},
		{"s2", 2, classTwinRead, 100, 100, ""},
		{"S3", 2, classTwinUpdate, 500, 500, ""},
		{"S3", 1, classRegistry, 5000.0 / 60, 5000, ""},
		{"X9", 1, classQuery, 0, 0, "unknown tier"},
		{"S1", 0, classQuery, 0, 0, "units"},
	}
	for _, c := range cases {
		t.Run(c.tier, func(t *testing.T) {
			l, err := tierLimits(c.tier, c.units)
			if c.wantErrText != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrText) {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err != nil || l[c.class].perSecond != c.perSecond || l[c.class].burst != c.burst {
				t.Fatalf("got %+v, %v", l[c.class], err)
			}
		})
	}
}

func TestIfMatch(t *testing.T) {
	cases := []struct {
		header          string
		twinOK, identOK bool
	}{
		{"", true, true},
		{"*", true, true},
		{`"*"`, true, true},
		{`"E1"`, true, true},
		{`"E2"`, false, false},
		{"E1", true, false},
		{"E2", true, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("PATCH", "/twins/x", nil)
		if c.header != "" {
			r.Header.Set("If-Match", c.header)
		}
		m := parseIfMatch(r)
		if m.allowsTwin("E1") != c.twinOK || m.allowsIdentity("E1") != c.identOK {
			t.Errorf("If-Match %q: twin %v identity %v", c.header, m.allowsTwin("E1"), m.allowsIdentity("E1"))
		}
	}
}

func TestValidateID(t *testing.T) {
	for id, ok := range map[string]bool{
		"dev-1": true, "a.b+c%_#*?!(),=@$':;": true, strings.Repeat("a", 128): true,
		"": false, strings.Repeat("a", 129): false, "with space": false, "slash/": false, "ü": false,
	} {
		if err := validateID("device", id); (err == nil) != ok {
			t.Errorf("%q: %v", id, err)
		}
	}
}

func TestRedactingHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(redactingHandler{slog.NewTextHandler(&buf, nil)})
	log.With("packet", "SharedAccessSignature sr=a").Warn("error processing packet", "client", "d1", "pk", "SharedAccessSignature sr=b")
	if out := buf.String(); strings.Contains(out, "SharedAccessSignature") || !strings.Contains(out, "client=d1") {
		t.Fatalf("log line %q", out)
	}
}
