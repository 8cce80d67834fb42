package twin

import (
	"bytes"
	"encoding/json"
	"errors"
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
