package hubtest_test

import (
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

func TestStart(t *testing.T) {
	cases := []struct {
		name string
		opts []hubtest.Option
	}{
		{"durable", nil},
		{"in memory", []hubtest.Option{hubtest.InMemory()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := hubtest.Start(t, c.opts...)
			svc, err := sas.ParseConnectionString(h.ServiceConnectionString)
			if err != nil || svc.Kind() != sas.KindService || svc.HostName != h.HTTPSAddr || !strings.HasPrefix(h.HTTPSAddr, "127.0.0.1:") {
				t.Fatalf("service connection string: %v %+v", err, svc)
			}
			dev, err := sas.ParseConnectionString(h.AddDevice(t, "dev1"))
			if err != nil || dev.DeviceID != "dev1" || dev.GatewayHostName != h.MQTTAddr || dev.HostName != h.HTTPSAddr {
				t.Fatalf("device connection string: %v %+v", err, dev)
			}
			mod, err := sas.ParseConnectionString(h.AddModule(t, "dev1", "mod1"))
			if err != nil || mod.Kind() != sas.KindModule || mod.ModuleID != "mod1" || mod.GatewayHostName != h.MQTTAddr {
				t.Fatalf("module connection string: %v %+v", err, mod)
			}
			pem, err := os.ReadFile(h.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) || !pool.Equal(h.CAPool) {
				t.Fatal("CA file and pool differ")
			}
			resp, err := h.HTTPClient().Get("https://" + h.HTTPSAddr + "/devices")
			if err != nil {
				t.Fatalf("TLS to the hub with its CA: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("unauthenticated request: %d", resp.StatusCode)
			}
		})
	}
}

func TestRecordRequests(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory(), hubtest.RecordRequests())
	cs, _ := sas.ParseConnectionString(h.ServiceConnectionString)
	token := sas.Sign(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	req, _ := http.NewRequest("PATCH", "https://"+h.HTTPSAddr+"/twins/my%20dev?api-version=2021-04-12", strings.NewReader(`{"tags":{}}`))
	req.Header.Set("Authorization", token)
	req.Header.Set("If-Match", `"*"`)
	resp, err := h.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := h.Requests()
	if len(got) != 1 {
		t.Fatalf("%d requests recorded", len(got))
	}
	r := got[0]
	if r.Method != "PATCH" || r.Path != "/twins/my%20dev" || r.RawQuery != "api-version=2021-04-12" ||
		r.Header.Get("If-Match") != `"*"` || string(r.Body) != `{"tags":{}}` {
		t.Fatalf("recorded %+v", r)
	}
	if auth := r.Header.Get("Authorization"); auth != "SharedAccessSignature sr&sig&se&skn" {
		t.Fatalf("recorded Authorization %q", auth)
	}
	h.ResetRequests()
	if len(h.Requests()) != 0 {
		t.Fatal("reset kept requests")
	}
}
