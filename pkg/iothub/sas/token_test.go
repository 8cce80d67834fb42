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
	"testing"
	"time"
)

func testKey(t testing.TB) Key {
	t.Helper()
	k, err := ParseKey(testKeyB64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// encodeURIComponent mirrors JavaScript's function of that name, used by the
// Node SDKs for sr and sig.
func encodeURIComponent(s string) string {
	const keep = "-_.!~*'()"
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pythonQuote mirrors urllib.parse.quote(s, safe): letters, digits and
// "_.-~" plus safe stay, everything else is %XX-encoded.
func pythonQuote(s, safe string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~"+safe, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sdkToken builds a token the way an SDK does: the caller picks the sr text
// and the sig encoder, the HMAC covers sr as written.
func sdkToken(key Key, sr, se string, encodeSig func(string) string, order []string, skn string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sr + "\n" + se))
	fields := map[string]string{
		"sr":  sr,
		"sig": encodeSig(base64.StdEncoding.EncodeToString(h.Sum(nil))),
		"se":  se,
		"skn": skn,
	}
	var parts []string
	for _, name := range order {
		if fields[name] != "" {
			parts = append(parts, name+"="+fields[name])
		}
	}
	return "SharedAccessSignature " + strings.Join(parts, "&")
}

func TestVerifyEverySDKEncoding(t *testing.T) {
	key := testKey(t)
	now := time.Unix(1_700_000_000, 0)
	se := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	tests := []struct {
		name     string
		sr       string
		sig      func(string) string
		order    []string
		skn      string
		resource string // what the hub checks the token against
	}{
		{"node service: bare host with port", "localhost:8443", encodeURIComponent, []string{"sr", "sig", "skn", "se"}, "iothubowner", "localhost:8443"},
		{"node device: encodeURIComponent", encodeURIComponent("localhost:8884/devices/myDeviceId"), encodeURIComponent, []string{"sr", "sig", "skn", "se"}, "", "localhost:8884/devices/myDeviceId"},
		{"python device: quote safe=''", pythonQuote("hub.azure-devices.net/devices/d+1", ""), func(s string) string { return pythonQuote(s, "") }, []string{"sr", "sig", "se", "skn"}, "", "hub.azure-devices.net/devices/d+1"},
		{"python service: quote_plus sr, quote sig", url.QueryEscape("hub.azure-devices.net"), func(s string) string { return pythonQuote(s, "/") }, []string{"sr", "sig", "se", "skn"}, "service", "hub.azure-devices.net"},
		{"go amz: QueryEscape", url.QueryEscape("Hub.Azure-Devices.net"), url.QueryEscape, []string{"sr", "sig", "se", "skn"}, "iothubowner", "hub.azure-devices.net/devices/x"},
		{"docs: lower-case %2f", "hub.azure-devices.net%2fdevices%2fdevice1", url.QueryEscape, []string{"se", "sig", "sr"}, "", "hub.azure-devices.net/devices/device1"},
		{"unencoded sig with '+' and '/'", "h%2Fdevices%2Fd", func(s string) string { return s }, []string{"sig", "se", "sr"}, "", "h/devices/d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := sdkToken(key, tc.sr, se, tc.sig, tc.order, tc.skn)
			tok, err := ParseToken(raw)
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if tok.RawResource != tc.sr || tok.KeyName != tc.skn || tok.Expiry.Unix() != now.Add(time.Hour).Unix() {
				t.Errorf("parsed %v, want sr=%s skn=%s", tok, tc.sr, tc.skn)
			}
			if err := tok.Verify(tc.resource, now, key); err != nil {
				t.Errorf("Verify: %v", err)
			}
			other := Key("another key entirely")
			if err := tok.Verify(tc.resource, now, other, key); err != nil {
				t.Errorf("Verify with the key second: %v", err)
			}
			if err := tok.Verify(tc.resource, now, other); !errors.Is(err, ErrSignature) {
				t.Errorf("Verify with a wrong key = %v, want ErrSignature", err)
			}
		})
	}
}

func TestSignMatchesReference(t *testing.T) {
	key := testKey(t)
	exp := time.Unix(1795628776, 0)
	got := Sign("localhost:8443/devices/d 1", "iothubowner", key, exp)
	sr := "localhost%3A8443%2Fdevices%2Fd+1"
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sr + "\n1795628776"))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	want := "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=1795628776&skn=iothubowner"
	if got != want {
		t.Fatalf("Sign = %q\nwant  %q", got, want)
	}
	noSkn := Sign("h", "", key, exp)
	if strings.Contains(noSkn, "skn=") {
		t.Errorf("device token carries skn: %q", noSkn)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	key := testKey(t)
	now := time.Now()
	resources := []string{"h", "h:8443", "h/devices/d1", "h/devices/d-1.+%_#*?!(),=@$'", "h/devices/d/modules/m:1;x"}
	for _, r := range resources {
		tok, err := ParseToken(Sign(r, "", key, now.Add(time.Minute)))
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if tok.Resource != r {
			t.Errorf("Resource = %q, want %q", tok.Resource, r)
		}
		if err := tok.Verify(r, now, key); err != nil {
			t.Errorf("%s: Verify: %v", r, err)
		}
	}
}

