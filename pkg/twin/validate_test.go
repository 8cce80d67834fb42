package twin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// nest returns {"k1":{"k2":...{"kN": leaf}}} for keys k1..kN.
func nest(depth int, leaf any) map[string]any {
	doc := map[string]any{"k" + itoa(depth): leaf}
	for d := depth - 1; d >= 1; d-- {
		doc = map[string]any{"k" + itoa(d): doc}
	}
	return doc
}

// itoa is strconv.Itoa, short for building keys.
func itoa(i int) string { return strconv.Itoa(i) }

// nestPath returns the error path of the value at depth in nest().
func nestPath(section Section, depth int) string {
	var b strings.Builder
	b.WriteString(section.Path())
	for d := 1; d <= depth; d++ {
		b.WriteString(".k" + itoa(d))
	}
	return b.String()
}

// sectionOfSize builds a document of exactly size bytes from strings of at
// most MaxStringBytes.
func sectionOfSize(size int) map[string]any {
	doc := map[string]any{}
	for i := 0; size > 0; i++ {
		key := "k" + itoa(i)
		n := min(size-len(key), MaxStringBytes)
		doc[key] = strings.Repeat("x", n)
		size -= len(key) + n
	}
	return doc
}

func TestValidateSection(t *testing.T) {
	type want struct {
		code    string
		number  int
		status  int
		path    string
		message string
	}
	invalid := func(path, message string) *want {
		return &want{CodeArgumentInvalid, 400004, http.StatusBadRequest, path, message}
	}
	tests := []struct {
		name    string
		section Section
		doc     map[string]any
		opts    Options
		want    *want // nil: valid
	}{
		{"empty", SectionDesired, map[string]any{}, Options{}, nil},
		{"all value types", SectionDesired, decode(t, `{"s":"x","n":1,"f":1.5,"b":true,"o":{"p":{}},"a":[1,"x",{"q":1},[2]]}`), Options{}, nil},
		{"key of 1024 bytes", SectionTags, map[string]any{strings.Repeat("k", 1024): json.Number("1")}, Options{}, nil},
		{"key of 1025 bytes", SectionTags, map[string]any{strings.Repeat("k", 1025): json.Number("1")}, Options{},
			invalid("tags."+strings.Repeat("k", 1025), "Length of property name kkkkkkkkkk.. exceeds maximum length of 1024")},
		{"key with dot", SectionDesired, decode(t, `{"a":{"b.c":1}}`), Options{}, invalid("properties.desired.a.b.c", "Property name b.c contains invalid character '.'")},
		{"key with dollar", SectionReported, decode(t, `{"$version":1}`), Options{}, invalid("properties.reported.$version", "Property name $version contains invalid character '$'")},
		{"key with space", SectionTags, decode(t, `{"a b":1}`), Options{}, invalid("tags.a b", "Property name a b contains invalid character ' '")},
		{"key with C0 control", SectionTags, decode(t, `{"a\u0001":1}`), Options{}, invalid("tags.a\x01", "contains invalid character '\\x01'")},
		{"key with C1 control", SectionTags, decode(t, `{"a\u0085":1}`), Options{}, invalid("tags.a\u0085", "contains invalid character '\\u0085'")},
		{"empty key", SectionTags, decode(t, `{"":1}`), Options{}, invalid("tags.", "Property name cannot be empty")},
		{"key with hash is allowed", SectionTags, decode(t, `{"a#b":1}`), Options{}, nil},
		{"object at depth 10, leaf at 11", SectionDesired, nest(11, json.Number("1")), Options{}, nil},
		{"object at depth 11", SectionDesired, nest(11, map[string]any{}), Options{}, invalid(nestPath(SectionDesired, 11), "Nested depth of twin property exceeds 10")},
		{"string of 4096 bytes", SectionDesired, map[string]any{"s": strings.Repeat("x", 4096)}, Options{}, nil},
		{"string of 4097 bytes", SectionDesired, map[string]any{"s": strings.Repeat("x", 4097)}, Options{},
			invalid("properties.desired.s", "Value associated with property name s has length 4097 that exceeds maximum length of 4096")},
		{"multibyte string over 4096 bytes", SectionDesired, map[string]any{"s": strings.Repeat("é", 2049)}, Options{}, invalid("properties.desired.s", "has length 4098")},
		{"max integer", SectionDesired, decode(t, `{"i":4503599627370495,"j":-4503599627370496}`), Options{}, nil},
		{"integer above 2^52-1", SectionDesired, decode(t, `{"i":4503599627370496}`), Options{},
			invalid("properties.desired.i", "Property i has an out of bound value. Valid values are between -4503599627370496 and 4503599627370495")},
		{"integer below -2^52", SectionReported, decode(t, `{"o":{"i":-4503599627370497}}`), Options{}, invalid("properties.reported.o.i", "out of bound")},
		{"integer from the e2e test", SectionReported, decode(t, `{"i":5283920058631410000}`), Options{}, invalid("properties.reported.i", "out of bound")},
		{"integer beyond int64", SectionReported, decode(t, `{"i":99999999999999999999999}`), Options{}, invalid("properties.reported.i", "out of bound")},
		{"large float is not an integer", SectionReported, decode(t, `{"f":1e300,"g":5283920058631410000.0}`), Options{}, nil},
		{"integral float64 out of range", SectionDesired, map[string]any{"f": 1e17}, Options{}, invalid("properties.desired.f", "out of bound")},
		{"Go int in range", SectionDesired, map[string]any{"i": 42, "u": uint8(1), "f": 0.5}, Options{}, nil},
		{"integer in array", SectionDesired, decode(t, `{"a":[1,4503599627370496]}`), Options{}, invalid("properties.desired.a[1]", "out of bound")},
		{"null in array", SectionDesired, decode(t, `{"a":[1,null]}`), Options{}, invalid("properties.desired.a[1]", "Arrays cannot contain 'null' as value")},
		{"null in nested array", SectionDesired, decode(t, `{"a":[[null]]}`), Options{}, invalid("properties.desired.a[0][0]", "Arrays cannot contain 'null'")},
		{"bad key in array object", SectionDesired, decode(t, `{"a":[{"b.c":1}]}`), Options{}, invalid("properties.desired.a[0].b.c", "invalid character '.'")},
		{"array at 2019-10-01", SectionDesired, decode(t, `{"a":[1]}`), Options{APIVersion: "2019-10-01"}, nil},
		{"array at 2018-06-30", SectionDesired, decode(t, `{"x":{"a":[1]}}`), Options{APIVersion: "2018-06-30"}, invalid("properties.desired.x.a", "arrays are not supported")},
		{"null value", SectionTags, decode(t, `{"my-tag":null}`), Options{}, invalid("tags.my-tag", "Value of Property or Tag cannot be null. Error in Property/Tag tags.my-tag")},
		{"unsupported type", SectionTags, map[string]any{"x": struct{}{}}, Options{}, invalid("tags.x", "has a value of unsupported type")},
		{"bad json.Number", SectionTags, map[string]any{"x": json.Number("1x")}, Options{}, invalid("tags.x", "has a value of unsupported type")},
		{"tags at limit", SectionTags, sectionOfSize(MaxTagsSize), Options{}, nil},
		{"tags over limit", SectionTags, sectionOfSize(MaxTagsSize + 1), Options{},
			&want{CodeDeviceModelMaxPropertiesExceeded, 403100, http.StatusForbidden, "tags", "'Tags' size should be less than 8192 bytes."}},
		{"desired at limit", SectionDesired, sectionOfSize(MaxDesiredSize), Options{}, nil},
		{"desired over limit", SectionDesired, sectionOfSize(MaxDesiredSize + 1), Options{},
			&want{CodeDeviceModelMaxPropertiesExceeded, 403100, http.StatusForbidden, "properties.desired", "'Properties.Desired' size should be less than 32768 bytes."}},
		{"reported over limit", SectionReported, sectionOfSize(MaxReportedSize + 1), Options{},
			&want{CodeDeviceModelMaxPropertiesExceeded, 403100, http.StatusForbidden, "properties.reported", "'Properties.Reported' size should be less than 32768 bytes."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSection(tt.section, tt.doc, tt.opts)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateSection() = %v, want nil", err)
				}
				return
			}
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("ValidateSection() = %v, want *Error", err)
			}
			if got.Code != tt.want.code || got.Number != tt.want.number || got.HTTPStatus != tt.want.status || got.Path != tt.want.path {
				t.Errorf("error = {%s %d %d %q}, want {%s %d %d %q}", got.Code, got.Number, got.HTTPStatus, got.Path,
					tt.want.code, tt.want.number, tt.want.status, tt.want.path)
			}
			if !strings.Contains(got.Message, tt.want.message) {
				t.Errorf("message = %q, want it to contain %q", got.Message, tt.want.message)
			}
		})
	}
}

