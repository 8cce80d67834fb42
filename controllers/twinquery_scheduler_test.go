package controllers

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/twinsync/twinsync/pkg/iothub"
)

// tqClock is a manual clock for the scheduler.
type tqClock struct{ t time.Time }

func (c *tqClock) now() time.Time          { return c.t }
func (c *tqClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func tqKey(i int) types.NamespacedName {
	return types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("q%d", i)}
}

// The achievable interval stretches with the demand on one hub, and only
// there.
func TestQuerySchedulerBudget(t *testing.T) {
	s1 := iothub.MustTierLimits(iothub.S1, 1) // 20 queries/min; half usable
	tests := []struct {
		name      string
		limits    iothub.Limits
		queries   int
		interval  time.Duration
		pages     int
		wantShort bool
		want      time.Duration
	}{
		{"one query fits", s1, 1, time.Minute, 1, false, time.Minute},
		{"ten per minute fit exactly", s1, 10, time.Minute, 1, false, time.Minute},
		{"twenty per minute take twice as long", s1, 20, time.Minute, 1, true, 2 * time.Minute},
		{"pages count", s1, 5, time.Minute, 4, true, 2 * time.Minute},
		{"100 queries every 60s on S1", s1, 100, time.Minute, 1, true, 10 * time.Minute},
		{"no limits never short", iothub.NoLimits, 100, 3 * time.Second, 10, false, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &tqClock{t: time.Unix(1e9, 0)}
			s := &QueryScheduler{Now: clock.now}
			for i := range tt.queries {
				s.Register(tqKey(i), "hub", tt.limits, tt.interval)
				s.Done(tqKey(i), clock.now(), tt.pages)
			}
			s.Register(tqKey(1000), "other-hub", tt.limits, tt.interval)
			got := s.State(tqKey(0))
			if got.Short != tt.wantShort || got.Interval != tt.want || got.Queries != tt.queries {
				t.Errorf("state %+v, want short=%v interval=%v queries=%d", got, tt.wantShort, tt.want, tt.queries)
			}
			if other := s.State(tqKey(1000)); other.Short || other.Queries != 1 {
				t.Errorf("the other hub's state %+v is affected", other)
			}
			if tt.wantShort && !strings.Contains(got.Message(tt.interval), "instead of "+tt.interval.String()) {
				t.Errorf("message %q", got.Message(tt.interval))
			}
		})
	}
}

// Refreshes due together are paced at the usable rate; periodic ones wait
// for their interval; forced ones run at once when the bucket allows.
func TestQuerySchedulerDecide(t *testing.T) {
	clock := &tqClock{t: time.Unix(1e9, 0)}
	s := &QueryScheduler{Now: clock.now}
	limits := iothub.MustTierLimits(iothub.S1, 1) // usable 10/min, burst 1
	for i := range 3 {
		s.Register(tqKey(i), "hub", limits, time.Hour)
	}
	var waits []time.Duration
	for i := range 3 {
		d := s.Decide(tqKey(i), true)
		if d.Run {
			s.Done(tqKey(i), clock.now(), 1)
			waits = append(waits, 0)
			continue
		}
		if !d.Budget {
			t.Fatalf("query %d waits %v not for the budget", i, d.Wait)
		}
		waits = append(waits, d.Wait)
	}
	if waits[0] != 0 || waits[1] < 5*time.Second || waits[2] < waits[1]+5*time.Second {
		t.Fatalf("waits %v: want the first at once and the others 6s apart", waits)
	}
	// At its slot a paced query runs without a new reservation.
	clock.advance(waits[1])
	if d := s.Decide(tqKey(1), true); !d.Run {
		t.Fatalf("query 1 at its slot: %+v", d)
	}
	s.Done(tqKey(1), clock.now(), 1)
	// A periodic refresh waits for its interval (with jitter at most 10%).
	d := s.Decide(tqKey(1), false)
	if d.Run || d.Budget || d.Wait < time.Hour-time.Second || d.Wait > 66*time.Minute {
		t.Fatalf("periodic decision %+v, want a wait of about an hour", d)
	}
	// A forgotten query runs at once when it comes back unknown.
	s.Forget(tqKey(1))
	if d := s.Decide(tqKey(1), false); !d.Run {
		t.Fatalf("unknown query: %+v", d)
	}
}

