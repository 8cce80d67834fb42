package device_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/twinsync/twinsync/pkg/device"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// BenchmarkUpdateReported measures one device's reported-patch round trip
// through this client against the embedded hub and, as the reference in
// the same run, the same round trip done with a bare paho client (publish
// at QoS 1, wait for the response on $iothub/twin/res/#). The two alternate
// within each iteration so that other load on the machine hits both alike;
// ratio is client time over reference time, the client's overhead.
//
//	go test -run '^$' -bench BenchmarkUpdateReported -benchtime=3000x -count=3 ./pkg/device/
func BenchmarkUpdateReported(b *testing.B) {
	h := hubtest.Start(b, hubtest.InMemory())
	patch := []byte(`{"connectivity":"cellular","seq":1}`)
	c, err := device.Dial(context.Background(), device.Config{
		ConnectionString: h.AddDevice(b, "bench-client"), RootCAs: h.CAPool, IgnoreDesired: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw, responses := rawDevice(b, h, h.AddDevice(b, "bench-raw"))
	defer raw.Disconnect(0)

	ctx := context.Background()
	var clientTime, rawTime time.Duration
	rid := 0
	for b.Loop() {
		start := time.Now()
		if _, err := c.UpdateReported(ctx, patch); err != nil {
			b.Fatal(err)
		}
		clientTime += time.Since(start)

		start = time.Now()
		rid++
		topic := "$iothub/twin/PATCH/properties/reported/?$rid=" + strconv.Itoa(rid)
		if tok := raw.Publish(topic, 1, false, patch); tok.Wait() && tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		select {
		case <-responses:
		case <-time.After(10 * time.Second):
			b.Fatal("no response")
		}
		rawTime += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(clientTime.Nanoseconds())/n/1e3, "client-µs/op")
	b.ReportMetric(float64(rawTime.Nanoseconds())/n/1e3, "paho-µs/op")
	b.ReportMetric(float64(clientTime)/float64(rawTime), "ratio")
}

// rawDevice connects a bare paho client as the device and returns it with
// a channel of its twin responses.
func rawDevice(b *testing.B, h *hubtest.Hub, connectionString string) (paho.Client, <-chan paho.Message) {
	b.Helper()
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		b.Fatal(err)
	}
	responses := make(chan paho.Message, 16)
	opts := paho.NewClientOptions().
		AddBroker(h.MQTTBroker()).
		SetClientID(cs.DeviceID).
		SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").
		SetPassword(sas.Sign(cs.Resource(), "", cs.SharedAccessKey, time.Now().Add(time.Hour))).
		SetProtocolVersion(4).
		SetTLSConfig(h.TLSConfig()).
		SetAutoReconnect(false)
	client := paho.NewClient(opts)
	if tok := client.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	tok := client.Subscribe("$iothub/twin/res/#", 1, func(_ paho.Client, m paho.Message) { responses <- m })
	if tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	return client, responses
}
