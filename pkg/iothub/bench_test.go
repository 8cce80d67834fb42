package iothub

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
	"github.com/twinsync/twinsync/pkg/twin"
)

const benchWorkers = 8

// BenchmarkUpdateTwin measures UpdateTwin from 8 goroutines (one twin each)
// against the embedded hub, beside two references: a plain net/http loop
// sending the same PATCH with a pre-minted token over the same kind of
// keep-alive TLS transport, which either discards the answer (plain) or
// decodes it into a twin.Twin as UpdateTwin does (plain-decode). All run
// against the same hub in the same benchmark, interleaved in rounds so
// that load from other processes hits them alike. x-plain and
// x-plain-decode are the client's throughput as a fraction of each
// reference's (the target is at least 0.8); the -cpu variants compare
// process CPU per operation (hub included, it runs in this process), which
// is steadier than throughput on a shared machine.
func BenchmarkUpdateTwin(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []hubtest.Option
	}{{"in-memory", []hubtest.Option{hubtest.InMemory()}}, {"durable", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			h := hubtest.Start(b, mode.opts...)
			for i := range benchWorkers {
				if _, err := h.RegisterDevice("bench" + strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
			client, err := NewFromConnectionString(h.ServiceConnectionString, WithRootCAs(h.CAPool), WithLimits(NoLimits), WithHubLabel("bench"))
			if err != nil {
				b.Fatal(err)
			}
			plain := newPlainLoop(b, h)
			// The same pre-encoded body as the plain loops, so all do the same work.
			patch := json.RawMessage(plain.body)
			clientOp := func(worker int) error {
				_, err := client.UpdateTwin(context.Background(), "bench"+strconv.Itoa(worker), patch, ETagAny)
				return err
			}
			// Warm both connection pools outside the timer.
			runWorkers(b, benchWorkers, plain.op)
			runWorkers(b, benchWorkers, clientOp)

			b.ResetTimer()
			const rounds = 10
			loops := []struct {
				name      string
				op        func(worker int) error
				wall, cpu time.Duration
			}{{name: "client", op: clientOp}, {name: "plain", op: plain.op}, {name: "plain-decode", op: plain.opDecode}}
			for r := range rounds {
				n := b.N/rounds + boolInt(r < b.N%rounds)
				for i := range loops {
					wall, cpu := measure(func() { runWorkers(b, n, loops[i].op) })
					loops[i].wall, loops[i].cpu = loops[i].wall+wall, loops[i].cpu+cpu
				}
			}
			b.StopTimer()
			clientRate := float64(b.N) / loops[0].wall.Seconds()
			for _, l := range loops {
				rate := float64(b.N) / l.wall.Seconds()
				b.ReportMetric(rate, l.name+"-patches/s")
				b.ReportMetric(float64(l.cpu.Nanoseconds())/float64(b.N), l.name+"-cpu-ns/op")
				if l.name != "client" {
					b.ReportMetric(clientRate/rate, "x-"+l.name)
					b.ReportMetric(float64(l.cpu)/float64(loops[0].cpu), "x-"+l.name+"-cpu")
				}
			}
		})
	}
}

// plainLoop is the reference: what a hand-written net/http caller does.
type plainLoop struct {
	hc    *http.Client
	urls  []string
	token string
	body  []byte
}

func newPlainLoop(b *testing.B, h *hubtest.Hub) *plainLoop {
	cs, err := sas.ParseConnectionString(h.ServiceConnectionString)
	if err != nil {
		b.Fatal(err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: h.CAPool, MinVersion: tls.VersionTLS12}
	t.ForceAttemptHTTP2 = false
	t.MaxIdleConnsPerHost = 64
	p := &plainLoop{
		hc:    &http.Client{Transport: t},
		token: sas.Sign(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour)),
		body:  []byte(`{"properties":{"desired":{"mode":"eco","power_level":1}}}`),
	}
	for i := range benchWorkers {
		p.urls = append(p.urls, "https://"+cs.HostName+"/twins/bench"+strconv.Itoa(i)+"?api-version="+APIVersion)
	}
	return p
}

func (p *plainLoop) op(worker int) error { return p.patch(worker, nil) }

// opDecode also decodes the answer, the work UpdateTwin does for its caller.
func (p *plainLoop) opDecode(worker int) error { return p.patch(worker, new(twin.Twin)) }

// patch sends one PATCH and decodes the answer into into unless it is nil.
func (p *plainLoop) patch(worker int, into *twin.Twin) error {
	req, err := http.NewRequest(http.MethodPatch, p.urls[worker], bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", p.token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("If-Match", `"*"`)
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &Error{StatusCode: resp.StatusCode}
	}
	if into == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, into)
}

// runWorkers runs n operations spread over benchWorkers goroutines.
func runWorkers(b *testing.B, n int, op func(worker int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, benchWorkers)
	for w := range benchWorkers {
		count := n/benchWorkers + boolInt(w < n%benchWorkers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range count {
				if err := op(w); err != nil {
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

// measure returns the wall and process CPU time fn takes.
func measure(fn func()) (wall, cpu time.Duration) {
	start, cpu0 := time.Now(), cpuTime()
	fn()
	return time.Since(start), cpuTime() - cpu0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}
