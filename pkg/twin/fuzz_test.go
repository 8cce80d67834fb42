package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fuzzTwin returns a twin with content in every section, for the write
// fuzzers to modify.
func fuzzTwin(t *testing.T) *Twin {
	tw := New("d1", "", t0)
	if _, err := tw.PatchService([]byte(`{"tags":{"loc":{"plant":"Redmond43"},"n":1},"properties":{"desired":{"a":{"b":[1,"x"],"c":true},"d":1.5}}}`), at(1), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.PatchReported([]byte(`{"r":{"s":"v"},"t":32}`), at(2), Options{}); err != nil {
		t.Fatal(err)
	}
	return tw
}

// fuzzAPIVersion maps a fuzzed flag to an api-version.
func fuzzAPIVersion(old bool) Options {
	if old {
		return Options{APIVersion: "2018-06-30"}
	}
	return Options{}
}

// checkWrite asserts the write-path invariants: a clone taken before the
// write still shows the old twin; a refused write changes nothing and
// returns an *Error; a successful one leaves every section
// within the limits with exact metadata, never lowers a version, and keeps
// the twin's JSON round-trippable.
func checkWrite(t *testing.T, before []byte, old, tw *Twin, err error) {
	if oldNow := mustJSON(t, old); !bytes.Equal(oldNow, before) {
		t.Fatalf("the write changed a clone taken before it (copy-on-write broken)")
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *Error", err)
		}
		if after := mustJSON(t, tw); !bytes.Equal(after, before) {
			t.Fatalf("refused write (%v) changed the twin", err)
		}
		return
	}
	assertConsistent(t, tw)
	if tw.Version < old.Version || tw.Properties.Desired.Version < old.Properties.Desired.Version || tw.Properties.Reported.Version < old.Properties.Reported.Version {
		t.Fatalf("a version went down: %d/%d/%d -> %d/%d/%d", old.Version, old.Properties.Desired.Version, old.Properties.Reported.Version,
			tw.Version, tw.Properties.Desired.Version, tw.Properties.Reported.Version)
	}
	oldCounter, _ := CounterFromETag(old.ETag)
	newCounter, _ := CounterFromETag(tw.ETag)
	if newCounter < oldCounter {
		t.Fatalf("etag counter went down: %d -> %d", oldCounter, newCounter)
	}
	out := mustJSON(t, tw)
	var again Twin
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatalf("twin JSON does not decode: %v\n%s", err, out)
	}
	if round := mustJSON(t, &again); !bytes.Equal(round, out) {
		t.Fatalf("twin JSON does not round-trip:\n%s\n%s", out, round)
	}
	if !json.Valid(tw.DeviceView()) {
		t.Fatalf("device view is not JSON: %s", tw.DeviceView())
	}
}

// checkNotification asserts that a notification is JSON carrying its
// $version, and that one is sent exactly when desired.$version moved.
func checkNotification(t *testing.T, old, tw *Twin, n *DesiredNotification) {
	moved := tw.Properties.Desired.Version != old.Properties.Desired.Version
	if (n != nil) != moved {
		t.Fatalf("notification %v but desired $version %d -> %d", n, old.Properties.Desired.Version, tw.Properties.Desired.Version)
	}
	if n == nil {
		return
	}
	body, err := decodeObject(n.Body, "")
	if err != nil {
		t.Fatalf("notification body is not a JSON object: %s", n.Body)
	}
	if body["$version"] != int64Number(n.Version) || n.Version != tw.Properties.Desired.Version {
		t.Fatalf("notification $version %v, Version %d, desired %d", body["$version"], n.Version, tw.Properties.Desired.Version)
	}
}

func FuzzPatchService(f *testing.F) {
	f.Add([]byte(`{"tags":{"loc":{"plant":null,"x":{"y":null}}},"properties":{"desired":{"a":{"b":null},"e":[{"k":1}]}}}`), false)
	f.Add([]byte(`{"properties":{"desired":{"a":[1,null]}}}`), false)
	f.Add([]byte(`{"properties":{"desired":{"a":[1]}}}`), true)
	f.Fuzz(func(t *testing.T, body []byte, oldAPI bool) {
		tw := fuzzTwin(t)
		old, before := tw.Clone(), mustJSON(t, tw)
		n, err := tw.PatchService(body, at(3), fuzzAPIVersion(oldAPI))
		checkWrite(t, before, old, tw, err)
		checkNotification(t, old, tw, n)
	})
}

func FuzzReplaceService(f *testing.F) {
	f.Add([]byte(`{"tags":{"z":1},"properties":{"desired":{"a":{"c":false},"n":{"$x":1}}}}`), false)
	f.Add([]byte(`{"properties":{"desired":{"a":{"b":null}}}}`), false)
	f.Fuzz(func(t *testing.T, body []byte, oldAPI bool) {
		tw := fuzzTwin(t)
		old, before := tw.Clone(), mustJSON(t, tw)
		n, err := tw.ReplaceService(body, at(3), fuzzAPIVersion(oldAPI))
		checkWrite(t, before, old, tw, err)
		checkNotification(t, old, tw, n)
	})
}

