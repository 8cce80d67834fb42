package hub

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/twinsync/twinsync/pkg/twin"
)

// s3UnitTwinUpdates is what one S3 IoT Hub unit allows (spec §7.2).
const s3UnitTwinUpdates = 250

const httpsClients = 8

// BenchmarkTwinPatchHTTPS measures PATCH /twins/{id} over HTTPS with
// keep-alive from 8 concurrent clients (one twin each), durable (fsync'd
// bbolt) and in memory. The reference, measured in the same run, is a
// trivial net/http TLS handler with the same certificate, clients and
// request; the S3 unit limit is the other reference.
func BenchmarkTwinPatchHTTPS(b *testing.B) {
	for _, mode := range []struct {
		name     string
		inMemory bool
	}{{"durable", false}, {"in-memory", true}} {
		b.Run(mode.name, func(b *testing.B) {
			h := startBenchHub(b, mode.inMemory)
			for i := range httpsClients {
				if _, err := h.RegisterDevice("bench" + strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
			ref := trivialTLSRate(b, h)
			token := ownerToken(h)
			body := []byte(`{"properties":{"desired":{"power_level":1,"mode":"eco"}},"tags":{"location":{"plant":"Redmond43"}}}`)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			runClients(b, b.N, httpsClients, func(worker int) func() error {
				client := benchClient(h)
				url := "https://" + h.Hostname() + "/twins/bench" + strconv.Itoa(worker) + "?api-version=2021-04-12"
				return func() error {
					return doRequest(client, "PATCH", url, token, body)
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			cpuPerOp := float64(cpuTime()-cpu0) / float64(b.N)
			b.ReportMetric(cpuPerOp, "cpu-ns/op")
			b.ReportMetric(trivialOnce.cpuPerOp, "trivial-cpu-ns/op")
			b.ReportMetric(trivialOnce.cpuPerOp/cpuPerOp, "x-trivial-cpu")
			b.ReportMetric(2e9/cpuPerOp, "2core-capacity/s")
			b.ReportMetric(rate, "patches/s")
			b.ReportMetric(ref, "trivial-req/s")
			b.ReportMetric(rate/ref, "x-trivial")
			b.ReportMetric(rate/s3UnitTwinUpdates, "x-S3unit")
		})
	}
}

// runClients runs n operations spread over workers goroutines; each worker
// builds its operation once (its own client and connection).
func runClients(b *testing.B, n, workers int, newOp func(worker int) func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		count := n / workers
		if w < n%workers {
			count++
		}
		op := newOp(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range count {
				if err := op(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func doRequest(client *http.Client, method, url, token string, body []byte) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", method, resp.StatusCode)
	}
	return nil
}

var trivialOnce struct {
	sync.Once
	rate, cpuPerOp float64
}

// trivialTLSRate measures, once per run, a net/http TLS server whose
// handler only answers {} with the hub's certificate, with the same
// clients and request as the twin benchmark.
func trivialTLSRate(b *testing.B, h *Hub) float64 {
	trivialOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", jsonContentType)
				_, _ = w.Write([]byte("{}"))
			}),
			TLSConfig: h.certs.tlsConfig(),
			ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
		}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		defer srv.Close()
		body := []byte(`{"properties":{"desired":{"power_level":1,"mode":"eco"}},"tags":{"location":{"plant":"Redmond43"}}}`)
		const n = 20000
		start, cpu0 := time.Now(), cpuTime()
		runClients(b, n, httpsClients, func(int) func() error {
			client := benchClient(h)
			url := "https://" + ln.Addr().String() + "/twins/x"
			return func() error { return doRequest(client, "PATCH", url, "t", body) }
		})
		trivialOnce.rate = n / time.Since(start).Seconds()
		trivialOnce.cpuPerOp = float64(cpuTime()-cpu0) / n
	})
	return trivialOnce.rate
}

const mqttDevices = 1000

// reportedPayload is the reported patch of the MQTT benchmark; the
// reference relays a payload of the same size.
var reportedPayload = []byte(`{"temperature":21.5,"connectivity":"cellular"}`)

// BenchmarkMQTTReportedPatch measures reported-property PATCH round trips
// (QoS 1 publish, wait for the 204 response) from 1,000 connected devices,
// each sending its next patch when the previous one was answered. The
// reference, measured in the same run, is a plain mochi-mqtt broker over
// TLS relaying QoS 1 publishes of the same size back to the sender (publish
// to its own topic, wait for the delivery).
func BenchmarkMQTTReportedPatch(b *testing.B) {
	for _, mode := range []struct {
		name     string
		inMemory bool
	}{{"durable", false}, {"in-memory", true}} {
		b.Run(mode.name, func(b *testing.B) {
			h := startBenchHub(b, mode.inMemory)
			ref := plainBrokerRate(b, h)
			clients := make([]*rawMQTT, mqttDevices)
			tlsConfig := &tls.Config{RootCAs: h.CACertPool(), ServerName: "127.0.0.1"}
			for i := range clients {
				id := "dev" + strconv.Itoa(i)
				if _, err := h.RegisterDevice(id); err != nil {
					b.Fatal(err)
				}
				c, err := dialRawMQTT(h.MQTTAddr(), tlsConfig, id, h.Hostname()+"/"+id+"/?api-version=2021-04-12", deviceToken(h, id))
				if err != nil {
					b.Fatal(err)
				}
				defer c.conn.Close()
				if err := c.subscribe("$iothub/twin/res/#", 1); err != nil {
					b.Fatal(err)
				}
				clients[i] = c
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			runClients(b, b.N, mqttDevices, func(w int) func() error {
				c := clients[w]
				rid := 0
				return func() error {
					rid++
					if err := c.publish1("$iothub/twin/PATCH/properties/reported/?$rid="+strconv.Itoa(rid), reportedPayload); err != nil {
						return err
					}
					topic, err := c.awaitPublish("$iothub/twin/res/")
					if err != nil {
						return err
					}
					if !bytes.HasPrefix([]byte(topic), []byte("$iothub/twin/res/204/")) {
						return fmt.Errorf("response %s", topic)
					}
					return nil
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			cpuPerOp := float64(cpuTime()-cpu0) / float64(b.N)
			b.ReportMetric(cpuPerOp, "cpu-ns/op")
			b.ReportMetric(brokerOnce.cpuPerOp, "broker-cpu-ns/op")
			b.ReportMetric(brokerOnce.cpuPerOp/cpuPerOp, "x-broker-cpu")
			b.ReportMetric(2e9/cpuPerOp, "2core-capacity/s")
			b.ReportMetric(rate, "patches/s")
			b.ReportMetric(ref, "broker-relays/s")
			b.ReportMetric(rate/ref, "x-broker")
		})
	}
}

var brokerOnce struct {
	sync.Once
	rate, cpuPerOp float64
}

// plainBrokerRate measures, once per run, a mochi-mqtt broker with no
// hooks but allow-all, over TLS with the hub's certificate: 1,000 clients
// each publish at QoS 1 to their own topic and wait for the delivery.
func plainBrokerRate(b *testing.B, h *Hub) float64 {
	brokerOnce.Do(func() {
		srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.DiscardHandler)})
		if err := srv.AddHook(new(allowAll), nil); err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.AddListener(listeners.NewNet("ref", tls.NewListener(ln, h.certs.tlsConfig()))); err != nil {
			b.Fatal(err)
		}
		if err := srv.Serve(); err != nil {
			b.Fatal(err)
		}
		// Close only once every client is gone: mochi's Close can deadlock
		// against concurrent disconnects (see mqttEndpoint.close).
		defer func() {
			for _, cl := range srv.Clients.GetAll() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
			srv.Listeners.ClientsWg.Wait()
			_ = srv.Close()
		}()
		tlsConfig := &tls.Config{RootCAs: h.CACertPool(), ServerName: "127.0.0.1"}
		clients := make([]*rawMQTT, mqttDevices)
		for i := range clients {
			c, err := dialRawMQTT(ln.Addr().String(), tlsConfig, "ref"+strconv.Itoa(i), "u", "p")
			if err != nil {
				b.Fatal(err)
			}
			defer c.conn.Close()
			if err := c.subscribe("bench/"+strconv.Itoa(i), 1); err != nil {
				b.Fatal(err)
			}
			clients[i] = c
		}
		const n = 30000
		start, cpu0 := time.Now(), cpuTime()
		runClients(b, n, mqttDevices, func(w int) func() error {
			c := clients[w]
			topic := "bench/" + strconv.Itoa(w)
			return func() error {
				if err := c.publish1(topic, reportedPayload); err != nil {
					return err
				}
				_, err := c.awaitPublish(topic)
				return err
			}
		})
		brokerOnce.rate = n / time.Since(start).Seconds()
		brokerOnce.cpuPerOp = float64(cpuTime()-cpu0) / n
	})
	return brokerOnce.rate
}

const queryTwins = 100_000

// BenchmarkQueryTagFilter measures POST /devices/query with SELECT * and a
// tag filter over 100,000 twins through REST: 1,000 twins match (one plant
// in 100); one page of 100 and all 1,000 rows in one page. A filter on a
// reported property, which no index covers, shows the full scan.
func BenchmarkQueryTagFilter(b *testing.B) {
	h := startBenchHub(b, true)
	seedTwins(b, h, queryTwins)
	token := ownerToken(h)
	client := benchClient(h)
	url := "https://" + h.Hostname() + "/devices/query?api-version=2021-04-12"
	cases := []struct {
		name, query string
		pageSize    int
		wantRows    int
	}{
		{"tag-filter-page-100", "SELECT * FROM devices WHERE tags.location.plant = 'plant42'", 100, 100},
		{"tag-filter-all-1000", "SELECT * FROM devices WHERE tags.location.plant = 'plant42'", 1000, 1000},
		{"unindexed-reported-filter-page-100", "SELECT * FROM devices WHERE properties.reported.firmware = 'v42'", 100, 100},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(`{"query":"` + c.query + `"}`)
			cpu0 := cpuTime()
			for range b.N {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", token)
				req.Header.Set("Content-Type", jsonContentType)
				req.Header.Set("x-ms-max-item-count", strconv.Itoa(c.pageSize))
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				rows := &rowCounter{}
				_, _ = io.Copy(rows, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || rows.n != c.wantRows {
					b.Fatalf("status %d, %d rows", resp.StatusCode, rows.n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/query")
		})
	}
}

// seedTwins creates n devices with tags and reported properties directly
// in the store (REST would take minutes for the setup alone).
func seedTwins(b *testing.B, h *Hub, n int) {
	now := time.Now()
	for i := range n {
		id := fmt.Sprintf("device%06d", i)
		_, err := h.store.update(id, func(*identity) (*identity, error) {
			rec, err := h.newIdentity(Device{DeviceID: id}, now)
			if err != nil {
				return nil, err
			}
			tags := fmt.Sprintf(`{"tags":{"location":{"plant":"plant%d","region":"r%d"}}}`, i%100, i%7)
			if _, err := rec.Twin.PatchService([]byte(tags), now, twin.Options{}); err != nil {
				return nil, err
			}
			if _, err := rec.Twin.PatchReported([]byte(fmt.Sprintf(`{"firmware":"v%d","connectivity":"cellular"}`, i%100)), now, twin.Options{}); err != nil {
				return nil, err
			}
			rec.refresh()
			return rec, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// allowAll lets every client connect and use every topic (the reference
// broker; mochi's own auth package pulls in a YAML dependency).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// rowCounter counts "deviceId" keys in a streamed response without keeping
// it, so the client side of the benchmark allocates nothing per query.
type rowCounter struct {
	n       int
	tail    [len(rowKey) - 1]byte
	tailLen int
}

const rowKey = `"deviceId"`

func (c *rowCounter) Write(p []byte) (int, error) {
	// A key split across two writes lies in the seam: the previous tail
	// (shorter than a key) followed by the start of p.
	var seam [2 * len(rowKey)]byte
	n := copy(seam[:], c.tail[:c.tailLen])
	n += copy(seam[n:], p[:min(len(p), len(rowKey)-1)])
	c.n += bytes.Count(seam[:n], []byte(rowKey))
	c.n += bytes.Count(p, []byte(rowKey))
	c.tailLen = copy(c.tail[:], p[max(0, len(p)-(len(rowKey)-1)):])
	return len(p), nil
}
