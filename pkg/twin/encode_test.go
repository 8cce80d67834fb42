package twin

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// stdString encodes s as encoding/json does without HTML escaping.
func stdString(t *testing.T, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		"", "plain", `quote " and backslash \`, "\n\r\t\b\f\x00\x01\x1f\x7f", "<>&",
		"é日本😀", "\u2028\u2029", "\xff", "a\xe2\x82", "\xed\xa0\x80", "\ufffd",
	}
	for c := 0; c < 256; c++ {
		inputs = append(inputs, string([]byte{byte(c)}), "x"+string(rune(c))+"y")
	}
	for _, in := range inputs {
		if got, want := string(appendString(nil, in)), stdString(t, in); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\n\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), stdString(t, s); got != want {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// TestSectionJSON covers the Collection and Metadata codecs on their own.
func TestSectionJSON(t *testing.T) {
	in := `{"a":{"b":1.50},"$metadata":{"$lastUpdated":"2020-01-02T03:04:05.6Z","$lastUpdatedVersion":3,"a":{"$lastUpdated":"2020-01-02T03:04:05Z","$lastUpdatedVersion":3,"b":{"$lastUpdated":"2020-01-02T03:04:05Z","$lastUpdatedVersion":3}}},"$version":3,"$unknown":1}`
	var c Collection
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"b":1.50},"$metadata":{"$lastUpdated":"2020-01-02T03:04:05.6000000Z","$lastUpdatedVersion":3,"a":{"$lastUpdated":"2020-01-02T03:04:05.0000000Z","$lastUpdatedVersion":3,"b":{"$lastUpdated":"2020-01-02T03:04:05.0000000Z","$lastUpdatedVersion":3}}},"$version":3}`
	if got := string(mustJSON(t, c)); got != want {
		t.Errorf("round trip =\n%s\nwant\n%s", got, want)
	}
	var md Metadata
	if err := json.Unmarshal([]byte(`{"$lastUpdated":"2020-01-02T03:04:05Z","x":{"$lastUpdated":null}}`), &md); err != nil {
		t.Fatal(err)
	}
	if got := string(mustJSON(t, md)); got != `{"$lastUpdated":"2020-01-02T03:04:05.0000000Z","x":{"$lastUpdated":"0001-01-01T00:00:00Z"}}` {
		t.Errorf("metadata = %s", got)
	}
	for _, bad := range []string{`{"$version":"x"}`, `{"$metadata":5}`, `{"$metadata":{"$lastUpdated":"never"}}`, `[1]`} {
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("Unmarshal(%s) accepted it", bad)
		}
	}
	if err := json.Unmarshal([]byte(`null`), &c); err != nil || c.Values != nil {
		t.Errorf("null section: %v %+v", err, c)
	}
}

func TestSectionNames(t *testing.T) {
	for _, tt := range []struct {
		s          Section
		path, name string
		max        int
	}{
		{SectionTags, "tags", "Tags", 8192},
		{SectionDesired, "properties.desired", "Properties.Desired", 32768},
		{SectionReported, "properties.reported", "Properties.Reported", 32768},
		{Section(0), "", "", 0},
	} {
		if tt.s.String() != tt.path || tt.s.displayName() != tt.name || tt.s.MaxSize() != tt.max {
			t.Errorf("section %d: %q %q %d", tt.s, tt.s.String(), tt.s.displayName(), tt.s.MaxSize())
		}
	}
}

func TestAppendValueHandBuilt(t *testing.T) {
	doc := map[string]any{"i": 3, "f": 1.5, "u": uint8(7), "s": []string{"a"}, "bad": make(chan int), "nan": math.NaN()}
	want := `{"bad":null,"f":1.5,"i":3,"nan":null,"s":["a"],"u":7}`
	if got := string(appendValue(nil, doc)); got != want {
		t.Errorf("appendValue() = %s, want %s", got, want)
	}
}
