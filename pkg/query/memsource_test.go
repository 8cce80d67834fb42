package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMemSourceIndexExact applies random writes and deletes and checks
// after each one that every index lookup equals a brute-force scan.
func TestMemSourceIndexExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := NewMemSource("tags", "status")
	plants := []any{"A", "B", 1.0, true, nil}
	for step := range 2000 {
		id := fmt.Sprintf("d%02d", rng.IntN(40))
		mod := ""
		if rng.IntN(4) == 0 {
			mod = "m"
		}
		if rng.IntN(5) == 0 {
			src.Delete(id, mod)
		} else {
			doc := map[string]any{"deviceId": id, "status": "enabled", "tags": map[string]any{}}
			if mod != "" {
				doc["moduleId"] = mod
			}
			if p := rng.IntN(len(plants) + 1); p < len(plants) {
				doc["tags"] = map[string]any{"loc": map[string]any{"plant": plants[p]}}
			}
			if err := src.Put(doc); err != nil {
				t.Fatal(err)
			}
		}
		if step%50 != 0 {
			continue
		}
		for _, c := range []Collection{Devices, Modules} {
			for _, v := range plants {
				path := []string{"tags", "loc", "plant"}
				got, ok := src.Lookup(c, path, v)
				if !ok {
					t.Fatal("tags.loc.plant is not indexed")
				}
				var want []string
				_ = src.Scan(context.Background(), c, "", func(k string, doc map[string]any) bool {
					if cmp, ok := comparePrimitives(lookup(doc, path), v); ok && cmp == 0 {
						want = append(want, k)
					}
					return true
				})
				if !slices.Equal(got, want) {
					t.Fatalf("step %d: Lookup(%v, %v) = %v, scan gives %v", step, c, v, got, want)
				}
			}
		}
	}
}

func TestMemSource(t *testing.T) {
	src := NewMemSource("tags")
	if err := src.Put(map[string]any{"tags": map[string]any{}}); err == nil {
		t.Error("Put accepted a document without deviceId")
	}
	for _, d := range []map[string]any{
		{"deviceId": "b"}, {"deviceId": "a"}, {"deviceId": "a", "moduleId": "z"}, {"deviceId": "a", "moduleId": "y"},
	} {
		if err := src.Put(d); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(c Collection, after string) []string {
		var out []string
		if err := src.Scan(context.Background(), c, after, func(k string, _ map[string]any) bool { out = append(out, k); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		c     Collection
		after string
		want  []string
	}{
		{Devices, "", []string{"a", "b"}},
		{Devices, "a", []string{"b"}},
		{Devices, "a0", []string{"b"}},
		{Modules, "", []string{"a/y", "a/z"}},
		{Modules, "a/y", []string{"a/z"}},
		{Jobs, "", nil},
	}
	for _, tt := range tests {
		if got := keys(tt.c, tt.after); !slices.Equal(got, tt.want) {
			t.Errorf("Scan(%v, after %q) = %v, want %v", tt.c, tt.after, got, tt.want)
		}
	}
	if _, ok := src.Lookup(Devices, []string{"status"}, "enabled"); ok {
		t.Error("Lookup answered for a path that is not indexed")
	}
	if keys, ok := src.Lookup(Devices, []string{"tags", "x"}, "none"); !ok || len(keys) != 0 {
		t.Errorf("Lookup of an absent value = %v, %v; want empty, true", keys, ok)
	}
	src.Delete("a", "z")
	src.Delete("nobody", "")
	if n := src.Len(Modules); n != 1 {
		t.Errorf("Len(Modules) = %d after delete, want 1", n)
	}
	if _, ok := src.Get(Modules, "a/z"); ok {
		t.Error("Get found a deleted twin")
	}
}

// TestMemSourceAccessPathsAgree applies random writes and checks that
// queries answered from indexes and column snapshots give exactly what a
// plain scan of the documents gives.
func TestMemSourceAccessPathsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := NewMemSource("deviceId", "moduleId", "status", "tags")
	queries := []string{
		"SELECT * FROM devices WHERE tags.loc.plant = 'A'",
		"SELECT * FROM devices WHERE tags.loc.plant IN ['A', 1] AND status = 'enabled'",
		"SELECT deviceId, tags.loc.plant AS plant FROM devices WHERE status != 'disabled'",
		"SELECT tags.loc.plant AS plant, COUNT() AS n, MAX(tags.n) AS most FROM devices GROUP BY tags.loc.plant",
		"SELECT COUNT() AS n, SUM(tags.n) AS s FROM devices.modules WHERE tags.n > 3",
		"SELECT * FROM devices.modules",
	}
	for step := range 600 {
		id := fmt.Sprintf("d%02d", rng.IntN(30))
		mod := []string{"", "", "m"}[rng.IntN(3)]
		if rng.IntN(6) == 0 {
			src.Delete(id, mod)
		} else {
			doc := map[string]any{"deviceId": id, "status": []string{"enabled", "disabled"}[rng.IntN(2)],
				"tags": map[string]any{"n": float64(rng.IntN(10)), "loc": map[string]any{"plant": []any{"A", "B", 1.0}[rng.IntN(3)]}}}
			if mod != "" {
				doc["moduleId"] = mod
			}
			if err := src.Put(doc); err != nil {
				t.Fatal(err)
			}
		}
		if step%25 != 0 {
			continue
		}
		for _, text := range queries {
			for _, pageSize := range []int{0, 3} {
				want, _ := runAll(t, scanOnly{src}, text, pageSize)
				for name, s := range map[string]Source{"exact index and columns": src, "lookup only": lookupOnly{src}} {
					got, _ := runAll(t, s, text, pageSize)
					if g, w := canonicalJSON(t, got), canonicalJSON(t, want); g != w {
						t.Fatalf("step %d, %s (page %d):\n%s: %s\nscan: %s", step, text, pageSize, name, g, w)
					}
				}
			}
		}
	}
}

// TestMemSourceConcurrent runs queries while twins are written; run it
// with -race. Every row must still satisfy the filter.
func TestMemSourceConcurrent(t *testing.T) {
	src := NewMemSource("tags", "status")
	put := func(i int) {
		_ = src.Put(map[string]any{"deviceId": fmt.Sprintf("d%03d", i%200), "status": "enabled",
			"tags": map[string]any{"plant": []string{"A", "B"}[i%2]}})
	}
	for i := range 200 {
		put(i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3000 {
			put(i * 7)
			if i%10 == 0 {
				src.Delete(fmt.Sprintf("d%03d", i%200), "")
			}
		}
	}()
	plantA := func(r map[string]any) bool {
		tags, _ := r["tags"].(map[string]any)
		return r["plant"] == "A" || (tags != nil && tags["plant"] == "A")
	}
	tests := []struct {
		query string
		ok    func(map[string]any) bool
	}{
		{"SELECT * FROM devices WHERE tags.plant = 'A'", plantA},
		{"SELECT deviceId, tags.plant AS plant FROM devices WHERE tags.plant = 'A' OR status = 'x'", plantA},
		{"SELECT tags.plant AS plant, COUNT() AS n FROM devices GROUP BY tags.plant",
			func(r map[string]any) bool { return r["plant"] == "A" || r["plant"] == "B" }},
	}
	for _, tt := range tests {
		for range 20 {
			rows, _ := runAll(t, src, tt.query, 7)
			for _, r := range rows {
				if !tt.ok(r) {
					t.Fatalf("%s: unexpected row %v", tt.query, r)
				}
			}
		}
	}
	<-done
}
