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
