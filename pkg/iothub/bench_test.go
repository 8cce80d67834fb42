package iothub

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

const benchWorkers = 8

// BenchmarkUpdateTwin measures UpdateTwin from 8 goroutines (one twin each)
// against the embedded hub, beside the reference: a plain net/http loop
// sending the same PATCH with a pre-minted token over the same kind of
// keep-alive TLS transport and discarding the answer. Both run against the
// same hub in the same benchmark, interleaved in rounds so that load from
// other processes hits both alike. x-plain is the client's throughput as a
// fraction of the plain loop's (the target is at least 0.8).
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
			patch := map[string]any{"properties": map[string]any{"desired": map[string]any{"power_level": 1, "mode": "eco"}}}
			clientOp := func(worker int) error {
				_, err := client.UpdateTwin(context.Background(), "bench"+strconv.Itoa(worker), patch, ETagAny)
				return err
			}
			// Warm both connection pools outside the timer.
			runWorkers(b, benchWorkers, plain.op)
			runWorkers(b, benchWorkers, clientOp)

			b.ResetTimer()
			const rounds = 10
			var plainTime, clientTime, plainCPU, clientCPU time.Duration
			for r := range rounds {
				n := b.N/rounds + boolInt(r < b.N%rounds)
				t, c := measure(func() { runWorkers(b, n, plain.op) })
				plainTime, plainCPU = plainTime+t, plainCPU+c
				t, c = measure(func() { runWorkers(b, n, clientOp) })
				clientTime, clientCPU = clientTime+t, clientCPU+c
			}
			b.StopTimer()
			plainRate := float64(b.N) / plainTime.Seconds()
			clientRate := float64(b.N) / clientTime.Seconds()
			b.ReportMetric(clientRate, "client-patches/s")
			b.ReportMetric(plainRate, "plain-patches/s")
			b.ReportMetric(clientRate/plainRate, "x-plain")
			b.ReportMetric(float64(clientCPU.Nanoseconds())/float64(b.N), "client-cpu-ns/op")
			b.ReportMetric(float64(plainCPU.Nanoseconds())/float64(b.N), "plain-cpu-ns/op")
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

func (p *plainLoop) op(worker int) error {
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
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &Error{StatusCode: resp.StatusCode}
	}
	return nil
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
