package controllers

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func TestWatcherBatches(t *testing.T) {
	many := make([]string, 250)
	for i := range many {
		many[i] = fmt.Sprintf("d%03d", i)
	}
	long := []string{strings.Repeat("a", 128), strings.Repeat("b", 128)}
	tests := []struct {
		name     string
		ids      []string
		want     int
		firstLen int // ids in the first batch
	}{
		{"none", nil, 0, 0},
		{"one", []string{"a"}, 1, 1},
		{"page size", many, 3, watchBatch},
		{"long ids", append(long, many[:50]...), 1, 52},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := batches(tc.ids)
			if len(got) != tc.want {
				t.Fatalf("got %d batches, want %d", len(got), tc.want)
			}
			total := 0
			for i, b := range got {
				if len(b) > watchMaxQueryChars {
					t.Errorf("batch %d has %d characters", i, len(b))
				}
				total += strings.Count(b, ",") + 1
			}
			if total != len(tc.ids) {
				t.Errorf("batches hold %d ids, want %d", total, len(tc.ids))
			}
			if tc.want > 0 && strings.Count(got[0], ",")+1 != tc.firstLen {
				t.Errorf("first batch holds %d ids, want %d", strings.Count(got[0], ",")+1, tc.firstLen)
			}
		})
	}
}

func TestUnreportedPaths(t *testing.T) {
	tests := []struct {
		name              string
		desired, reported string
		want              []string
	}{
		{"all reported", `{"a":1,"b":{"c":"x"}}`, `{"a":1.0,"b":{"c":"x","d":2}}`, nil},
		{"missing leaf", `{"a":1,"b":{"c":"x"}}`, `{"a":1}`, []string{"b"}},
		{"nested differs", `{"b":{"c":"x","e":true}}`, `{"b":{"c":"y","e":true}}`, []string{"b.c"}},
		{"empty object wants an object", `{"o":{}}`, `{"o":{"k":1}}`, nil},
		{"empty object but scalar", `{"o":{}}`, `{"o":1}`, []string{"o"}},
		{"array compared whole", `{"l":[1,2]}`, `{"l":[1,2,3]}`, []string{"l"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := decodeObject([]byte(tc.desired))
			if err != nil {
				t.Fatal(err)
			}
			r, err := decodeObject([]byte(tc.reported))
			if err != nil {
				t.Fatal(err)
			}
			got := unreportedPaths("", d, r)
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// The reported mirror keeps the stored JSON when it is the same value in
// another spelling, so an apiserver round trip is not a change.
func TestMirrorReportedKeepsEquivalentJSON(t *testing.T) {
	tests := []struct {
		name, old, values string
		keep              bool
	}{
		{"number spelling", `{"a":1}`, `{"a":1.0}`, true},
		{"key order", `{"b":2,"a":1}`, `{"a":1,"b":2}`, true},
		{"changed", `{"a":1}`, `{"a":2}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := &apiextensionsv1.JSON{Raw: []byte(tc.old)}
			values, err := decodeObject([]byte(tc.values))
			if err != nil {
				t.Fatal(err)
			}
			got := mirrorReported(old, values)
			if (got == old) != tc.keep {
				t.Errorf("kept=%v, want %v (got %s)", got == old, tc.keep, got.Raw)
			}
			var v any
			if err := json.Unmarshal(got.Raw, &v); err != nil {
				t.Errorf("invalid JSON %s", got.Raw)
			}
		})
	}
}
