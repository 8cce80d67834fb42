package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Reference timings from issue 3: PostgreSQL 15 with the same 100,000
// twins as jsonb on this machine.
const (
	pgFilterGIN   = 9 * time.Millisecond
	pgFilterNoIdx = 70 * time.Millisecond
	pgGroupBy     = 65 * time.Millisecond
	benchTwins    = 100_000
)

var (
	benchOnce sync.Once
	benchDocs []map[string]any
)

// benchData builds twins shaped like ../shared/bench/gen_twins.py writes
// (about 1 KB each, 1% in plant Redmond43), deterministically, and decodes
// them from JSON as a store would.
func benchData(b *testing.B) []map[string]any {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 1))
		conn := []string{"cellular", "wifi", "wired"}
		statuses := []string{"Success", "Pending", "Failed"}
		pad := strings.Repeat("x", 500)
		for i := range benchTwins {
			plant := "Redmond43"
			if i%100 != 0 {
				plant = fmt.Sprintf("Plant%d", i%100-1)
			}
			twin := map[string]any{
				"deviceId": fmt.Sprintf("dev%06d", i), "etag": "AAAAAAAAAAE=", "version": 3,
				"tags": map[string]any{"location": map[string]any{"region": "US", "plant": plant},
					"owner": fmt.Sprintf("team%d", i%37), "serial": fmt.Sprintf("SN%08d", i)},
				"properties": map[string]any{
					"desired": map[string]any{"power_level": i % 5, "telemetryConfig": map[string]any{"sendFrequency": "5m"}, "$version": 2},
					"reported": map[string]any{"connectivity": conn[i%3], "firmware": fmt.Sprintf("1.%d.%d", i%10, i%7),
						"telemetryConfig": map[string]any{"status": statuses[rng.IntN(3)], "sendFrequencyInSecs": 300},
						"battery":         rng.IntN(101), "pad": pad, "$version": 7},
				},
			}
			raw, err := json.Marshal(twin)
			if err != nil {
				panic(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				panic(err)
			}
			benchDocs = append(benchDocs, doc)
		}
	})
	return benchDocs
}

func benchSource(b *testing.B, indexed ...string) *MemSource {
	src := NewMemSource(indexed...)
	for _, d := range benchData(b) {
		if err := src.Put(d); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC() // settle the garbage of generating the data before measuring
	return src
}

// runBench executes text to the last page and checks the row count.
func runBench(b *testing.B, src Source, text string, pageSize, wantRows int, reference time.Duration) {
	q, err := Parse(text)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Execute(ctx, q, src, Options{}); err != nil { // build lazy columns and caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpuStart := processCPU()
	for b.Loop() {
		rows := 0
		opts := Options{PageSize: pageSize}
		for {
			page, err := Execute(ctx, q, src, opts)
			if err != nil {
				b.Fatal(err)
			}
			rows += len(page.Items)
			if page.Continuation == "" {
				break
			}
			opts.Continuation = page.Continuation
		}
		if rows != wantRows {
			b.Fatalf("%d rows, want %d", rows, wantRows)
		}
	}
	perOp := b.Elapsed() / time.Duration(b.N)
	cpuPerOp := (processCPU() - cpuStart) / time.Duration(b.N)
	b.ReportMetric(float64(cpuPerOp)/float64(time.Millisecond), "cpu-ms/query")
	b.ReportMetric(float64(perOp)/float64(time.Millisecond), "ms/query")
	b.ReportMetric(float64(perOp)/float64(reference), "x-postgres")
}

const (
	filterQuery  = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'"
	groupByQuery = "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS n FROM devices GROUP BY properties.reported.telemetryConfig.status"
)

// BenchmarkFilter is the filter of issue 3 (1% of 100,000 twins match),
// all 1,000 rows in one page and in pages of 100, against PostgreSQL with
// a GIN index; and without our index against PostgreSQL without one.
func BenchmarkFilter(b *testing.B) {
	indexed := benchSource(b, append(DefaultIndexedPaths, "properties.reported.telemetryConfig")...)
	b.Run("indexed/onePage", func(b *testing.B) { runBench(b, indexed, filterQuery, 0, 1000, pgFilterGIN) })
	b.Run("indexed/pagesOf100", func(b *testing.B) { runBench(b, indexed, filterQuery, 100, 1000, pgFilterGIN) })
	b.Run("scan/onePage", func(b *testing.B) { runBench(b, scanOnly{indexed}, filterQuery, 0, 1000, pgFilterNoIdx) })
}

// BenchmarkGroupBy groups 100,000 twins by a reported property: from the
// column snapshot of an indexed MemSource, and by walking the documents.
func BenchmarkGroupBy(b *testing.B) {
	src := benchSource(b, append(DefaultIndexedPaths, "properties.reported.telemetryConfig")...)
	b.Run("columns", func(b *testing.B) { runBench(b, src, groupByQuery, 0, 3, pgGroupBy) })
	b.Run("scan", func(b *testing.B) { runBench(b, scanOnly{src}, groupByQuery, 0, 3, pgGroupBy) })
}

// BenchmarkParse measures parsing a typical query.
func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity IN ['cellular', 'wifi']"); err != nil {
			b.Fatal(err)
		}
	}
}
