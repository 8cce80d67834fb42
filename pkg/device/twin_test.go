package device

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeTwin(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		wantDesired  Properties
		wantReported Properties
		wantErr      string
	}{
		{
			name:         "real trace",
			body:         `{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}`,
			wantDesired:  Properties{Version: 1, Values: map[string]any{}},
			wantReported: Properties{Version: 2, Values: map[string]any{"temperature": json.Number("32")}},
		},
		{
			name:         "nested values and metadata dropped",
			body:         `{"desired":{"power_level":1,"cfg":{"a":"b"},"$metadata":{"$lastUpdated":"x"},"$version":5},"reported":{"$version":1}}`,
			wantDesired:  Properties{Version: 5, Values: map[string]any{"power_level": json.Number("1"), "cfg": map[string]any{"a": "b"}}},
			wantReported: Properties{Version: 1, Values: map[string]any{}},
		},
		{
			name:         "old properties wrapper",
			body:         `{"properties":{"desired":{"x":true,"$version":2},"reported":{"$version":3}}}`,
			wantDesired:  Properties{Version: 2, Values: map[string]any{"x": true}},
			wantReported: Properties{Version: 3, Values: map[string]any{}},
		},
		{name: "not json", body: `nope`, wantErr: "not JSON"},
		{name: "version not a number", body: `{"desired":{"$version":"1"}}`, wantErr: "non-numeric $version"},
		{name: "section not an object", body: `{"desired":[1]}`, wantErr: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeTwin([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Desired, tt.wantDesired) {
				t.Errorf("desired = %#v, want %#v", got.Desired, tt.wantDesired)
			}
			if !reflect.DeepEqual(got.Reported, tt.wantReported) {
				t.Errorf("reported = %#v, want %#v", got.Reported, tt.wantReported)
			}
		})
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	in := `{"$version":7,"big":4503599627370495,"s":"v"}`
	var p Properties
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip = %s, want %s (numbers must re-encode exactly)", out, in)
	}
}

func TestMarshalPatch(t *testing.T) {
	tests := []struct {
		name    string
		patch   any
		want    string
		wantErr bool
	}{
		{name: "map", patch: map[string]any{"connectivity": "cellular"}, want: `{"connectivity":"cellular"}`},
		{name: "raw", patch: json.RawMessage(` {"a":null}`), want: ` {"a":null}`},
		{name: "struct", patch: struct {
			A int `json:"a"`
		}{1}, want: `{"a":1}`},
		{name: "array refused", patch: []int{1}, wantErr: true},
		{name: "array of objects refused", patch: json.RawMessage(`[{"a":1}]`), wantErr: true},
		{name: "empty refused", patch: []byte("  "), wantErr: true},
		{name: "scalar refused", patch: json.RawMessage(`3`), wantErr: true},
		{name: "null refused", patch: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := marshalPatch(tt.patch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
