package device

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

const testKey = "dGhpcyBpcyBhIHRlc3Qga2V5IG9mIDMyIGJ5dGVzISE=" // not a real key

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantErr    error
		wantText   string
		wantBroker string
		wantUser   string
		wantServer string
	}{
		{
			name:       "device",
			cfg:        Config{ConnectionString: "HostName=hub.example;DeviceId=d1;SharedAccessKey=" + testKey},
			wantBroker: "tls://hub.example:8883", wantUser: "hub.example/d1/?api-version=2021-04-12&DeviceClientType=", wantServer: "hub.example",
		},
		{
			name:       "gateway redirects only the socket",
			cfg:        Config{ConnectionString: "HostName=hub.example;DeviceId=d1;SharedAccessKey=" + testKey + ";GatewayHostName=127.0.0.1:18883"},
			wantBroker: "tls://127.0.0.1:18883", wantUser: "hub.example/d1/?", wantServer: "127.0.0.1",
		},
		{
			name:       "module with a port in HostName",
			cfg:        Config{ConnectionString: "HostName=localhost:9883;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + testKey},
			wantBroker: "tls://localhost:9883", wantUser: "localhost:9883/d1/m1/?", wantServer: "localhost",
		},
		{name: "service string refused", cfg: Config{ConnectionString: "HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey}, wantErr: sas.ErrConnectionString, wantText: "with DeviceId"},
		{name: "garbage", cfg: Config{ConnectionString: "nonsense"}, wantErr: sas.ErrConnectionString},
		{name: "x509 unsupported", cfg: Config{ConnectionString: "HostName=h;DeviceId=d;x509=true"}, wantText: "x509"},
		{name: "renewal longer than the token", cfg: Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + testKey, TokenLifetime: time.Second, RenewBefore: 2 * time.Second}, wantText: "RenewBefore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != nil || tt.wantText != "" {
				if err == nil {
					t.Fatal("expected an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v is not %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("error %q does not contain %q", err, tt.wantText)
				}
				if strings.Contains(err.Error(), testKey) {
					t.Errorf("error leaks the key: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.broker != tt.wantBroker {
				t.Errorf("broker = %q, want %q", c.broker, tt.wantBroker)
			}
			if !strings.HasPrefix(c.userName, tt.wantUser) {
				t.Errorf("user name = %q, want prefix %q", c.userName, tt.wantUser)
			}
			if c.tlsConfig.ServerName != tt.wantServer {
				t.Errorf("TLS server name = %q, want %q", c.tlsConfig.ServerName, tt.wantServer)
			}
		})
	}
}

func TestTokenRenewalDefaults(t *testing.T) {
	tests := []struct {
		lifetime, want time.Duration
	}{
		{0, 15 * time.Minute},
		{time.Hour, 15 * time.Minute},
		{5 * time.Second, 1250 * time.Millisecond},
	}
	for _, tt := range tests {
		got := Config{TokenLifetime: tt.lifetime}.withDefaults().RenewBefore
		if got != tt.want {
			t.Errorf("lifetime %v: RenewBefore = %v, want %v", tt.lifetime, got, tt.want)
		}
	}
}

func TestGivenTokenExpired(t *testing.T) {
	key, _ := sas.ParseKey(testKey)
	expired := sas.Sign("h/devices/d", "", key, time.Now().Add(-time.Minute))
	c, err := New(Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessSignature=" + expired})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = c.token()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("token() error = %v, want ErrRefused mentioning expiry", err)
	}
	if strings.Contains(err.Error(), "sig=") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestCloseWithoutConnect(t *testing.T) {
	c, err := New(Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + testKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
	if _, open := <-c.DesiredPatches(); open {
		t.Fatal("desired channel still open")
	}
	if _, err := c.UpdateReported(t.Context(), map[string]any{"a": 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateReported after Close = %v, want ErrClosed", err)
	}
}
