package query

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// assertRoundTrip checks that printing q and parsing the text again gives
// the same tree (positions aside) and the same text.
func assertRoundTrip(t *testing.T, q *Query) {
	t.Helper()
	text := q.String()
	q2, err := Parse(text)
	if errors.Is(err, ErrQueryTooLong) {
		return // parentheses added by printing can push a long query over the limit
	}
	if err != nil {
		t.Fatalf("re-parsing %q: %v", text, err)
	}
	if diff := cmp.Diff(q, q2, cmpopts.IgnoreTypes(Pos{}), cmp.Comparer(sameFloat)); diff != "" {
		t.Fatalf("re-parsing %q gave another tree (-first +second):\n%s", text, diff)
	}
	if text2 := q2.String(); text2 != text {
		t.Fatalf("printing is not stable:\n%s\n%s", text, text2)
	}
}

// sameFloat treats 0 and -0 as the same constant, as the language does.
func sameFloat(a, b float64) bool { return a == b }

// FuzzParse checks that Parse never panics and that every query it accepts
// prints to text that parses back to the same tree. Seeds live in
// testdata/fuzz/FuzzParse; run with go test -fuzz=FuzzParse ./pkg/query.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'",
		"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
		"select top 3 deviceId, -x % 2 as y from devices.modules where x in [1, 'a', null] and not is_defined(tags.[[group]]) or startswith(id, \"a\\u0041\")",
		"SELECT * FROM devices.jobs",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || perr.Pos.Line < 1 || perr.Pos.Column < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		assertRoundTrip(t, q)
	})
}

// FuzzExecute runs every query the fuzzer makes up over the fixture through
// each access path (exact index and columns, plain index, scan) with a
// small page size: no panic, and all of them return the same rows.
func FuzzExecute(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.battery > 10",
		"SELECT deviceId, properties.reported.battery * 2 AS b FROM devices WHERE tags.location.region IN ['US', 'EU'] OR NOT IS_DEFINED(tags.location)",
		"SELECT tags.location.region AS r, COUNT() AS n, MIN(properties.reported.battery) AS lo, AVG(properties.reported.battery) AS avg FROM devices GROUP BY tags.location.region",
		"SELECT TOP 2 * FROM devices.modules WHERE properties.reported.status = 'scanning'",
		"SELECT COUNT() AS n FROM devices WHERE STARTSWITH(deviceId, 'dev') AND tags.serial NIN [5]",
	} {
		f.Add(s)
	}
	exact := fixtureSource(f, true, append(DefaultIndexedPaths, "properties")...)
	plain := lookupOnly{fixtureSource(f, false, "tags", "deviceId")}
	scan := scanOnly{fixtureSource(f, false)}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := Parse(s); err != nil {
			return
		}
		want, _ := runAll(t, scan, s, 2)
		for name, src := range map[string]Source{"exact": exact, "lookup": plain} {
			got, _ := runAll(t, src, s, 2)
			if g, w := canonicalJSON(t, got), canonicalJSON(t, want); g != w {
				t.Fatalf("%s: %s\n%s: %s\nscan: %s", s, name, name, g, w)
			}
		}
	})
}