func TestVerifyScopeAndExpiry(t *testing.T) {
	key := testKey(t)
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name     string
		sr       string
		expiry   time.Time
		resource string
		want     error
	}{
		{"hub token covers a device", "hub", now.Add(time.Second), "hub/devices/d1", nil},
		{"host is case-insensitive", "HUB.example", now.Add(time.Second), "hub.EXAMPLE/devices/d1", nil},
		{"device token covers its module", "hub/devices/d1", now.Add(time.Second), "hub/devices/d1/modules/m", nil},
		{"trailing slash ignored", "hub/devices/", now.Add(time.Second), "hub/devices/d1", nil},
		{"segment boundary", "hub/devices/d1", now.Add(time.Second), "hub/devices/d10", ErrScope},
		{"device ids are case-sensitive", "hub/devices/D1", now.Add(time.Second), "hub/devices/d1", ErrScope},
		{"device token does not cover the hub", "hub/devices/d1", now.Add(time.Second), "hub", ErrScope},
		{"other hub", "hub2", now.Add(time.Second), "hub", ErrScope},
		{"port is part of the host", "hub:1", now.Add(time.Second), "hub:2", ErrScope},
		{"expired at se", "hub", now, "hub", ErrExpired},
		{"expired before", "hub", now.Add(-time.Hour), "hub", ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseToken(Sign(tc.sr, "", key, tc.expiry))
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.Verify(tc.resource, now, key); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTamperedTokenFails(t *testing.T) {
	key := testKey(t)
	now := time.Unix(1_700_000_000, 0)
	good := Sign("hub/devices/d1", "", key, now.Add(time.Hour))
	tests := []struct{ name, from, to string }{
		{"changed device", "d1", "d2"},
		{"extended expiry", "&se=17000036", "&se=27000036"},
		{"re-encoded sr", "%2F", "%2f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.from, tc.to, 1)
			if bad == good {
				t.Fatal("replacement did not apply")
			}
			tok, err := ParseToken(bad)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.Verify(tok.Resource, now, key); !errors.Is(err, ErrSignature) {
				t.Errorf("Verify = %v, want ErrSignature", err)
			}
		})
	}
}

func TestParseTokenErrors(t *testing.T) {
	tests := []struct{ name, in, part string }{
		{"no prefix", "sr=h&sig=YQ%3D%3D&se=1", "prefix"},
		{"bearer", "Bearer abc", "prefix"},
		{"no sr", "SharedAccessSignature sig=YQ%3D%3D&se=1", "sr is missing"},
		{"no sig", "SharedAccessSignature sr=h&se=1", "sig is missing"},
		{"no se", "SharedAccessSignature sr=h&sig=YQ%3D%3D", "se is missing"},
		{"se not a number", "SharedAccessSignature sr=h&sig=YQ%3D%3D&se=soon", "se is not"},
		{"sig not base64", "SharedAccessSignature sr=h&sig=SECRET%21&se=1", "sig is not base64"},
		{"sr badly encoded", "SharedAccessSignature sr=h%zz&sig=YQ%3D%3D&se=1", "sr is not URL-encoded"},
		{"duplicate sr", "SharedAccessSignature sr=h&sr=g&sig=YQ%3D%3D&se=1", "sr appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("error %v does not wrap ErrMalformedToken", err)
			}
			if !strings.Contains(err.Error(), tc.part) {
				t.Errorf("error %q does not mention %q", err, tc.part)
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "YQ") {
				t.Errorf("error %q leaks the signature", err)
			}
		})
	}
}

func TestTokenStringRedactsSignature(t *testing.T) {
	raw := Sign("h", "p", testKey(t), time.Unix(2, 0))
	tok, err := ParseToken(raw)
	if err != nil {
		t.Fatal(err)
	}
	sig := raw[strings.Index(raw, "sig=")+4 : strings.Index(raw, "&se=")]
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok)} {
		if strings.Contains(s, sig) {
			t.Errorf("%q leaks the signature", s)
		}
	}
	if want := "SharedAccessSignature sr=h&sig=<redacted>&se=2&skn=p"; tok.String() != want {
		t.Errorf("String() = %q, want %q", tok.String(), want)
	}
}

func BenchmarkSign(b *testing.B) {
	key := testKey(b)
	exp := time.Now().Add(time.Hour)
	for b.Loop() {
		Sign("hub.azure-devices.net/devices/myDeviceId", "", key, exp)
	}
}

func BenchmarkParseVerify(b *testing.B) {
	key := testKey(b)
	now := time.Now()
	raw := Sign("hub.azure-devices.net/devices/myDeviceId", "", key, now.Add(time.Hour))
	for b.Loop() {
		tok, err := ParseToken(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := tok.Verify("hub.azure-devices.net/devices/myDeviceId", now, key); err != nil {
			b.Fatal(err)
		}
	}
}
