package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

func TestMQTTConnectAuthentication(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	cs1 := h.AddDevice(t, "dev1")
	h.AddDevice(t, "disabled")
	if r := svc.do("PUT", "/devices/disabled", map[string]any{"status": "disabled"}, "If-Match", "*"); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	cs, _ := sas.ParseConnectionString(cs1)
	host := cs.HostName
	hour := time.Now().Add(time.Hour)
	devTok := func(resource string, exp time.Time) string { return sas.Sign(resource, "", cs.SharedAccessKey, exp) }
	polTok := func(policy string) string {
		p, _ := h.Policy(policy)
		k, _ := sas.ParseKey(p.PrimaryKey)
		return sas.Sign(host+"/devices/dev1", policy, k, hour)
	}
	otherKey, _ := sas.ParseKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")

	cases := []struct {
		name, clientID, username, password string
		wantOK                             bool
	}{
		{"device key, Node form", "dev1", host + "/dev1/?api-version=2021-04-12&DeviceClientType=x", devTok(host+"/devices/dev1", hour), true},
		{"user name without '?' (Go SDK)", "dev1", host + "/dev1/api-version=2020-09-30", devTok(host+"/devices/dev1", hour), true},
		{"user name without api-version", "dev1", host + "/dev1/", devTok(host+"/devices/dev1", hour), true},
		{"bare host sr (Go SDK)", "dev1", host + "/dev1/?api-version=2020-09-30", devTok(host, hour), true},
		{"device policy token", "dev1", host + "/dev1/?api-version=2021-04-12", polTok("device"), true},
		{"service policy token", "dev1", host + "/dev1/?api-version=2021-04-12", polTok("service"), false},
		{"wrong key", "dev1", host + "/dev1/?api-version=2021-04-12", sas.Sign(host+"/devices/dev1", "", otherKey, hour), false},
		{"expired token", "dev1", host + "/dev1/?api-version=2021-04-12", devTok(host+"/devices/dev1", time.Now().Add(-time.Minute)), false},
		{"token for another device", "dev1", host + "/dev1/?api-version=2021-04-12", devTok(host+"/devices/dev2", hour), false},
		{"unknown device", "ghost", host + "/ghost/?api-version=2021-04-12", devTok(host+"/devices/ghost", hour), false},
		{"disabled device", "disabled", host + "/disabled/?api-version=2021-04-12", devTok(host+"/devices/disabled", hour), false},
		{"user name names another client", "dev1", host + "/dev2/?api-version=2021-04-12", devTok(host+"/devices/dev1", hour), false},
		{"user name with another host", "dev1", "otherhub/dev1/?api-version=2021-04-12", devTok(host+"/devices/dev1", hour), false},
		{"no password", "dev1", host + "/dev1/?api-version=2021-04-12", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := paho.NewClientOptions().AddBroker(h.MQTTBroker()).SetClientID(c.clientID).
				SetUsername(c.username).SetPassword(c.password).SetTLSConfig(h.TLSConfig()).
				SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).SetCleanSession(false)
			cl := paho.NewClient(opts)
			tok := cl.Connect()
			if !tok.WaitTimeout(10 * time.Second) {
				t.Fatal("connect timed out")
			}
			defer cl.Disconnect(0)
			if c.wantOK {
				if tok.Error() != nil {
					t.Fatalf("refused: %v", tok.Error())
				}
				return
			}
			if !errors.Is(tok.Error(), packets.ErrorRefusedNotAuthorised) {
				t.Fatalf("want CONNACK 5 (not authorized), got %v", tok.Error())
			}
		})
	}
}

func TestMQTTRefusesOtherProtocolLevels(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	opts := deviceOptions(t, h, h.AddDevice(t, "dev1"))
	opts.SetProtocolVersion(3) // MQTT 3.1
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect timed out")
	}
	if !errors.Is(tok.Error(), packets.ErrorRefusedBadProtocolVersion) {
		t.Fatalf("MQTT 3.1: %v, want CONNACK 1", tok.Error())
	}
}