func FuzzPatchReported(f *testing.F) {
	f.Add([]byte(`{"r":{"s":null,"u":{"v":null}},"t":null,"w":[1,"x"]}`), false)
	f.Add([]byte(`{"$version":4}`), false)
	f.Fuzz(func(t *testing.T, body []byte, oldAPI bool) {
		tw := fuzzTwin(t)
		old, before := tw.Clone(), mustJSON(t, tw)
		version, err := tw.PatchReported(body, at(3), fuzzAPIVersion(oldAPI))
		checkWrite(t, before, old, tw, err)
		if version != tw.Properties.Reported.Version {
			t.Fatalf("returned $version %d, stored %d", version, tw.Properties.Reported.Version)
		}
		if tw.ETag != old.ETag {
			t.Fatalf("a reported patch changed the etag")
		}
	})
}

// FuzzDiff checks the operator diff on arbitrary documents: applying the
// patch converges (a second diff is empty), every spec leaf then holds,
// exclusive ownership makes the section equal to the spec, and shared
// ownership leaves every key unrelated to the spec and the managed set as
// it was.
func FuzzDiff(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1},"c":[1]}`), []byte(`{"a":{"b":2,"x":1},"y":{}}`), []byte(`{"a":{"z":1},"c":1}`), false)
	f.Add([]byte(`{"a":{}}`), []byte(`{"a":{"x":{"y":1}},"b":1}`), []byte(`{"b":1}`), true)
	f.Fuzz(func(t *testing.T, specJSON, currentJSON, previousJSON []byte, exclusive bool) {
		var docs [3]map[string]any
		for i, raw := range [][]byte{specJSON, currentJSON, previousJSON} {
			doc, err := decodeObject(raw, "")
			if err != nil || ValidateSection(SectionTags, doc, Options{}) != nil {
				return
			}
			docs[i] = doc
		}
		spec, current, previous := docs[0], docs[1], docs[2]
		ownership := OwnershipShared
		if exclusive {
			ownership = OwnershipExclusive
		}
		_, managed := Diff(nil, previous, map[string]any{}, OwnershipShared)

		tw := New("d1", "", t0)
		if _, err := tw.ReplaceService(mustJSON(t, map[string]any{"tags": current}), at(1), Options{}); err != nil {
			t.Fatalf("seed: %v", err)
		}
		patch, newManaged := Diff(managed, spec, tw.Tags, ownership)
		if _, err := tw.PatchService(mustJSON(t, map[string]any{"tags": patch}), at(2), Options{}); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code == CodeDeviceModelMaxPropertiesExceeded {
				return // the spec plus others' keys do not fit
			}
			t.Fatalf("patch %s refused: %v", mustJSON(t, patch), err)
		}
		if again, _ := Diff(newManaged, spec, tw.Tags, ownership); len(again) != 0 {
			t.Fatalf("no convergence: second diff %s", mustJSON(t, again))
		}
		leaves := map[string]any{}
		collectLeaves(spec, "", leaves)
		for path, want := range leaves {
			if have, ok := lookup(tw.Tags, path); !ok || !leafSatisfied(want, have) {
				t.Fatalf("spec leaf %s = %v not satisfied: %v", path, want, have)
			}
		}
		if exclusive {
			if !EqualValues(stripEmptyObjectContent(spec, tw.Tags), spec) {
				t.Fatalf("exclusive: tags %s, spec %s", mustJSON(t, tw.Tags), mustJSON(t, spec))
			}
			return
		}
		related := append(append(Managed{}, managed...), newManaged...)
		hubLeaves := map[string]any{}
		collectLeaves(current, "", hubLeaves)
		for path, was := range hubLeaves {
			if relatedPath(path, related) {
				continue
			}
			if now, ok := lookup(tw.Tags, path); !ok || !EqualValues(now, was) {
				t.Fatalf("shared: unrelated key %s changed from %v to %v (patch %s)", path, was, now, mustJSON(t, patch))
			}
		}
	})
}

// relatedPath reports whether path equals, contains or lies under one of
// paths.
func relatedPath(path string, paths Managed) bool {
	for _, p := range paths {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}

// stripEmptyObjectContent returns doc with the content of every object the
// spec declares empty cleared, for comparing an exclusive result (where an
// empty-object leaf only requires an object) with its spec.
func stripEmptyObjectContent(spec, doc map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		s, ok := spec[k].(map[string]any)
		d, isObject := v.(map[string]any)
		switch {
		case ok && isObject && len(s) == 0:
			out[k] = map[string]any{}
		case ok && isObject:
			out[k] = stripEmptyObjectContent(s, d)
		default:
			out[k] = v
		}
	}
	return out
}
