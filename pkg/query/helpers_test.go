package query

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
)

// loadFixture reads testdata/twins.json. With useNumber the numbers stay
// json.Number, otherwise they become float64: the engine must accept both.
func loadFixture(t testing.TB, useNumber bool) []map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/twins.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if useNumber {
		dec.UseNumber()
	}
	var docs []map[string]any
	if err := dec.Decode(&docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

// fixtureSource puts the fixture into a MemSource, indexed or not.
func fixtureSource(t testing.TB, useNumber bool, indexed ...string) *MemSource {
	t.Helper()
	src := NewMemSource(indexed...)
	for _, d := range loadFixture(t, useNumber) {
		if err := src.Put(d); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// scanOnly hides the index of a source so the planner must scan.
type scanOnly struct{ Source }

// runAll executes text and follows continuations, returning all rows.
func runAll(t testing.TB, src Source, text string, pageSize int) ([]map[string]any, ItemType) {
	t.Helper()
	q, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	var rows []map[string]any
	opts := Options{PageSize: pageSize}
	for range 10000 {
		page, err := Execute(context.Background(), q, src, opts)
		if err != nil {
			t.Fatalf("Execute(%q): %v", text, err)
		}
		if pageSize > 0 && len(page.Items) > pageSize {
			t.Fatalf("page of %d rows exceeds page size %d", len(page.Items), pageSize)
		}
		rows = append(rows, page.Items...)
		if page.Continuation == "" {
			return rows, page.ItemType
		}
		if len(page.Items) == 0 {
			t.Fatalf("empty page with a continuation token")
		}
		opts.Continuation = page.Continuation
	}
	t.Fatal("paging did not end")
	return nil, ""
}

// ids lists the deviceId[/moduleId] of twin rows.
func ids(rows []map[string]any) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		d, _ := r["deviceId"].(string)
		m, _ := r["moduleId"].(string)
		out = append(out, Key(d, m))
	}
	return out
}

// canonicalJSON renders rows for comparison, numbers normalised.
func canonicalJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(back)
	return string(b)
}

// lookupOnly exposes only IndexedSource, like a store without exact
// lookups or columns.
type lookupOnly struct{ m *MemSource }

func (l lookupOnly) Scan(ctx context.Context, c Collection, after string, yield func(string, map[string]any) bool) error {
	return l.m.Scan(ctx, c, after, yield)
}

func (l lookupOnly) Lookup(c Collection, path []string, v any) ([]string, bool) {
	return l.m.Lookup(c, path, v)
}

func (l lookupOnly) Get(c Collection, key string) (map[string]any, bool) { return l.m.Get(c, key) }

// supersetIndex answers every lookup with every key, which the contract
// allows: candidates are checked against the whole WHERE clause.
type supersetIndex struct{ lookupOnly }

func (s supersetIndex) Lookup(c Collection, _ []string, _ any) ([]string, bool) {
	var keys []string
	_ = s.m.Scan(context.Background(), c, "", func(k string, _ map[string]any) bool { keys = append(keys, k); return true })
	return keys, true
}
