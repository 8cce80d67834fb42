package twin

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimeJSON(t *testing.T) {
	tests := []struct {
		in   string
		want string // re-marshalled; "" means a parse error
	}{
		{`"2020-07-17T06:12:26.8402249Z"`, `"2020-07-17T06:12:26.8402249Z"`},
		{`"2020-07-17T06:12:26.84Z"`, `"2020-07-17T06:12:26.8400000Z"`},
		{`"2020-07-17T06:12:26Z"`, `"2020-07-17T06:12:26.0000000Z"`},
		{`"2020-07-17T06:12:26.123456789Z"`, `"2020-07-17T06:12:26.1234567Z"`},
		{`"2020-07-17T08:12:26.5+02:00"`, `"2020-07-17T06:12:26.5000000Z"`},
		{`"2020-07-17T06:12:26.5"`, `"2020-07-17T06:12:26.5000000Z"`},
		{`"0001-01-01T00:00:00"`, `"0001-01-01T00:00:00Z"`},
		{`"0001-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`},
		{`"0001-01-01T00:00:00+00:00"`, `"0001-01-01T00:00:00Z"`},
		{`"0001-01-01T00:00:00.0000000Z"`, `"0001-01-01T00:00:00Z"`},
		{`null`, `"0001-01-01T00:00:00Z"`},
		{`""`, `"0001-01-01T00:00:00Z"`},
		{`"yesterday"`, ""},
		{`17`, ""},
	}
	for _, tt := range tests {
		var got Time
		err := json.Unmarshal([]byte(tt.in), &got)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Unmarshal(%s) accepted it", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.in, err)
			continue
		}
		if out := string(mustJSON(t, got)); out != tt.want {
			t.Errorf("Unmarshal(%s) then Marshal = %s, want %s", tt.in, out, tt.want)
		}
	}
}

func TestETagCounter(t *testing.T) {
	tests := []struct {
		counter uint64
		etag    string
	}{{1, "AAAAAAAAAAE="}, {5, "AAAAAAAAAAU="}, {11, "AAAAAAAAAAs="}, {256, "AAAAAAAAAQA="}}
	for _, tt := range tests {
		if got := ETagFromCounter(tt.counter); got != tt.etag {
			t.Errorf("ETagFromCounter(%d) = %s, want %s", tt.counter, got, tt.etag)
		}
		if got, ok := CounterFromETag(tt.etag); !ok || got != tt.counter {
			t.Errorf("CounterFromETag(%s) = %d, %v", tt.etag, got, ok)
		}
	}
	for _, bad := range []string{"", `"AAAAAAAAAAE="`, "NzMzMTE3MTAz", "*"} {
		if _, ok := CounterFromETag(bad); ok {
			t.Errorf("CounterFromETag(%q) accepted it", bad)
		}
	}
}

func TestForeignETagStillChanges(t *testing.T) {
	tw := New("d1", "", t0)
	tw.ETag = "NzMzMTE3MTAz"
	if _, err := tw.PatchService([]byte(`{"tags":{"a":1}}`), at(1), Options{}); err != nil {
		t.Fatal(err)
	}
	if tw.ETag != ETagFromCounter(1) {
		t.Errorf("etag = %s, want the counter restarted at 1", tw.ETag)
	}
}

func TestNewModuleTwin(t *testing.T) {
	tw := New("d1", "m1", t0)
	doc := decode(t, string(mustJSON(t, tw)))
	if doc["moduleId"] != "m1" || doc["deviceId"] != "d1" {
		t.Errorf("ids = %v/%v", doc["deviceId"], doc["moduleId"])
	}
	if _, ok := doc["capabilities"]; ok {
		t.Error("module twin has capabilities")
	}
	if doc["etag"] != "AAAAAAAAAAE=" || doc["version"] != json.Number("2") {
		t.Errorf("etag/version = %v/%v", doc["etag"], doc["version"])
	}
}

// TestRealTwinRoundTrip decodes a twin in the forms real hubs produced
// (old timestamps, configuration metadata) and checks that it re-encodes in
// the current form with nothing lost.
func TestRealTwinRoundTrip(t *testing.T) {
	raw, err := os.ReadFile("testdata/real-twin.json")
	if err != nil {
		t.Fatal(err)
	}
	var tw Twin
	if err := json.Unmarshal(raw, &tw); err != nil {
		t.Fatal(err)
	}
	if tw.Version != 324 || tw.Properties.Reported.Version != 313 || tw.ConnectionState != Connected {
		t.Errorf("decoded version %d, reported %d, state %s", tw.Version, tw.Properties.Reported.Version, tw.ConnectionState)
	}
	if big := tw.Tags["big"]; big != json.Number("4503599627370495") {
		t.Errorf("tag number decoded as %T %v, want exact json.Number", big, big)
	}
	if md := tw.Properties.Desired.Metadata.Children["power_level"]; md == nil || md.LastUpdatedBy != "config1" || md.LastUpdatedVersion != 1 {
		t.Errorf("desired metadata = %+v", md)
	}
	out := mustJSON(t, &tw)
	checkGolden(t, "real-twin-reencoded", out)

	var again Twin
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&again, &tw) {
		t.Errorf("second round trip differs:\n%s\n%s", mustJSON(t, &again), out)
	}
}

