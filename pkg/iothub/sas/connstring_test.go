package sas

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const testKeyB64 = "c2VjcmV0LWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc4OWFiY2Q=" // "secret-key-for-tests-0123456789abcd"

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ConnectionString
		kind Kind
	}{
		{
			name: "service",
			in:   "HostName=hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKeyB64,
			want: ConnectionString{HostName: "hub.azure-devices.net", SharedAccessKeyName: "iothubowner"},
			kind: KindService,
		},
		{
			name: "service with port and trailing semicolon, fields reordered",
			in:   "SharedAccessKey=" + testKeyB64 + ";SharedAccessKeyName=service;HostName=localhost:8443;",
			want: ConnectionString{HostName: "localhost:8443", SharedAccessKeyName: "service"},
			kind: KindService,
		},
		{
			name: "device",
			in:   "HostName=hub.azure-devices.net;DeviceId=myDeviceId;SharedAccessKey=" + testKeyB64,
			want: ConnectionString{HostName: "hub.azure-devices.net", DeviceID: "myDeviceId"},
			kind: KindDevice,
		},
		{
			name: "device behind a gateway, unknown key ignored",
			in:   "HostName=myhub.example.invalid;DeviceId=d1;SharedAccessKey=" + testKeyB64 + ";GatewayHostName=localhost:8884;Future=1",
			want: ConnectionString{HostName: "myhub.example.invalid", DeviceID: "d1", GatewayHostName: "localhost:8884"},
			kind: KindDevice,
		},
		{
			name: "module",
			in:   "HostName=h;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + testKeyB64,
			want: ConnectionString{HostName: "h", DeviceID: "d1", ModuleID: "m1"},
			kind: KindModule,
		},
		{
			name: "x509 device",
			in:   "HostName=h;DeviceId=d1;x509=true",
			want: ConnectionString{HostName: "h", DeviceID: "d1", X509: true},
			kind: KindDevice,
		},
		{
			name: "device with a token, whose value holds '=' signs",
			in:   "HostName=h;DeviceId=d1;SharedAccessSignature=SharedAccessSignature sr=h%2Fdevices%2Fd1&sig=abc%3D&se=1",
			want: ConnectionString{HostName: "h", DeviceID: "d1", SharedAccessSignature: "SharedAccessSignature sr=h%2Fdevices%2Fd1&sig=abc%3D&se=1"},
			kind: KindDevice,
		},
		{
			name: "IPv6 literal with port",
			in:   "HostName=[::1]:8443;SharedAccessKeyName=p;SharedAccessKey=" + testKeyB64,
			want: ConnectionString{HostName: "[::1]:8443", SharedAccessKeyName: "p"},
			kind: KindService,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConnectionString(tc.in)
			if err != nil {
				t.Fatalf("ParseConnectionString: %v", err)
			}
			if got.Kind() != tc.kind {
				t.Errorf("Kind = %v, want %v", got.Kind(), tc.kind)
			}
			key := got.SharedAccessKey
			got.SharedAccessKey = nil
			if got.Secret() != tc.want.Secret() || got.X509 != tc.want.X509 {
				t.Errorf("got %+v, want %+v", got.Secret(), tc.want.Secret())
			}
			if strings.Contains(tc.in, "SharedAccessKey=") && key.Base64() != testKeyB64 {
				t.Errorf("key not decoded")
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	key := ";SharedAccessKey=" + testKeyB64
	tests := []struct {
		name, in, part string
	}{
		{"empty", "", "HostName is missing"},
		{"no host", "SharedAccessKeyName=p" + key, "HostName is missing"},
		{"host with scheme", "HostName=https://h;SharedAccessKeyName=p" + key, "HostName must be host"},
		{"bad port", "HostName=h:99999;SharedAccessKeyName=p" + key, "HostName has an invalid port"},
		{"bad gateway", "HostName=h;DeviceId=d;GatewayHostName=g:x" + key, "GatewayHostName has an invalid port"},
		{"no policy", "HostName=h" + key, "SharedAccessKeyName is missing"},
		{"no key", "HostName=h;SharedAccessKeyName=p", "SharedAccessKey is missing"},
		{"bad key", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64!", "SharedAccessKey is not valid base64"},
		{"segment without =", "HostName=h;SharedAccessKeyName=p;" + testKeyB64[:20], "segment 3 is not Key=Value"},
		{"empty name", "HostName=h;=x;SharedAccessKeyName=p" + key, "segment 2 has an empty name"},
		{"module without device", "HostName=h;ModuleId=m" + key, "ModuleId needs a DeviceId"},
		{"device without credential", "HostName=h;DeviceId=d", "one of SharedAccessKey"},
		{"device with two credentials", "HostName=h;DeviceId=d;x509=true" + key, "only one of"},
		{"bad x509", "HostName=h;DeviceId=d;x509=yes", "x509 must be true or false"},
		{"x509 service", "HostName=h;SharedAccessKeyName=p;x509=true" + key, "x509 is only valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConnectionString(tc.in)
			if err == nil {
				t.Fatal("want an error")
			}
			if !errors.Is(err, ErrConnectionString) {
				t.Errorf("error %q does not wrap ErrConnectionString", err)
			}
			if !strings.Contains(err.Error(), tc.part) {
				t.Errorf("error %q does not mention %q", err, tc.part)
			}
			if strings.Contains(err.Error(), testKeyB64[:10]) || strings.Contains(err.Error(), "base64!") {
				t.Errorf("error %q leaks the key", err)
			}
		})
	}
}

func TestConnectionStringRedaction(t *testing.T) {
	in := "HostName=h:8443;DeviceId=d1;SharedAccessKey=" + testKeyB64 + ";GatewayHostName=g"
	cs, err := ParseConnectionString(in)
	if err != nil {
		t.Fatal(err)
	}
	tok := &ConnectionString{HostName: "h", DeviceID: "d", SharedAccessSignature: "SharedAccessSignature sr=h&sig=SECRETSIG&se=1"}
	for _, s := range []string{
		cs.String(), fmt.Sprint(cs), fmt.Sprintf("%v %+v %#v %s", cs, cs, cs, cs),
		fmt.Sprintf("%v %#v", cs.SharedAccessKey, cs.SharedAccessKey), tok.String(), fmt.Sprintf("%#v", tok),
	} {
		if strings.Contains(s, testKeyB64[:10]) || strings.Contains(s, "SECRETSIG") {
			t.Errorf("redacted form %q leaks a secret", s)
		}
	}
	if want := "HostName=h:8443;DeviceId=d1;SharedAccessKey=<redacted>;GatewayHostName=g"; cs.String() != want {
		t.Errorf("String() = %q, want %q", cs.String(), want)
	}
	if cs.Secret() != "HostName=h:8443;DeviceId=d1;SharedAccessKey="+testKeyB64+";GatewayHostName=g" {
		t.Errorf("Secret() does not round-trip: %q", cs.Secret())
	}
	again, err := ParseConnectionString(cs.Secret())
	if err != nil || again.Secret() != cs.Secret() {
		t.Errorf("Secret() does not parse back: %v", err)
	}
}

func TestConnectionStringResourceAndDialHost(t *testing.T) {
	tests := []struct {
		cs       ConnectionString
		resource string
		dial     string
	}{
		{ConnectionString{HostName: "h"}, "h", "h"},
		{ConnectionString{HostName: "h:1", DeviceID: "d"}, "h:1/devices/d", "h:1"},
		{ConnectionString{HostName: "h", DeviceID: "d", ModuleID: "m", GatewayHostName: "g:2"}, "h/devices/d/modules/m", "g:2"},
	}
	for _, tc := range tests {
		if got := tc.cs.Resource(); got != tc.resource {
			t.Errorf("Resource() = %q, want %q", got, tc.resource)
		}
		if got := tc.cs.DialHost(); got != tc.dial {
			t.Errorf("DialHost() = %q, want %q", got, tc.dial)
		}
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{testKeyB64, true},
		{strings.TrimRight(testKeyB64, "="), true},
		{"", false},
		{"!!!!", false},
		{"====", false},
	}
	for _, tc := range tests {
		k, err := ParseKey(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKey(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err == nil && k.Base64() != testKeyB64 {
			t.Errorf("ParseKey(%q) = %q", tc.in, k.Base64())
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("error %v is not ErrInvalidKey", err)
		}
	}
}
