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
