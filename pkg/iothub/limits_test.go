package iothub

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

func TestTierLimits(t *testing.T) {
	perMin := func(n float64) rate.Limit { return rate.Limit(n / 60) }
	tests := []struct {
		tier  Tier
		units int
		want  Limits
	}{
		{F1, 1, Limits{Limit{100, 100}, Limit{50, 50}, Limit{perMin(20), 3}, Limit{perMin(100), 16}}},
		{S1, 1, Limits{Limit{100, 100}, Limit{50, 50}, Limit{perMin(20), 3}, Limit{perMin(100), 16}}},
		{"s1", 4, Limits{Limit{100, 100}, Limit{50, 50}, Limit{perMin(80), 13}, Limit{perMin(400), 66}}},
		{S2, 1, Limits{Limit{100, 100}, Limit{50, 50}, Limit{perMin(20), 3}, Limit{perMin(100), 16}}},
		{S2, 20, Limits{Limit{200, 200}, Limit{100, 100}, Limit{perMin(400), 66}, Limit{perMin(2000), 333}}},
		{S3, 1, Limits{Limit{500, 500}, Limit{250, 250}, Limit{perMin(1000), 166}, Limit{perMin(5000), 833}}},
		{S3, 2, Limits{Limit{1000, 1000}, Limit{500, 500}, Limit{perMin(2000), 333}, Limit{perMin(10000), 1666}}},
	}
	for _, tc := range tests {
		got, err := TierLimits(tc.tier, tc.units)
		if err != nil {
			t.Errorf("%s×%d: %v", tc.tier, tc.units, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s×%d = %+v\nwant %+v", tc.tier, tc.units, got, tc.want)
		}
	}
	bad := []struct {
		tier  Tier
		units int
	}{{"B1", 1}, {"S4", 1}, {S1, 0}, {F1, 2}}
	for _, tc := range bad {
		if _, err := TierLimits(tc.tier, tc.units); err == nil {
			t.Errorf("%s×%d accepted", tc.tier, tc.units)
		}
	}
}

// TestS1BurstOfTwinReads replays a burst of 200 twin reads on the client's
// own limiter in virtual time: the first 100 (the burst) go at once, the
// rest at 100/s, so the last starts one second after the burst.
func TestS1BurstOfTwinReads(t *testing.T) {
	c, err := New("hub.example", nil) // the default limits are S1 × 1
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		class Class
		n     int
		last  time.Duration
	}{
		{ClassTwinRead, 200, time.Second},
		{ClassTwinRead, 100, 0},
		{ClassTwinUpdate, 100, time.Second},
		{ClassQuery, 23, time.Minute},     // 3 at once, then 20/min
		{ClassRegistry, 116, time.Minute}, // 16 at once, then 100/min
	}
	for _, tc := range tests {
		lim := rate.NewLimiter(c.limiters[tc.class].Limit(), c.limiters[tc.class].Burst())
		start := time.Unix(0, 0)
		lim.SetLimitAt(start, lim.Limit()) // start the virtual clock with a full bucket
		var last time.Duration
		for range tc.n {
			r := lim.ReserveN(start, 1)
			if !r.OK() {
				t.Fatalf("%s: reservation refused", tc.class)
			}
			last = r.DelayFrom(start)
		}
		if d := last - tc.last; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s: request %d starts after %v, want %v", tc.class, tc.n, last, tc.last)
		}
	}
}

func TestCustomLimitsValidated(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"no limits", NoLimits, true},
		{"custom", Limits{Limit{10, 1}, Limit{5, 1}, Limit{0.1, 1}, Limit{1, 2}}, true},
		{"zero rate", Limits{Limit{0, 1}, Limit{5, 1}, Limit{0.1, 1}, Limit{1, 2}}, false},
		{"zero burst", Limits{Limit{10, 0}, Limit{5, 1}, Limit{0.1, 1}, Limit{1, 2}}, false},
	}
	for _, tc := range tests {
		c, err := New("hub.example", nil, WithLimits(tc.l))
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err == nil && c.Limits() != tc.l {
			t.Errorf("%s: Limits() = %+v", tc.name, c.Limits())
		}
	}
}

func TestLimiterGatesRequests(t *testing.T) {
	s := newScriptServer(t, answer{body: twinJSON})
	slow := Limit{Rate: rate.Every(time.Hour), Burst: 1}
	c := newScriptClient(t, s, nil, WithLimits(Limits{TwinRead: slow, TwinUpdate: slow, Query: slow, Registry: slow}), WithHubLabel("gate-test"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.GetTwin(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	// The bucket is empty for an hour: the call fails at once, before sending.
	if _, err := c.GetTwin(ctx, "d1"); err == nil || !strings.Contains(err.Error(), "twin_read rate limiter") {
		t.Errorf("second read: %v, want a limiter error", err)
	}
	if n := len(s.seen()); n != 1 {
		t.Errorf("%d requests reached the server, want 1", n)
	}
	// Other classes have their own buckets.
	if _, err := c.GetDevice(ctx, "d1"); err != nil {
		t.Errorf("registry call blocked by the twin read bucket: %v", err)
	}
	if n := testutil.CollectAndCount(limiterWait); n == 0 {
		t.Error("limiter wait not recorded")
	}
}