func TestMQTTTwinTopics(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	d := connectDevice(t, h, h.AddDevice(t, "dev1"))
	svc.do("PATCH", "/twins/dev1", `{"properties":{"desired":{"power_level":1}}}`)

	if granted := d.subscribe("$iothub/twin/res/#", 1); granted != 1 {
		t.Fatalf("granted QoS %d", granted)
	}
	cases := []struct {
		name, topic, payload string
		qos                  byte
		wantStatus           string
		check                func(t *testing.T, topic string, body []byte)
	}{
		{"GET with a space (Node)", "$iothub/twin/GET/", " ", 0, "200", func(t *testing.T, _ string, body []byte) {
			var v map[string]map[string]any
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatal(err)
			}
			if v["desired"]["power_level"] != float64(1) || v["desired"]["$version"] != float64(2) || v["reported"]["$version"] != float64(1) {
				t.Fatalf("GET body %s", body)
			}
			if _, ok := v["desired"]["$metadata"]; ok {
				t.Fatal("device view carries $metadata")
			}
		}},
		{"GET empty at QoS 1 (Go SDK)", "$iothub/twin/GET/", "", 1, "200", nil},
		{"reported patch", "$iothub/twin/PATCH/properties/reported/", `{"connectivity":"cellular"}`, 0, "204", func(t *testing.T, topic string, body []byte) {
			if len(body) != 0 || !strings.HasSuffix(topic, "&$version=2") {
				t.Fatalf("response %s %q", topic, body)
			}
		}},
		{"reported patch at QoS 1", "$iothub/twin/PATCH/properties/reported/", `{"temperature":21.5}`, 1, "204", func(t *testing.T, topic string, _ []byte) {
			if !strings.HasSuffix(topic, "&$version=3") {
				t.Fatalf("response %s", topic)
			}
		}},
		{"reported patch with $version", "$iothub/twin/PATCH/properties/reported/", `{"$version":3,"a":1}`, 0, "400", checkErrorCode(400004)},
		{"reported patch not JSON", "$iothub/twin/PATCH/properties/reported/", `{"a":`, 0, "400", checkErrorCode(400004)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, topic, body := d.request(c.topic, c.qos, c.payload)
			if status != c.wantStatus {
				t.Fatalf("status %s, want %s: %s", status, c.wantStatus, body)
			}
			if c.check != nil {
				c.check(t, topic, body)
			}
		})
	}

	t.Run("rid is echoed verbatim", func(t *testing.T) {
		rid := "99fcc526-224c-4297-9bda-a385567bd58d"
		d.publish("$iothub/twin/GET/?$rid="+rid, 0, " ")
		m := d.await("$iothub/twin/res/200/?$rid=" + rid)
		if m.Topic() != "$iothub/twin/res/200/?$rid="+rid {
			t.Fatalf("topic %s", m.Topic())
		}
	})

	t.Run("service sees reported properties", func(t *testing.T) {
		tw := svc.do("GET", "/twins/dev1", nil).json(t)
		rep := tw["properties"].(map[string]any)["reported"].(map[string]any)
		if rep["connectivity"] != "cellular" || rep["temperature"] != 21.5 || tw["connectionState"] != "Connected" {
			t.Fatalf("twin %v", tw)
		}
	})

	t.Run("desired notifications only when subscribed", func(t *testing.T) {
		svc.do("PATCH", "/twins/dev1", `{"properties":{"desired":{"power_level":2}}}`)
		d.subscribe("$iothub/twin/PATCH/properties/desired/#", 0)
		svc.do("PATCH", "/twins/dev1", `{"properties":{"desired":{"power_level":3}}}`)
		m := d.await("$iothub/twin/PATCH/properties/desired/")
		if m.Topic() != "$iothub/twin/PATCH/properties/desired/?$version=4" || string(m.Payload()) != `{"power_level":3,"$version":4}` {
			t.Fatalf("notification %s %s (an unsubscribed change must not be sent)", m.Topic(), m.Payload())
		}
		svc.do("PATCH", "/twins/dev1", `{"tags":{"only":"tags"}}`)
		svc.do("PUT", "/twins/dev1", `{"properties":{"desired":{"other":1}}}`)
		m = d.await("$iothub/twin/PATCH/properties/desired/")
		if string(m.Payload()) != `{"other":1,"power_level":null,"$version":5}` {
			t.Fatalf("PUT notification %s (a tag-only write must not notify)", m.Payload())
		}
	})

	t.Run("telemetry is accepted and counted", func(t *testing.T) {
		d.publish("devices/dev1/messages/events/", 1, `{"t":1}`)
		d.publish("devices/dev1/messages/events/"+url.QueryEscape("$.ct")+"=application%2Fjson", 1, `{"t":2}`)
		eventually(t, "telemetry count 2", func() bool { return h.TelemetryCount("dev1", "") == 2 })
	})
}

