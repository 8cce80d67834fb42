package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

// BenchmarkLoad runs load mode in-process against the embedded hub: 1,000
// devices over MQTT/TLS, first reporting back to back (the sustained
// reported-patch rate the hub and clients reach together on this machine),
// then once a second each (latency at a light, steady load). Each run
// provisions and connects its devices; run it with -benchtime=1x. The cpu-
// metrics are the process's CPU time (hub and devices together, as both run
// here) per connect and per acknowledged patch: on a shared machine they
// vary less than the wall-clock figures.
//
//	go test -run '^$' -bench BenchmarkLoad -benchtime=1x ./cmd/devicesim/
func BenchmarkLoad(b *testing.B) {
	for _, bc := range []struct {
		devices  int
		interval time.Duration
	}{
		{1000, 0},
		{1000, time.Second},
	} {
		b.Run(fmt.Sprintf("devices=%d/interval=%v", bc.devices, bc.interval), func(b *testing.B) {
			var res *loadResult
			for b.Loop() {
				h := hubtest.Start(b, hubtest.InMemory())
				var err error
				res, err = loadTest(context.Background(), loadConfig{
					registryConnectionString: h.ServiceConnectionString,
					rootCAs:                  h.CAPool,
					devices:                  bc.devices,
					devicePrefix:             "bench-",
					gateway:                  h.MQTTAddr,
					interval:                 bc.interval,
					duration:                 5 * time.Second,
					concurrency:              64,
					requestTimeout:           30 * time.Second,
				})
				if err != nil {
					b.Fatal(err)
				}
				if res.Errors > 0 {
					b.Fatalf("%d reported patches failed", res.Errors)
				}
			}
			b.ReportMetric(res.ConnectTime.Seconds(), "connect-all-s")
			b.ReportMetric(float64(res.ConnectP99.Microseconds())/1000, "connect-p99-ms")
			b.ReportMetric(res.Rate, "patches/s")
			b.ReportMetric(res.ConnectCPU.Seconds()*1e3/float64(res.Devices), "cpu-ms/connect")
			b.ReportMetric(float64(res.cpuPerPatch().Nanoseconds())/1e3, "cpu-µs/patch")
			b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
