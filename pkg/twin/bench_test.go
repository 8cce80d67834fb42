package twin

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// benchTwin returns a twin shaped like the query benchmark's twins (tags
// location/owner/serial, desired power_level and telemetryConfig, reported
// connectivity, firmware, telemetryConfig, battery, padding), grown with
// desired and reported settings until its service JSON is about 4 KB.
func benchTwin(tb testing.TB) *Twin {
	tb.Helper()
	tw := New("dev000042", "", t0)
	must := func(_ any, err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(tw.PatchService([]byte(`{"tags":{"location":{"region":"US","plant":"Redmond43"},"owner":"team5","serial":"SN00000042"},
		"properties":{"desired":{"power_level":2,"telemetryConfig":{"sendFrequency":"5m"}}}}`), at(1), Options{}))
	must(tw.PatchReported([]byte(`{"connectivity":"cellular","firmware":"1.2.0","telemetryConfig":{"status":"Success","sendFrequencyInSecs":300},
		"battery":87,"pad":"`+strings.Repeat("x", 500)+`"}`), at(2), Options{}))
	for i := 0; len(mustJSON(tb, tw)) < 4096; i++ {
		must(tw.PatchService([]byte(fmt.Sprintf(`{"properties":{"desired":{"settings":{"s%02d":{"value":%d,"unit":"ms"}}}}}`, i, i*10)), at(3), Options{}))
		must(tw.PatchReported([]byte(fmt.Sprintf(`{"sensors":{"t%02d":{"value":%d.5,"ok":true}}}`, i, i)), at(3), Options{}))
	}
	return tw
}

// loopWithCPU runs op b.N times and reports the process CPU time per
// operation as "cpu-ns/op" (GC included).
func loopWithCPU(b *testing.B, op func()) {
	b.ReportAllocs()
	start := processCPUTime()
	for b.Loop() {
		op()
	}
	if used := processCPUTime() - start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkPatchService measures a typical operator PATCH (a tag and a
// nested desired value) on a twin whose service JSON is about 4 KB; the
// target is 20 µs per write. "with-clone" adds the deep copy a store makes
// when it hands the twin out.
func BenchmarkPatchService(b *testing.B) {
	body := []byte(`{"tags":{"location":{"plant":"Redmond44"}},"properties":{"desired":{"power_level":3,"telemetryConfig":{"sendFrequency":"1m"}}}}`)
	b.Run("4KB", func(b *testing.B) {
		tw := benchTwin(b)
		loopWithCPU(b, func() {
			if _, err := tw.PatchService(body, t0, Options{}); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(float64(len(mustJSON(b, tw))), "twin-bytes")
	})
	// The reference, measured in the same run so that machine load cancels
	// out of the ratio: what a store keeping twins as JSON blobs does per
	// write (decode the stored twin, apply the patch, encode it again).
	b.Run("4KB-reference-json-blob", func(b *testing.B) {
		stored := mustJSON(b, benchTwin(b))
		loopWithCPU(b, func() {
			var tw Twin
			if err := json.Unmarshal(stored, &tw); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.PatchService(body, t0, Options{}); err != nil {
				b.Fatal(err)
			}
			stored = mustJSON(b, &tw)
		})
	})
	b.Run("4KB-with-clone", func(b *testing.B) {
		tw := benchTwin(b)
		loopWithCPU(b, func() {
			if _, err := tw.PatchService(body, t0, Options{}); err != nil {
				b.Fatal(err)
			}
			_ = tw.Clone()
		})
	})
}

// BenchmarkPatchReported measures a device's reported PATCH on the same
// twin.
func BenchmarkPatchReported(b *testing.B) {
	body := []byte(`{"battery":86,"telemetryConfig":{"status":"Pending"}}`)
	tw := benchTwin(b)
	loopWithCPU(b, func() {
		if _, err := tw.PatchReported(body, t0, Options{}); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRender measures the renderings the hub serves for the same twin.
func BenchmarkRender(b *testing.B) {
	tw := benchTwin(b)
	buf := make([]byte, 0, 8192)
	b.Run("service-json-append", func(b *testing.B) {
		loopWithCPU(b, func() { buf = tw.AppendJSON(buf[:0]) })
	})
	b.Run("service-json-marshal", func(b *testing.B) {
		loopWithCPU(b, func() { _ = mustJSON(b, tw) })
	})
	b.Run("device-view", func(b *testing.B) {
		loopWithCPU(b, func() { _ = tw.DeviceView() })
	})
	b.Run("query-document", func(b *testing.B) {
		loopWithCPU(b, func() { _ = tw.QueryDocument() })
	})
}