func TestDeviceView(t *testing.T) {
	tw := New("d1", "", t0)
	if _, err := tw.PatchService([]byte(`{"tags":{"t":1},"properties":{"desired":{"power_level":1}}}`), at(1), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.PatchReported([]byte(`{"temperature":32}`), at(2), Options{}); err != nil {
		t.Fatal(err)
	}
	want := `{"desired":{"power_level":1,"$version":2},"reported":{"temperature":32,"$version":2}}`
	if got := string(tw.DeviceView()); got != want {
		t.Errorf("DeviceView() = %s\nwant %s", got, want)
	}
}

func TestDeepCopyIsDeep(t *testing.T) {
	tw := New("d1", "", t0)
	tw.ParentScopes = []string{"p"}
	tw.Configurations = map[string]ConfigurationStatus{"c": {Status: "targeted"}}
	if _, err := tw.PatchService([]byte(`{"tags":{"a":{"b":[1,{"c":2}]}},"properties":{"desired":{"x":{"y":1}}}}`), at(1), Options{}); err != nil {
		t.Fatal(err)
	}
	before := string(mustJSON(t, tw))
	c := tw.DeepCopy()
	if got := string(mustJSON(t, c)); got != before {
		t.Fatalf("copy differs:\n%s\n%s", got, before)
	}
	// Change the copy in place every way a caller could.
	c.Tags["a"].(map[string]any)["b"].([]any)[1].(map[string]any)["c"] = json.Number("9")
	c.Properties.Desired.Values["x"].(map[string]any)["y"] = json.Number("9")
	c.Properties.Desired.Metadata.Children["x"].LastUpdatedVersion = 99
	c.X509Thumbprint.PrimaryThumbprint = new(string)
	c.Capabilities.IoTEdge = true
	c.ParentScopes[0] = "q"
	c.Configurations["c"] = ConfigurationStatus{Status: "applied"}
	if after := string(mustJSON(t, tw)); after != before {
		t.Errorf("changing the copy changed the original:\n%s\n%s", after, before)
	}
}

// TestCloneIsolatesWrites checks the copy-on-write contract behind the
// cheap Clone: writes to a clone, at every depth and of every kind, never
// show in the original (nor in a query document taken before), and the
// other way round.
func TestCloneIsolatesWrites(t *testing.T) {
	writes := []op{
		{kind: "patch", body: `{"tags":{"a":{"b":{"c":null,"d":2}},"e":null},"properties":{"desired":{"x":{"y":{"z":null}},"w":null,"n":{"m":1}}}}`},
		{kind: "put", body: `{"tags":{"only":1},"properties":{"desired":{"x":{"y":{}}}}}`},
		{kind: "reported", body: `{"r":{"s":{"t":null,"u":3}},"v":null,"q":{"p":null}}`},
	}
	seed := func() *Twin {
		tw := New("d1", "", t0)
		for _, o := range []op{
			{kind: "patch", body: `{"tags":{"a":{"b":{"c":1}},"e":1},"properties":{"desired":{"x":{"y":{"z":1}},"w":[1]}}}`},
			{kind: "reported", body: `{"r":{"s":{"t":1}},"v":1}`},
		} {
			if _, err := o.apply(tw, 1); err != nil {
				t.Fatal(err)
			}
		}
		return tw
	}
	for _, w := range writes {
		t.Run(w.kind, func(t *testing.T) {
			original := seed()
			before, doc := string(mustJSON(t, original)), string(mustJSON(t, original.QueryDocument()))
			clone := original.Clone()
			if _, err := w.apply(clone, 2); err != nil {
				t.Fatal(err)
			}
			if string(mustJSON(t, clone)) == before {
				t.Fatal("the write did not change the clone")
			}
			if after := string(mustJSON(t, original)); after != before {
				t.Errorf("a write to the clone changed the original:\n%s\n%s", after, before)
			}
			if after := string(mustJSON(t, original.QueryDocument())); after != doc {
				t.Errorf("a write to the clone changed the query document")
			}
			cloneBefore := string(mustJSON(t, clone))
			if _, err := w.apply(original, 3); err != nil {
				t.Fatal(err)
			}
			if after := string(mustJSON(t, clone)); after != cloneBefore {
				t.Errorf("a write to the original changed the clone")
			}
		})
	}
}

// TestQueryDocumentMatchesJSON checks that QueryDocument is the service
// JSON decoded with UseNumber.
func TestQueryDocumentMatchesJSON(t *testing.T) {
	raw, err := os.ReadFile("testdata/real-twin.json")
	if err != nil {
		t.Fatal(err)
	}
	var real Twin
	if err := json.Unmarshal(raw, &real); err != nil {
		t.Fatal(err)
	}
	real.ParentScopes = []string{"ms-azure-iot-edge://e-1"}
	real.DeviceScope = "ms-azure-iot-edge://d-1"
	real.StatusReason = "why"
	fresh := New("d2", "m2", t0)
	for _, tw := range []*Twin{&real, fresh} {
		want := decode(t, string(mustJSON(t, tw)))
		if got := tw.QueryDocument(); !reflect.DeepEqual(got, want) {
			t.Errorf("QueryDocument() =\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, want))
		}
	}
}

func TestNewTimeTruncates(t *testing.T) {
	in := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	got := NewTime(in)
	if got.Location() != time.UTC || got.Nanosecond() != 123456700 || got.Hour() != 2 {
		t.Errorf("NewTime() = %v", got.Time)
	}
}

// TestAppendJSONMatchesStructEncoding checks the hand-written encoder
// against encoding/json's reflection over the same struct tags.
func TestAppendJSONMatchesStructEncoding(t *testing.T) {
	raw, err := os.ReadFile("testdata/real-twin.json")
	if err != nil {
		t.Fatal(err)
	}
	var real Twin
	if err := json.Unmarshal(raw, &real); err != nil {
		t.Fatal(err)
	}
	edge := New("e1", "", t0)
	edge.ParentScopes = []string{"ms-azure-iot-edge://p-1", "q"}
	edge.DeviceScope = "ms-azure-iot-edge://e1-2"
	edge.StatusReason = "maintenance"
	edge.Configurations = map[string]ConfigurationStatus{"b": {Status: "applied"}, "a": {Status: "targeted"}}
	thumb := "ABC"
	edge.X509Thumbprint = &X509Thumbprint{PrimaryThumbprint: &thumb}
	edge.Capabilities = &Capabilities{IoTEdge: true}
	bare := &Twin{DeviceID: "x"}
	for _, tw := range []*Twin{&real, edge, New("d1", "m1", t0), bare} {
		want, err := json.Marshal((*twinFields)(tw))
		if err != nil {
			t.Fatal(err)
		}
		if got := tw.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON() =\n%s\nencoding/json =\n%s", got, want)
		}
	}
}

// TestTimeTextMatchesLayout checks the hand-written timestamp formatter
// against time.Format over a spread of instants.
func TestTimeTextMatchesLayout(t *testing.T) {
	instants := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 100, time.UTC),
		time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999900, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := range 1000 {
		instants = append(instants, t0.Add(time.Duration(i)*7919*time.Hour+time.Duration(i*104729)*100))
	}
	for _, in := range instants {
		if got, want := NewTime(in).String(), in.UTC().Format(timeLayout); got != want {
			t.Fatalf("String() = %s, want %s", got, want)
		}
	}
}

