package twin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// op is one write in a write-path test.
type op struct {
	kind string // "patch", "put" or "reported"
	body string
	api  string
}

// apply runs the write and returns a JSON record of its outcome.
func (o op) apply(tw *Twin, now int) (json.RawMessage, error) {
	opts := Options{APIVersion: o.api}
	switch o.kind {
	case "patch", "put":
		var n *DesiredNotification
		var err error
		if o.kind == "patch" {
			n, err = tw.PatchService([]byte(o.body), at(now), opts)
		} else {
			n, err = tw.ReplaceService([]byte(o.body), at(now), opts)
		}
		if err != nil {
			return nil, err
		}
		if n == nil {
			return json.RawMessage(`{"notification":null}`), nil
		}
		return json.RawMessage(fmt.Sprintf(`{"notification":{"topic":%q,"body":%s}}`, n.Topic(), n.Body)), nil
	case "reported":
		v, err := tw.PatchReported([]byte(o.body), at(now), opts)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(fmt.Sprintf(`{"reportedVersion":%d}`, v)), nil
	}
	panic("unknown op " + o.kind)
}

// TestWritePaths runs sequences of writes on a new twin and compares the
// final twin (metadata, versions, etag) and every write's outcome with a
// golden file.
func TestWritePaths(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{"new-device", nil},
		{"patch-desired", []op{{kind: "patch", body: `{"properties":{"desired":{"power_level":1,"telemetry":{"interval":30,"mode":"fast"}}}}`}}},
		{"patch-tags-only", []op{{kind: "patch", body: `{"tags":{"location":{"plant":"Redmond43","region":"US"}}}`}}},
		{"patch-tags-and-desired", []op{{kind: "patch", body: `{"tags":{"env":"prod"},"properties":{"desired":{"a":1}}}`}}},
		{"patch-nested-merge", []op{
			{kind: "patch", body: `{"properties":{"desired":{"t":{"a":1,"b":{"c":2}},"keep":true}}}`},
			{kind: "patch", body: `{"properties":{"desired":{"t":{"b":{"d":3},"e":[1,2,3]}}}}`},
		}},
		{"patch-delete", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1,"b":{"c":2,"d":3}}}}`},
			{kind: "patch", body: `{"properties":{"desired":{"a":null,"b":{"c":null}}}}`},
		}},
		{"patch-null-under-missing-parent", []op{{kind: "patch", body: `{"properties":{"desired":{"x":{"y":null}}}}`}}},
		{"patch-same-value-bumps", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1}}}`},
			{kind: "patch", body: `{"properties":{"desired":{"a":1}}}`},
		}},
		{"patch-delete-absent-is-noop", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1}}}`},
			{kind: "patch", body: `{"properties":{"desired":{"zz":null}}}`},
		}},
		{"patch-ignores-readonly-fields", []op{{kind: "patch", body: `{"deviceId":"other","etag":"AAAAAAAAAAk=","version":42,"status":"disabled","connectionState":"Connected","properties":{"desired":{"a":1,"$metadata":{"$lastUpdated":"2001-01-01T00:00:00Z"},"$version":99},"reported":{"r":1}}}`}}},
		{"patch-scalar-to-object-and-back", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1}}}`},
			{kind: "patch", body: `{"properties":{"desired":{"a":{"b":2}}}}`},
			{kind: "patch", body: `{"properties":{"desired":{"a":"s"}}}`},
		}},
		{"patch-number-literal-kept", []op{{kind: "patch", body: `{"properties":{"desired":{"f":1.0,"g":1e3,"h":-0.5}}}`}}},
		{"put-replaces-desired", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1,"b":2,"n":{"x":1,"y":2}}}}`},
			{kind: "put", body: `{"properties":{"desired":{"a":1,"c":100,"n":{"x":1}}}}`},
		}},
		{"put-tags-only", []op{
			{kind: "patch", body: `{"tags":{"a":1,"b":2},"properties":{"desired":{"d":1}}}`},
			{kind: "put", body: `{"tags":{"c":3}}`},
		}},
		{"put-roundtrip-metadata-ignored", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1}}}`},
			{kind: "put", body: `{"deviceId":"d1","etag":"AAAAAAAAAAI=","tags":{},"properties":{"desired":{"a":2,"$metadata":{"$lastUpdated":"2001-01-01T00:00:00Z"},"$version":2},"reported":{"$version":1}}}`},
		}},
		{"reported-patch", []op{
			{kind: "reported", body: `{"temperature":32,"fw":{"version":"1.2","state":"ok"}}`},
			{kind: "reported", body: `{"fw":{"state":null},"connectivity":"cellular"}`},
		}},
		{"reported-null-under-missing-parent", []op{{kind: "reported", body: `{"p":{"q":null}}`}}},
		{"reported-noop", []op{{kind: "reported", body: `{"missing":null}`}}},
		{"mixed-counters", []op{
			{kind: "patch", body: `{"properties":{"desired":{"a":1}}}`},
			{kind: "reported", body: `{"a":1}`},
			{kind: "patch", body: `{"tags":{"t":1}}`},
			{kind: "reported", body: `{"b":2}`},
			{kind: "patch", body: `{"properties":{"desired":{"a":2}}}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := New("d1", "", t0)
			var outcomes []json.RawMessage
			for i, o := range tt.ops {
				out, err := o.apply(tw, i+1)
				if err != nil {
					t.Fatalf("op %d (%s %s): %v", i, o.kind, o.body, err)
				}
				outcomes = append(outcomes, out)
			}
			got := fmt.Sprintf(`{"twin":%s,"deviceView":%s,"outcomes":%s}`, mustJSON(t, tw), tw.DeviceView(), mustJSON(t, outcomes))
			checkGolden(t, "write-"+tt.name, []byte(got))
			assertConsistent(t, tw)
		})
	}
}

// assertConsistent checks invariants every twin must hold after writes:
// a metadata node for every key and no node without a key, each section
// within its limits, and the version equation of a twin that started new
// with tag-only writes excluded.
func assertConsistent(t *testing.T, tw *Twin) {
	t.Helper()
	for _, c := range []struct {
		section Section
		coll    *Collection
	}{{SectionDesired, &tw.Properties.Desired}, {SectionReported, &tw.Properties.Reported}} {
		if err := metadataMatches(c.coll.Values, &c.coll.Metadata, c.section.Path()); err != nil {
			t.Errorf("metadata: %v", err)
		}
		if err := ValidateSection(c.section, c.coll.Values, Options{}); err != nil {
			t.Errorf("stored %s violates the limits: %v", c.section, err)
		}
	}
	if err := ValidateSection(SectionTags, tw.Tags, Options{}); err != nil {
		t.Errorf("stored tags violate the limits: %v", err)
	}
	if _, ok := CounterFromETag(tw.ETag); !ok {
		t.Errorf("etag %q is not a counter", tw.ETag)
	}
}

// metadataMatches reports a mismatch between a value tree and its metadata.
func metadataMatches(values map[string]any, md *Metadata, path string) error {
	for k, v := range values {
		node := md.Children[k]
		if node == nil {
			return fmt.Errorf("%s.%s has no metadata node", path, k)
		}
		if node.LastUpdated.IsZero() {
			return fmt.Errorf("%s.%s has no $lastUpdated", path, k)
		}
		obj, isObject := v.(map[string]any)
		if !isObject {
			if len(node.Children) > 0 {
				return fmt.Errorf("%s.%s is a leaf with metadata children", path, k)
			}
			continue
		}
		if err := metadataMatches(obj, node, path+"."+k); err != nil {
			return err
		}
	}
	for k := range md.Children {
		if _, ok := values[k]; !ok {
			return fmt.Errorf("%s.%s has a metadata node but no value", path, k)
		}
	}
	return nil
}

// TestWriteErrorsLeaveTwinUnchanged checks atomicity: a refused write, even
// one whose first section is valid, changes nothing.
func TestWriteErrorsLeaveTwinUnchanged(t *testing.T) {
	tests := []struct {
		name     string
		op       op
		wantPath string
	}{
		{"patch bad desired after good tags", op{kind: "patch", body: `{"tags":{"ok":1},"properties":{"desired":{"bad.key":1}}}`}, "properties.desired.bad.key"},
		{"patch bad tags", op{kind: "patch", body: `{"tags":{"a":{"$b":1}},"properties":{"desired":{"ok":1}}}`}, "tags.a.$b"},
		{"put null", op{kind: "put", body: `{"tags":{"a":1},"properties":{"desired":{"a":{"b":null}}}}`}, "properties.desired.a.b"},
		{"reported $version", op{kind: "reported", body: `{"ok":1,"$version":3}`}, "properties.reported.$version"},
		{"reported $metadata", op{kind: "reported", body: `{"$metadata":{}}`}, "properties.reported.$metadata"},
		{"reported nested $ key", op{kind: "reported", body: `{"a":{"$x":1}}`}, "properties.reported.a.$x"},
		{"malformed json", op{kind: "patch", body: `{"tags":`}, ""},
		{"not an object", op{kind: "reported", body: `[1]`}, "properties.reported"},
		{"tags not an object", op{kind: "patch", body: `{"tags":5}`}, "tags"},
		{"array in old api", op{kind: "patch", body: `{"properties":{"desired":{"a":[1]}}}`, api: "2018-06-30"}, "properties.desired.a"},
		{"size over limit", op{kind: "patch", body: `{"tags":{"big":"` + strings.Repeat("x", 4000) + `","big2":"` + strings.Repeat("x", 4000) + `","big3":"` + strings.Repeat("x", 200) + `"}}`}, "tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := New("d1", "", t0)
			if _, err := tw.PatchService([]byte(`{"tags":{"t":1},"properties":{"desired":{"d":1}}}`), at(1), Options{}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.PatchReported([]byte(`{"r":1}`), at(1), Options{}); err != nil {
				t.Fatal(err)
			}
			before := mustJSON(t, tw)
			_, err := tt.op.apply(tw, 2)
			var twinErr *Error
			if !errors.As(err, &twinErr) {
				t.Fatalf("error = %v, want *Error", err)
			}
			if twinErr.Path != tt.wantPath {
				t.Errorf("path = %q, want %q", twinErr.Path, tt.wantPath)
			}
			if after := mustJSON(t, tw); string(after) != string(before) {
				t.Errorf("twin changed by a refused write\nbefore: %s\n after: %s", before, after)
			}
		})
	}
}
