package sas

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a settable clock for renewal tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestKeySourceRenewsBeforeExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	src := NewKeySource("hub", "iothubowner", testKey(t))
	src.Now = clock.Now

	first, exp1, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.now.Add(DefaultTTL); !exp1.Equal(want) {
		t.Errorf("expiry = %v, want %v", exp1, want)
	}
	steps := []struct {
		advance time.Duration
		renewed bool
	}{
		{time.Minute, false},
		{43 * time.Minute, false}, // 44:00 in: cached
		{59 * time.Second, false}, // 44:59 in: still cached
		{time.Second, true},       // 45:00 in: 15 min left, renewed
		{time.Minute, false},
	}
	prev := first
	for i, s := range steps {
		clock.now = clock.now.Add(s.advance)
		tok, exp, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if renewed := tok != prev; renewed != s.renewed {
			t.Errorf("step %d: renewed = %v, want %v", i, renewed, s.renewed)
		}
		parsed, err := ParseToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		if err := parsed.Verify("hub", clock.now, testKey(t)); err != nil {
			t.Errorf("step %d: token does not verify: %v", i, err)
		}
		if !exp.Equal(parsed.Expiry) {
			t.Errorf("step %d: expiry %v differs from token's %v", i, exp, parsed.Expiry)
		}
		prev = tok
	}
}

func TestStaticSource(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	raw := Sign("hub/devices/d1", "", testKey(t), now.Add(time.Minute))
	src, err := NewStaticSource(raw)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: now}
	src.Now = clock.Now
	if tok, _, err := src.Token(); err != nil || tok != raw {
		t.Errorf("Token() = %v, want the given token", err)
	}
	clock.now = now.Add(time.Minute)
	if _, _, err := src.Token(); !errors.Is(err, ErrExpired) {
		t.Errorf("Token() after expiry = %v, want ErrExpired", err)
	}
	if _, err := NewStaticSource("garbage"); !errors.Is(err, ErrMalformedToken) {
		t.Errorf("NewStaticSource(garbage) = %v", err)
	}
}

func TestConnectionStringTokenSource(t *testing.T) {
	now := time.Now()
	tokenCS := "HostName=h;DeviceId=d1;SharedAccessSignature=" + Sign("h/devices/d1", "", testKey(t), now.Add(time.Hour))
	tests := []struct {
		name     string
		cs       string
		resource string
		skn      string
		wantErr  error
	}{
		{"service", "HostName=h:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKeyB64, "h:8443", "iothubowner", nil},
		{"device", "HostName=h;DeviceId=d1;SharedAccessKey=" + testKeyB64, "h/devices/d1", "", nil},
		{"module", "HostName=h;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + testKeyB64, "h/devices/d1/modules/m1", "", nil},
		{"given token", tokenCS, "h/devices/d1", "", nil},
		{"x509", "HostName=h;DeviceId=d1;x509=true", "", "", ErrNoCredential},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := ParseConnectionString(tc.cs)
			if err != nil {
				t.Fatal(err)
			}
			src, err := cs.TokenSource()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("TokenSource() error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			raw, _, err := src.Token()
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ParseToken(raw)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Resource != tc.resource || tok.KeyName != tc.skn {
				t.Errorf("token scoped to %q skn %q, want %q %q", tok.Resource, tok.KeyName, tc.resource, tc.skn)
			}
			if err := tok.Verify(tc.resource, now, testKey(t)); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}