func checkErrorCode(want int) func(*testing.T, string, []byte) {
	return func(t *testing.T, _ string, body []byte) {
		t.Helper()
		var v struct {
			ErrorCode  int    `json:"errorCode"`
			Message    string `json:"message"`
			TrackingID string `json:"trackingId"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.ErrorCode != want || v.Message == "" || v.TrackingID == "" {
			t.Fatalf("error body %s, want errorCode %d", body, want)
		}
	}
}

func TestMQTTTopicRestrictions(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	cs := h.AddDevice(t, "dev1")
	h.AddDevice(t, "dev2")

	subs := []struct {
		filter string
		qos    byte
		want   byte
	}{
		{"$iothub/twin/res/#", 0, 0},
		{"$iothub/twin/PATCH/properties/desired/#", 2, 1},
		{"$iothub/methods/POST/#", 0, 0},
		{"devices/dev1/messages/devicebound/#", 1, 1},
		{"devices/dev2/messages/devicebound/#", 1, 0x80},
		{"#", 0, 0x80},
		{"$iothub/twin/res/+", 0, 0x80},
	}
	d := connectDevice(t, h, cs)
	for _, s := range subs {
		t.Run("subscribe "+s.filter, func(t *testing.T) {
			if got := d.subscribe(s.filter, s.qos); got != s.want {
				t.Fatalf("SUBACK %#x, want %#x", got, s.want)
			}
		})
	}

	closing := []struct {
		name, topic string
		qos         byte
	}{
		{"foreign telemetry", "devices/dev2/messages/events/", 1},
		{"arbitrary topic", "hello/world", 0},
		{"QoS 2 on an allowed topic", "devices/dev1/messages/events/", 2},
	}
	for _, c := range closing {
		t.Run("publish closes: "+c.name, func(t *testing.T) {
			d := connectDevice(t, h, cs)
			d.client.Publish(c.topic, c.qos, false, "x")
			eventually(t, "disconnect", func() bool { return !d.client.IsConnectionOpen() })
		})
	}
}

func TestMQTTSessions(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	cs := h.AddDevice(t, "dev1")

	state := func() (string, string) {
		tw := svc.do("GET", "/twins/dev1", nil).json(t)
		dev := svc.do("GET", "/devices/dev1", nil).json(t)
		return tw["connectionState"].(string), dev["connectionState"].(string)
	}
	first := connectDevice(t, h, cs)
	if tw, dev := state(); tw != "Connected" || dev != "Connected" {
		t.Fatalf("after connect: twin %s device %s", tw, dev)
	}
	if last := svc.do("GET", "/devices/dev1", nil).json(t)["lastActivityTime"]; last == "0001-01-01T00:00:00Z" {
		t.Fatal("lastActivityTime not set on connect")
	}

	second := connectDevice(t, h, cs)
	eventually(t, "first connection dropped", func() bool { return !first.client.IsConnectionOpen() })
	if !second.client.IsConnectionOpen() {
		t.Fatal("the newer connection was dropped")
	}
	if tw, _ := state(); tw != "Connected" {
		t.Fatalf("takeover left state %s", tw)
	}
	second.subscribe("$iothub/twin/res/#", 0)
	if status, _, _ := second.request("$iothub/twin/GET/", 0, ""); status != "200" {
		t.Fatalf("GET on the new connection: %s", status)
	}

	second.client.Disconnect(100)
	eventually(t, "Disconnected state", func() bool { tw, dev := state(); return tw == "Disconnected" && dev == "Disconnected" })

	third := connectDevice(t, h, cs)
	if r := svc.do("PUT", "/devices/dev1", map[string]any{"status": "disabled"}, "If-Match", `"*"`); r.status != 200 {
		t.Fatalf("disable: %d", r.status)
	}
	eventually(t, "disabled device dropped", func() bool { return !third.client.IsConnectionOpen() })
}

func TestMQTTModuleIdentity(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	h.AddDevice(t, "dev1")
	mod := svc.do("PUT", "/devices/dev1/modules/mod1", map[string]any{}).json(t)
	key, _ := sas.ParseKey(mod["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["primaryKey"].(string))
	host := h.Hostname()
	opts := paho.NewClientOptions().AddBroker(h.MQTTBroker()).SetClientID("dev1/mod1").
		SetUsername(host + "/dev1/mod1/?api-version=2021-04-12").
		SetPassword(sas.Sign(host+"/devices/dev1/modules/mod1", "", key, time.Now().Add(time.Hour))).
		SetTLSConfig(h.TLSConfig()).SetProtocolVersion(4).SetAutoReconnect(false)
	d := connectWith(t, opts)
	d.subscribe("$iothub/twin/res/#", 0)
	if status, _, body := d.request("$iothub/twin/PATCH/properties/reported/", 0, `{"m":1}`); status != "204" {
		t.Fatalf("module reported patch: %s %s", status, body)
	}
	tw := svc.do("GET", "/twins/dev1/modules/mod1", nil).json(t)
	if tw["properties"].(map[string]any)["reported"].(map[string]any)["m"] != float64(1) {
		t.Fatalf("module twin %v", tw)
	}
	if dev := svc.do("GET", "/twins/dev1", nil).json(t); dev["connectionState"] != "Disconnected" {
		t.Fatal("the module connection changed the device's state")
	}
}

func TestMQTTTokenExpiryCloses(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	opts := deviceOptions(t, h, h.AddDevice(t, "dev1"))
	cs, _ := sas.ParseConnectionString(h.DeviceConnectionString(t, "dev1"))
	opts.SetPassword(sas.Sign(cs.HostName+"/devices/dev1", "", cs.SharedAccessKey, time.Now().Add(2*time.Second)))
	d := connectWith(t, opts)
	eventually(t, "disconnect at token expiry", func() bool { return !d.client.IsConnectionOpen() })
	if h.Connected("dev1", "") {
		t.Fatal("the hub still lists the session")
	}
}

func TestMQTTOverWebSocket(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	opts := deviceOptions(t, h, h.AddDevice(t, "dev1"))
	opts.Servers = nil
	opts.AddBroker("wss://" + h.HTTPSAddr + "/$iothub/websocket")
	d := connectWith(t, opts)
	d.subscribe("$iothub/twin/res/#", 0)
	d.subscribe("$iothub/twin/PATCH/properties/desired/#", 0)
	if status, _, body := d.request("$iothub/twin/PATCH/properties/reported/", 1, `{"ws":true}`); status != "204" {
		t.Fatalf("reported patch over websocket: %s %s", status, body)
	}
	svc.do("PATCH", "/twins/dev1", `{"properties":{"desired":{"x":1}}}`)
	if m := d.await("$iothub/twin/PATCH/properties/desired/"); string(m.Payload()) != `{"x":1,"$version":2}` {
		t.Fatalf("notification %s", m.Payload())
	}
	if !h.Connected("dev1", "") {
		t.Fatal("websocket session not listed")
	}
	bad := deviceOptions(t, h, h.DeviceConnectionString(t, "dev1"))
	bad.Servers = nil
	bad.AddBroker("wss://" + h.HTTPSAddr + "/$iothub/websocket")
	bad.SetPassword("SharedAccessSignature sr=x&sig=eA%3D%3D&se=1")
	cl := paho.NewClient(bad)
	tok := cl.Connect()
	tok.WaitTimeout(10 * time.Second)
	if !errors.Is(tok.Error(), packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("bad token over websocket: %v", tok.Error())
	}
}

func TestDesiredNotificationsInVersionOrder(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h, h.ServiceConnectionString)
	d := connectDevice(t, h, h.AddDevice(t, "dev1"))
	d.subscribe("$iothub/twin/PATCH/properties/desired/#", 0)
	const writers = 20
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := svc.do("PATCH", "/twins/dev1", fmt.Sprintf(`{"properties":{"desired":{"w%d":1}}}`, i)); r.status != 200 {
				t.Errorf("patch %d: %d", i, r.status)
			}
		}()
	}
	wg.Wait()
	last := 0
	for range writers {
		m := d.await("$iothub/twin/PATCH/properties/desired/")
		var body struct {
			Version int `json:"$version"`
		}
		if err := json.Unmarshal(m.Payload(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Version <= last {
			t.Fatalf("notification $version %d after %d", body.Version, last)
		}
		last = body.Version
	}
}