// TestValidateDeterministic checks that a document with several problems
// always reports the same one (the first in key order).
func TestValidateDeterministic(t *testing.T) {
	doc := decode(t, `{"z.z":1,"b":{"c$":1},"a":{"y":null,"x.x":1}}`)
	for range 20 {
		err := ValidateSection(SectionTags, doc, Options{})
		var got *Error
		if !errors.As(err, &got) || got.Path != "tags.a.x.x" {
			t.Fatalf("error = %v, want the one at tags.a.x.x", err)
		}
	}
}

func TestValidatePatchAllowsNull(t *testing.T) {
	if err := ValidatePatch(SectionDesired, decode(t, `{"a":null,"b":{"c":null}}`), Options{}); err != nil {
		t.Errorf("ValidatePatch() = %v, want nil", err)
	}
	if err := ValidatePatch(SectionDesired, decode(t, `{"a":[null]}`), Options{}); err == nil {
		t.Error("ValidatePatch() accepted null in an array")
	}
}

func TestValidateSectionJSON(t *testing.T) {
	tests := []struct {
		doc      string
		wantPath string // "" with wantErr false: valid
		wantErr  bool
	}{
		{`{"a":{"b":1}}`, "", false},
		{`{"a":`, "properties.desired", true},
		{`[1]`, "properties.desired", true},
		{`{"a":4503599627370496}`, "properties.desired.a", true},
	}
	for _, tt := range tests {
		err := ValidateSectionJSON(SectionDesired, []byte(tt.doc), Options{})
		var got *Error
		if (err != nil) != tt.wantErr || (err != nil && (!errors.As(err, &got) || got.Path != tt.wantPath)) {
			t.Errorf("ValidateSectionJSON(%s) = %v, want error %v at %q", tt.doc, err, tt.wantErr, tt.wantPath)
		}
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		doc  string
		want int
	}{
		{`{}`, 0},
		{`{"a":1}`, 1 + 8},
		{`{"a":1.5e10}`, 1 + 8},
		{`{"ab":true}`, 2 + 4},
		{`{"a":"xyz"}`, 1 + 3},
		{`{"a":"x\ny\u0085"}`, 1 + 2},
		{`{"é":"日本"}`, 2 + 6},
		{`{"a":{"b":1,"c":{"d":false}}}`, 1 + (1 + 8) + (1 + (1 + 4))},
		{`{"a":[1,"xy",{"k":true}]}`, 1 + 8 + 2 + (1 + 4)},
	}
	for _, tt := range tests {
		if got := Size(decode(t, tt.doc)); got != tt.want {
			t.Errorf("Size(%s) = %d, want %d", tt.doc, got, tt.want)
		}
	}
}

// TestPatchSizeCountsTheResult checks that a patch is refused when the
// section it produces is too big, and accepted when a delete in the same
// patch makes room.
func TestPatchSizeCountsTheResult(t *testing.T) {
	tw := New("d1", "", t0)
	half := strings.Repeat("x", 4000)
	if _, err := tw.PatchService([]byte(`{"tags":{"a":"`+half+`","b":"`+half+`"}}`), at(1), Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := tw.PatchService([]byte(`{"tags":{"c":"`+half+`"}}`), at(2), Options{})
	var got *Error
	if !errors.As(err, &got) || got.Code != CodeDeviceModelMaxPropertiesExceeded {
		t.Fatalf("growing tags past 8 KB: error = %v, want DeviceModelMaxPropertiesExceeded", err)
	}
	if _, err := tw.PatchService([]byte(`{"tags":{"a":null,"c":"`+half+`"}}`), at(3), Options{}); err != nil {
		t.Errorf("replacing a tag of the same size: %v", err)
	}
	if Size(tw.Tags) != 2*(1+4000) {
		t.Errorf("tags size = %d", Size(tw.Tags))
	}
}
