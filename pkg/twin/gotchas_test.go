package twin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestSpecGotchas covers each gotcha of spec §8 that concerns the document.
func TestSpecGotchas(t *testing.T) {
	// written returns a twin after the given service PATCH bodies.
	written := func(t *testing.T, bodies ...string) *Twin {
		t.Helper()
		tw := New("d1", "", t0)
		for i, b := range bodies {
			if _, err := tw.PatchService([]byte(b), at(i+1), Options{}); err != nil {
				t.Fatalf("PatchService(%s): %v", b, err)
			}
		}
		return tw
	}
	desired := func(tw *Twin) string { return string(mustJSON(t, tw.Properties.Desired.Values)) }

	t.Run("4: C# PATCH bodies carry read-only root fields", func(t *testing.T) {
		tw := written(t, `{"deviceId":"x","etag":"AAAAAAAAAAk=","version":99,"status":"disabled","statusUpdateTime":"2001-01-01T00:00:00Z","connectionState":"Connected","cloudToDeviceMessageCount":7,"authenticationType":"none","capabilities":{"iotEdge":true},"tags":{"a":1}}`)
		if tw.DeviceID != "d1" || tw.Status != "enabled" || tw.ConnectionState != Disconnected || tw.Version != 3 || tw.ETag != ETagFromCounter(2) || tw.Capabilities.IoTEdge {
			t.Errorf("read-only fields changed: %s", mustJSON(t, tw))
		}
	})
	t.Run("4: ReplaceTwinAsync resends $metadata and $version", func(t *testing.T) {
		tw := written(t, `{"properties":{"desired":{"a":1}}}`)
		fetched := mustJSON(t, tw)
		n, err := tw.ReplaceService(fetched, at(5), Options{})
		if err != nil {
			t.Fatalf("PUT of a fetched twin: %v", err)
		}
		if n.Version != 3 || string(n.Body) != `{"a":1,"$version":3}` {
			t.Errorf("notification = v%d %s", n.Version, n.Body)
		}
	})
	t.Run("5: $version in a reported patch is 400004", func(t *testing.T) {
		tw := New("d1", "", t0)
		_, err := tw.PatchReported([]byte(`{"temperature":1,"$version":1}`), at(1), Options{})
		var e *Error
		if !errors.As(err, &e) || e.Number != 400004 || e.HTTPStatus != 400 || e.Path != "properties.reported.$version" {
			t.Errorf("error = %#v", err)
		}
		if tw.Properties.Reported.Version != 1 || len(tw.Properties.Reported.Values) != 0 {
			t.Errorf("refused patch was stored: %s", mustJSON(t, tw.Properties.Reported))
		}
	})
	t.Run("6: arrays are replaced whole", func(t *testing.T) {
		tw := written(t, `{"properties":{"desired":{"a":[1,2,3]}}}`, `{"properties":{"desired":{"a":[4]}}}`)
		if got := desired(tw); got != `{"a":[4]}` {
			t.Errorf("desired = %s", got)
		}
	})
	t.Run("6: arrays refused before 2019-10-01", func(t *testing.T) {
		tw := New("d1", "", t0)
		_, err := tw.PatchReported([]byte(`{"a":[1]}`), at(1), Options{APIVersion: "2018-06-30"})
		if err == nil || !strings.Contains(err.Error(), "arrays are not supported") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("7: null in a PUT names the key", func(t *testing.T) {
		tw := New("d1", "", t0)
		_, err := tw.ReplaceService([]byte(`{"tags":{"my-tag":null}}`), at(1), Options{})
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeArgumentInvalid || e.Message != "Value of Property or Tag cannot be null. Error in Property/Tag tags.my-tag" {
			t.Errorf("error = %#v", err)
		}
	})
	t.Run("7: deleting then re-adding a key (null-key toggling)", func(t *testing.T) {
		tw := written(t, `{"properties":{"desired":{"a":1}}}`, `{"properties":{"desired":{"a":null}}}`, `{"properties":{"desired":{"a":2}}}`)
		if got := desired(tw); got != `{"a":2}` {
			t.Errorf("desired = %s", got)
		}
	})
	t.Run("7: deleting a missing nested key keeps its siblings", func(t *testing.T) {
		tw := written(t, `{"properties":{"desired":{"a":{"x":1,"y":2}}}}`, `{"properties":{"desired":{"a":{"z":null}}}}`)
		if got := desired(tw); got != `{"a":{"x":1,"y":2}}` {
			t.Errorf("desired = %s", got)
		}
		if tw.Properties.Desired.Version != 2 {
			t.Errorf("no-op delete bumped desired $version to %d", tw.Properties.Desired.Version)
		}
	})
	t.Run("7: {tags: null} does not clear tags", func(t *testing.T) {
		tw := written(t, `{"tags":{"a":1}}`, `{"tags":null}`)
		if got := string(mustJSON(t, tw.Tags)); got != `{"a":1}` || tw.Version != 3 {
			t.Errorf("tags = %s, version %d", got, tw.Version)
		}
	})
	t.Run("8: same-value patch bumps and notifies", func(t *testing.T) {
		tw := written(t, `{"properties":{"desired":{"a":1}}}`)
		n, err := tw.PatchService([]byte(`{"properties":{"desired":{"a":1}}}`), at(9), Options{})
		if err != nil || n == nil || n.Version != 3 || tw.Properties.Desired.Version != 3 {
			t.Errorf("notification %+v, err %v, desired $version %d", n, err, tw.Properties.Desired.Version)
		}
	})
	t.Run("9: MQTT GET has no $metadata, wrapper or tags", func(t *testing.T) {
		tw := written(t, `{"tags":{"t":1},"properties":{"desired":{"a":1}}}`)
		var view map[string]map[string]any
		if err := json.Unmarshal(tw.DeviceView(), &view); err != nil {
			t.Fatal(err)
		}
		if len(view) != 2 || view["desired"]["$metadata"] != nil || view["reported"]["$version"] != 1.0 || view["desired"]["$version"] != 2.0 {
			t.Errorf("device view = %s", tw.DeviceView())
		}
	})
	t.Run("10: connectionState capitalised, timestamps with Z", func(t *testing.T) {
		tw := New("d1", "", t0)
		tw.ConnectionState = Connected
		out := string(mustJSON(t, tw))
		for _, want := range []string{`"connectionState":"Connected"`, `"statusUpdateTime":"0001-01-01T00:00:00Z"`, `"$lastUpdated":"2026-11-25T17:00:00.1234567Z"`} {
			if !strings.Contains(out, want) {
				t.Errorf("twin JSON lacks %s: %s", want, out)
			}
		}
	})
	t.Run("12: tags have no $metadata; tag writes leave desired alone", func(t *testing.T) {
		tw := written(t, `{"tags":{"a":{"b":1}}}`)
		out := string(mustJSON(t, tw.Tags))
		if strings.Contains(out, "$") || tw.Properties.Desired.Version != 1 || tw.Version != 3 || tw.ETag != ETagFromCounter(2) {
			t.Errorf("tags %s, desired $version %d, version %d, etag %s", out, tw.Properties.Desired.Version, tw.Version, tw.ETag)
		}
	})
}
