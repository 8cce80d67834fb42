package twin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// stdDecode decodes data as encoding/json does with UseNumber, rejecting
// trailing data like json.Unmarshal.
func stdDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, &json.SyntaxError{}
	}
	return v, nil
}

// checkSameAsStd asserts that parseJSON and encoding/json agree on data.
func checkSameAsStd(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := stdDecode(data)
	got, gotErr := parseJSON(data)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("parseJSON(%q) error = %v, encoding/json error = %v", data, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("parseJSON(%q) = %#v, encoding/json = %#v", data, got, want)
	}
}

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, `[]`, ` {"a" : [1, -0, 0.5, 1e10, 1E+2, -1.5e-3, true, false, null, "x"]} `,
		`{"a":{"b":{"c":[[],{}]}}}`, `{"a":1,"a":2}`, `"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`,
		`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\ud800\ud800\udc00"`, "\"\xff\xfe\"", "\"a\xe2\x82\"",
		`01`, `1.`, `.5`, `1e`, `-`, `+1`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `tru`, `nul`, `[1 2]`,
		`{} {}`, `{}]`, "\"\x01\"", `"\x"`, `"\u12"`, `"\u12G4"`, `"abc`, `[`, `{"a":`, ``, `   `,
		"\ufeff{}", `1`, `"s"`, `null`, `{"\u0000":1}`, `[1e400]`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	}
	for _, in := range inputs {
		checkSameAsStd(t, []byte(in))
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{`{"a":[1,{"b":"\u00e9"}],"c":-1.5e3}`, `"\ud83d\ude00"`, `[true,false,null]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsStd(t, data)
	})
}