// TestUnmarshalMatchesStructDecoding checks the hand-written twin decoder
// against encoding/json's struct decoding (with UseNumber) of the same
// documents.
func TestUnmarshalMatchesStructDecoding(t *testing.T) {
	docs := []string{
		`{}`,
		`{"deviceId":"d","moduleId":null,"x509Thumbprint":null,"tags":null,"properties":null,"capabilities":null}`,
		`{"DeviceId":"folded","ETAG":"AAAAAAAAAAE=","Properties":{"desired":{"a":1,"$version":2}},"unknown":{"x":1}}`,
		`{"deviceId":"d","parentScopes":["a","b"],"configurations":{"c":{"status":"applied","extra":1}},"x509Thumbprint":{"primaryThumbprint":"P"},"capabilities":{"iotEdge":true}}`,
		`{"deviceId":"d","properties":{"desired":{"$metadata":{"$lastUpdated":"2020-01-01T00:00:00"},"$version":1},"reported":{"t":[1,{"u":null}],"$version":9}}}`,
	}
	if raw, err := os.ReadFile("testdata/real-twin.json"); err == nil {
		docs = append(docs, string(raw))
	}
	for _, name := range []string{"write-mixed-counters", "write-put-replaces-desired"} {
		raw, err := os.ReadFile("testdata/golden/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var wrapper struct{ Twin json.RawMessage }
		if err := json.Unmarshal(raw, &wrapper); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(wrapper.Twin))
	}
	for _, doc := range docs {
		var want twinFields
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		var got Twin
		if err := json.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", doc, err)
		}
		if !reflect.DeepEqual(got, Twin(want)) {
			t.Errorf("Unmarshal(%s) =\n%#v\nencoding/json =\n%#v", doc, got, Twin(want))
		}
	}
	for _, bad := range []string{`[]`, `{"version":"x"}`, `{"deviceId":5}`, `{"tags":[1]}`, `{"statusUpdateTime":"never"}`,
		`{"parentScopes":[1]}`, `{"capabilities":{"iotEdge":"yes"}}`, `{"properties":{"desired":{"$version":1.5}}}`, `{"configurations":{"c":1}}`, `{`} {
		var tw Twin
		if err := json.Unmarshal([]byte(bad), &tw); err == nil {
			t.Errorf("Unmarshal(%s) accepted it", bad)
		}
	}
}
