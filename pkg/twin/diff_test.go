package twin

import (
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name        string
		managed     Managed
		spec        string
		current     string
		ownership   Ownership
		wantPatch   string
		wantManaged Managed
	}{
		{"in sync", Managed{"a"}, `{"a":1}`, `{"a":1,"other":2}`, OwnershipShared, `{}`, Managed{"a"}},
		{"numbers by value", Managed{"a", "b"}, `{"a":1,"b":2.50}`, `{"a":1.0,"b":2.5}`, OwnershipShared, `{}`, Managed{"a", "b"}},
		{"first sync sets everything", nil, `{"loc":{"plant":"Redmond43","region":"US"},"p":1}`, `{}`, OwnershipShared,
			`{"loc":{"plant":"Redmond43","region":"US"},"p":1}`, Managed{"loc.plant", "loc.region", "p"}},
		{"only differing leaves", Managed{"loc.plant", "loc.region"}, `{"loc":{"plant":"B","region":"US"}}`, `{"loc":{"plant":"A","region":"US","floor":3}}`, OwnershipShared,
			`{"loc":{"plant":"B"}}`, Managed{"loc.plant", "loc.region"}},
		{"removed leaf becomes nested null", Managed{"a.b", "a.c"}, `{"a":{"c":1}}`, `{"a":{"b":1,"c":1,"d":5}}`, OwnershipShared,
			`{"a":{"b":null}}`, Managed{"a.c"}},
		{"removed leaf already gone", Managed{"x"}, `{}`, `{"y":1}`, OwnershipShared, `{}`, Managed{}},
		{"others keys left alone", nil, `{"a":1}`, `{"a":1,"b":2,"c":{"d":3}}`, OwnershipShared, `{}`, Managed{"a"}},
		{"exclusive removes unowned at the top", nil, `{"a":1}`, `{"a":1,"b":2,"c":{"d":3}}`, OwnershipExclusive, `{"b":null,"c":null}`, Managed{"a"}},
		{"exclusive removes nested unowned", nil, `{"c":{"d":3}}`, `{"c":{"d":3,"e":4}}`, OwnershipExclusive, `{"c":{"e":null}}`, Managed{"c.d"}},
		{"exclusive ignores $ members", nil, `{"a":1}`, `{"a":1,"$metadata":{"$lastUpdated":"x"},"$version":4}`, OwnershipExclusive, `{}`, Managed{"a"}},
		{"leaf becomes object", Managed{"a"}, `{"a":{"b":1}}`, `{"a":5}`, OwnershipShared, `{"a":{"b":1}}`, Managed{"a.b"}},
		{"object becomes leaf", Managed{"a.b", "a.c"}, `{"a":7}`, `{"a":{"b":1,"c":2}}`, OwnershipShared, `{"a":7}`, Managed{"a"}},
		{"empty object leaf satisfied by any object", Managed{"a"}, `{"a":{}}`, `{"a":{"x":1}}`, OwnershipShared, `{}`, Managed{"a"}},
		{"empty object leaf created", nil, `{"a":{}}`, `{"a":3}`, OwnershipShared, `{"a":{}}`, Managed{"a"}},
		{"exclusive empty object clears children", nil, `{"a":{}}`, `{"a":{"x":1}}`, OwnershipExclusive, `{"a":{"x":null}}`, Managed{"a"}},
		{"arrays compared whole", Managed{"arr"}, `{"arr":[1,2]}`, `{"arr":[1,2,3]}`, OwnershipShared, `{"arr":[1,2]}`, Managed{"arr"}},
		{"equal arrays", Managed{"arr"}, `{"arr":[1,{"k":"v"}]}`, `{"arr":[1.0,{"k":"v"}]}`, OwnershipShared, `{}`, Managed{"arr"}},
		{"type change string to number", Managed{"a"}, `{"a":1}`, `{"a":"1"}`, OwnershipShared, `{"a":1}`, Managed{"a"}},
		{"empty spec shared clears managed", Managed{"a", "b.c"}, `{}`, `{"a":1,"b":{"c":2,"d":3}}`, OwnershipShared, `{"a":null,"b":{"c":null}}`, Managed{}},
		{"missing parent on hub", Managed{"a.b"}, `{"a":{"b":1}}`, `{}`, OwnershipShared, `{"a":{"b":1}}`, Managed{"a.b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := decode(t, tt.spec)
			current := decode(t, tt.current)
			patch, managed := Diff(tt.managed, spec, current, tt.ownership)
			if !EqualValues(patch, decode(t, tt.wantPatch)) {
				t.Errorf("patch = %s, want %s", mustJSON(t, patch), tt.wantPatch)
			}
			if !reflect.DeepEqual(managed, tt.wantManaged) {
				t.Errorf("managed = %q, want %q", managed, tt.wantManaged)
			}
			assertDiffConverges(t, tt.managed, spec, current, tt.ownership)
		})
	}
}

// assertDiffConverges applies the patch to a twin holding current and
// checks that a second Diff is empty.
func assertDiffConverges(t *testing.T, managed Managed, spec, current map[string]any, ownership Ownership) {
	t.Helper()
	tw := New("d1", "", t0)
	seed := map[string]any{}
	for k, v := range current {
		if k[0] != '$' {
			seed[k] = v
		}
	}
	if _, err := tw.PatchService(mustJSON(t, map[string]any{"tags": seed}), at(1), Options{}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	patch, managed := Diff(managed, spec, tw.Tags, ownership)
	if _, err := tw.PatchService(mustJSON(t, map[string]any{"tags": patch}), at(2), Options{}); err != nil {
		t.Fatalf("apply %s: %v", mustJSON(t, patch), err)
	}
	if again, _ := Diff(managed, spec, tw.Tags, ownership); len(again) != 0 {
		t.Errorf("after applying the patch the diff is still %s (tags %s)", mustJSON(t, again), mustJSON(t, tw.Tags))
	}
	if ownership == OwnershipExclusive && !EqualValues(tw.Tags, spec) {
		t.Errorf("exclusive: tags = %s, want the spec %s", mustJSON(t, tw.Tags), mustJSON(t, spec))
	}
}

func TestDiffDoesNotAliasSpec(t *testing.T) {
	spec := decode(t, `{"arr":[1,2]}`)
	patch, _ := Diff(nil, spec, map[string]any{}, OwnershipShared)
	patch["arr"].([]any)[0] = "changed"
	if !EqualValues(spec, decode(t, `{"arr":[1,2]}`)) {
		t.Errorf("changing the patch changed the spec: %s", mustJSON(t, spec))
	}
}

func TestEqualValues(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{decode(t, `{"n":1}`)["n"], 1.0, true},
		{decode(t, `{"n":1e2}`)["n"], 100, true},
		{decode(t, `{"n":9007199254740993}`)["n"], decode(t, `{"n":9007199254740992}`)["n"], false},
		{decode(t, `{"n":0.1}`)["n"], 0.1, true},
		{"1", 1, false},
		{nil, nil, true},
		{true, true, true},
		{map[string]any{"a": 1}, map[string]any{"a": 1, "b": 2}, false},
		{[]any{1, 2}, []any{2, 1}, false},
	}
	for _, tt := range tests {
		if got := EqualValues(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualValues(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
