package twin

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// update rewrites the golden files from the current output.
var update = flag.Bool("update", false, "rewrite testdata/golden files")

// t0 is the creation time of test twins; later writes happen at t0 + n s.
var t0 = time.Date(2026, 11, 25, 17, 0, 0, 123456789, time.UTC)

// at returns t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// checkGolden compares got (JSON) with testdata/golden/name.json after
// indenting, or rewrites the file with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	var indented bytes.Buffer
	if err := json.Indent(&indented, got, "", "  "); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	indented.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(want, indented.Bytes()) {
		t.Errorf("%s differs from the golden file\n got: %s\nwant: %s", path, indented.Bytes(), want)
	}
}

// mustJSON marshals v or fails the test.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decode decodes JSON with json.Number numbers or fails the test.
func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	obj, err := decodeObject([]byte(s), "")
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return obj
}