// Pages a refresh read beyond its reservation are charged to the pacer, so
// the next refresh on the hub waits for them.
func TestQuerySchedulerChargesExtraPages(t *testing.T) {
	clock := &tqClock{t: time.Unix(1e9, 0)}
	s := &QueryScheduler{Now: clock.now}
	limits := iothub.MustTierLimits(iothub.S1, 1) // usable 10/min: one token per 6s
	s.Register(tqKey(0), "hub", limits, time.Hour)
	s.Register(tqKey(1), "hub", limits, time.Hour)
	if d := s.Decide(tqKey(0), true); !d.Run {
		t.Fatalf("first refresh: %+v", d)
	}
	s.Done(tqKey(0), clock.now(), 4) // reserved 1, read 4
	d := s.Decide(tqKey(1), true)
	if d.Run || !d.Budget || d.Wait < 23*time.Second || d.Wait > 25*time.Second {
		t.Fatalf("after 3 extra pages the next refresh should wait about 24s: %+v", d)
	}
	// Demand counts the pages: 4 + 1 per hour.
	if got := s.State(tqKey(0)); math.Abs(got.Demand-5.0/60) > 1e-9 {
		t.Errorf("demand %v queries/min, want 5/60", got.Demand)
	}
}

// The result builder keeps a prefix within maxResults and the byte budget
// and counts every row.
func TestTwinQueryResultBuilder(t *testing.T) {
	twins := func(ids ...string) *iothub.QueryPage {
		p := &iothub.QueryPage{ItemType: iothub.ItemTypeTwin}
		for _, id := range ids {
			dev, mod, _ := strings.Cut(id, "/")
			raw, _ := json.Marshal(map[string]any{"deviceId": dev, "moduleId": mod, "etag": "x"})
			p.Items = append(p.Items, raw)
		}
		return p
	}
	rows := &iothub.QueryPage{ItemType: iothub.ItemTypeRaw, Items: []json.RawMessage{
		json.RawMessage(`{ "n" : 1 }`), json.RawMessage(`{"n":2}`),
	}}
	tests := []struct {
		name      string
		max       int64
		budget    int
		page      *iothub.QueryPage
		wantIDs   []string
		wantRows  []string
		wantCount int64
		truncated bool
	}{
		{"all kept", 10, 1000, twins("a", "b"), []string{"a", "b"}, nil, 2, false},
		{"modules", 10, 1000, twins("a/m1", "b"), []string{"a/m1", "b"}, nil, 2, false},
		{"maxResults", 1, 1000, twins("a", "b", "c"), []string{"a"}, nil, 3, true},
		{"byte budget", 10, 8, twins("aa", "bb", "c"), []string{"aa"}, nil, 3, true},
		{"rows compacted", 10, 1000, rows, nil, []string{`{"n":1}`, `{"n":2}`}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &tqResultBuilder{maxResults: tt.max, budget: tt.budget}
			if err := b.add(tt.page, true); err != nil {
				t.Fatal(err)
			}
			var gotRows []string
			for _, r := range b.res.Rows {
				gotRows = append(gotRows, string(r.Raw))
			}
			if fmt.Sprint(b.res.DeviceIDs) != fmt.Sprint(tt.wantIDs) || fmt.Sprint(gotRows) != fmt.Sprint(tt.wantRows) ||
				b.res.Count != tt.wantCount || b.res.Truncated != tt.truncated {
				t.Errorf("got ids %v rows %v count %d truncated %v", b.res.DeviceIDs, gotRows, b.res.Count, b.res.Truncated)
			}
		})
	}
}
