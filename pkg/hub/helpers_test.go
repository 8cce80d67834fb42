package hub_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// service is a minimal REST client for the tests: it signs each request
// with a policy from a connection string, as the Node service SDK does.
type service struct {
	t      testing.TB
	hub    *hubtest.Hub
	cs     *sas.ConnectionString
	client *http.Client
}

func newService(t testing.TB, h *hubtest.Hub, connString string) *service {
	t.Helper()
	cs, err := sas.ParseConnectionString(connString)
	if err != nil {
		t.Fatal(err)
	}
	return &service{t: t, hub: h, cs: cs, client: h.HTTPClient()}
}

func (s *service) token() string {
	return sas.Sign(s.cs.HostName, s.cs.SharedAccessKeyName, s.cs.SharedAccessKey, time.Now().Add(time.Hour))
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// errorCode returns the iothub-errorcode header after checking the body
// is shape A with the same code.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	code := r.header.Get("iothub-errorcode")
	var body struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	if !strings.HasPrefix(body.Message, "ErrorCode:"+code+";") || !strings.HasPrefix(body.ExceptionMessage, "Tracking ID:") {
		t.Fatalf("error body %s does not match shape A with code %q", r.body, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("error content type %q", ct)
	}
	return code
}

// do sends a request; headers alternate name, value.
func (s *service) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	return s.doAuth(s.token(), method, path, body, headers...)
}

func (s *service) doAuth(auth, method, path string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(method, "https://"+s.cs.HostName+path+sep+"api-version=2021-04-12", rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, data}
}

// device is a paho MQTT device client speaking IoT Hub's twin topics.
type device struct {
	t      testing.TB
	client paho.Client
	mu     sync.Mutex
	msgs   []paho.Message
	rid    int
}

// deviceOptions returns paho options for a device connection string
// produced by hubtest.
func deviceOptions(t testing.TB, h *hubtest.Hub, connString string) *paho.ClientOptions {
	t.Helper()
	cs, err := sas.ParseConnectionString(connString)
	if err != nil {
		t.Fatal(err)
	}
	resource := cs.HostName + "/devices/" + cs.DeviceID
	token := sas.Sign(resource, "", cs.SharedAccessKey, time.Now().Add(time.Hour))
	return paho.NewClientOptions().
		AddBroker("tls://" + cs.GatewayHostName).
		SetClientID(cs.DeviceID).
		SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").
		SetPassword(token).
		SetTLSConfig(h.TLSConfig()).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second)
}

func connectDevice(t testing.TB, h *hubtest.Hub, connString string) *device {
	t.Helper()
	return connectWith(t, deviceOptions(t, h, connString))
}

func connectWith(t testing.TB, opts *paho.ClientOptions) *device {
	t.Helper()
	d := &device{t: t}
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		d.mu.Lock()
		d.msgs = append(d.msgs, m)
		d.mu.Unlock()
	})
	d.client = paho.NewClient(opts)
	tok := d.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { d.client.Disconnect(0) })
	return d
}

func (d *device) subscribe(filter string, qos byte) byte {
	d.t.Helper()
	tok := d.client.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func (d *device) publish(topic string, qos byte, payload string) {
	d.t.Helper()
	tok := d.client.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// await returns the first received message whose topic starts with prefix.
func (d *device) await(prefix string) paho.Message {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		for i, m := range d.msgs {
			if strings.HasPrefix(m.Topic(), prefix) {
				d.msgs = append(d.msgs[:i], d.msgs[i+1:]...)
				d.mu.Unlock()
				return m
			}
		}
		d.mu.Unlock()
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	d.t.Fatalf("no message on %s within 10s", prefix)
	return nil
}

// request publishes a twin request with a fresh $rid and awaits its
// response.
func (d *device) request(topicPrefix string, qos byte, payload string) (status string, topic string, body []byte) {
	d.t.Helper()
	d.rid++
	rid := fmt.Sprintf("rid-%d", d.rid)
	d.publish(topicPrefix+"?$rid="+rid, qos, payload)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		for i, m := range d.msgs {
			if strings.HasPrefix(m.Topic(), "$iothub/twin/res/") && strings.Contains(m.Topic(), "$rid="+rid) {
				d.msgs = append(d.msgs[:i], d.msgs[i+1:]...)
				d.mu.Unlock()
				rest := strings.TrimPrefix(m.Topic(), "$iothub/twin/res/")
				status, _, _ = strings.Cut(rest, "/")
				return status, m.Topic(), m.Payload()
			}
		}
		d.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
	d.t.Fatalf("no response to %s within 10s", rid)
	return "", "", nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func hmacB64(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
