package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/query"
	"github.com/twinsync/twinsync/pkg/twin"
)

// TestIndexMatchesReference runs queries over the hub's index and over
// pkg/query's unindexed MemSource holding the same documents, through
// writes, rewrites and deletes; the answers must be identical.
func TestIndexMatchesReference(t *testing.T) {
	h := startBenchHub(t, true)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	plants := []any{"p1", "p2", 3, true, nil}
	write := func(id, mid string) {
		key := query.Key(id, mid)
		_, err := h.store.update(key, func(cur *identity) (*identity, error) {
			var next *identity
			if cur == nil {
				var err error
				if next, err = h.newIdentity(Device{DeviceID: id, ModuleID: mid}, now); err != nil {
					return nil, err
				}
			} else {
				next = cur.clone()
			}
			patch, _ := json.Marshal(map[string]any{"tags": map[string]any{
				"plant": plants[rng.IntN(len(plants))], "loc": map[string]any{"region": fmt.Sprint("r", rng.IntN(3))}}})
			if _, err := next.Twin.PatchService(patch, now, twin.Options{}); err != nil {
				return nil, err
			}
			if rng.IntN(3) == 0 {
				next.Device.Status = "disabled"
			}
			next.refresh()
			return next, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		id := fmt.Sprintf("d%02d", i)
		write(id, "")
		if i%4 == 0 {
			write(id, "m1")
			write(id, "m2")
		}
	}
	for range 30 { // rewrites move twins between postings
		write(fmt.Sprintf("d%02d", rng.IntN(60)), "")
	}
	for _, key := range []string{"d03", "d04/m1", "d10"} {
		if _, err := h.store.update(key, func(*identity) (*identity, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}

	ref := query.NewMemSource()
	for _, rec := range h.store.all() {
		if err := ref.Put(rec.Twin.QueryDocument()); err != nil {
			t.Fatal(err)
		}
	}
	queries := []string{
		"SELECT * FROM devices WHERE tags.plant = 'p1'",
		"SELECT * FROM devices WHERE tags.plant = 3",
		"SELECT * FROM devices WHERE tags.plant = true",
		"SELECT * FROM devices WHERE tags.plant = null",
		"SELECT * FROM devices WHERE tags.plant IN ['p2', 3]",
		"SELECT * FROM devices WHERE tags.loc.region = 'r1' AND status = 'enabled'",
		"SELECT * FROM devices WHERE deviceId = 'd05'",
		"SELECT * FROM devices WHERE deviceId = 'd03'",
		"SELECT * FROM devices.modules WHERE deviceId = 'd04'",
		"SELECT * FROM devices.modules WHERE moduleId = 'm2' AND tags.plant = 'p1'",
		"SELECT * FROM devices WHERE connectionState = 'Disconnected' AND tags.plant != 'p1'",
		"SELECT deviceId FROM devices WHERE tags.plant = 'p2'",
	}
	for _, text := range queries {
		t.Run(text, func(t *testing.T) {
			q, err := query.Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := query.Execute(context.Background(), q, h.index, query.Options{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := query.Execute(context.Background(), q, ref, query.Options{})
			if err != nil {
				t.Fatal(err)
			}
			g, _ := json.Marshal(got.Items)
			w, _ := json.Marshal(want.Items)
			if string(g) != string(w) {
				t.Fatalf("index answer differs:\n got %s\nwant %s", g, w)
			}
		})
	}
}
