package hub

import (
	"fmt"
	"math"
	"strings"

	"golang.org/x/time/rate"
)

// opClass is an IoT Hub throttling class (spec §7.2).
type opClass int

// The operation classes the hub throttles.
const (
	classRegistry opClass = iota
	classConnect
	classD2C
	classQuery
	classTwinRead
	classTwinUpdate
	numClasses
)

// Throttling describes simulated IoT Hub throttling: a tier (F1, S1, S2, S3,
// B1, B2, B3) and a unit count. The zero value means no throttling.
type Throttling struct {
	Tier  string
	Units int
}

// limit is one class's rate and burst: one second's worth of operations
// for per-second limits, one minute's worth for per-minute limits.
type limit struct {
	perSecond float64
	burst     int
}

// tierLimits returns the limits of spec §7.2 for a tier and unit count.
func tierLimits(tier string, units int) ([numClasses]limit, error) {
	var l [numClasses]limit
	if units < 1 {
		return l, fmt.Errorf("throttling: units must be at least 1, got %d", units)
	}
	u := float64(units)
	perMin := func(n float64) limit { return limit{n / 60, int(n)} }
	perSec := func(n float64) limit { return limit{n, int(n)} }
	switch strings.ToUpper(tier) {
	case "F1", "S1", "B1":
		l[classRegistry] = perMin(100 * u)
		l[classConnect] = perSec(max(100, 12*u))
		l[classD2C] = perSec(max(100, 12*u))
		l[classQuery] = perMin(20 * u)
		l[classTwinRead] = perSec(100)
		l[classTwinUpdate] = perSec(50)
	case "S2", "B2":
		l[classRegistry] = perMin(100 * u)
		l[classConnect] = perSec(120 * u)
		l[classD2C] = perSec(120 * u)
		l[classQuery] = perMin(20 * u)
		l[classTwinRead] = perSec(max(100, 10*u))
		l[classTwinUpdate] = perSec(max(50, 5*u))
	case "S3", "B3":
		l[classRegistry] = perMin(5000 * u)
		l[classConnect] = perSec(6000 * u)
		l[classD2C] = perSec(6000 * u)
		l[classQuery] = perMin(1000 * u)
		l[classTwinRead] = perSec(500 * u)
		l[classTwinUpdate] = perSec(250 * u)
	default:
		return l, fmt.Errorf("throttling: unknown tier %q (want F1, S1, S2, S3, B1, B2 or B3)", tier)
	}
	return l, nil
}

// throttler answers whether an operation may run now. A nil throttler
// allows everything.
//
// IoT Hub shapes traffic: it accepts a burst, then slows to the limit and
// answers 429 ThrottlingException once its queue is full. The hub models
// that with a token bucket per class whose burst is one second's worth of
// operations (one minute's for per-minute limits), and answers 429 as soon
// as the bucket is empty instead of queueing, so clients see throttling
// quickly and deterministically.
type throttler struct {
	limiters [numClasses]*rate.Limiter
}

func newThrottler(cfg Throttling) (*throttler, error) {
	if cfg.Tier == "" {
		return nil, nil
	}
	limits, err := tierLimits(cfg.Tier, cfg.Units)
	if err != nil {
		return nil, err
	}
	t := &throttler{}
	for c, l := range limits {
		t.limiters[c] = rate.NewLimiter(rate.Limit(l.perSecond), max(l.burst, 1))
	}
	return t, nil
}

// allow reports whether one operation of class c may run now.
func (t *throttler) allow(c opClass) bool {
	return t == nil || t.limiters[c].Allow()
}

// retryAfter returns how long until class c has a token again, rounded up
// to whole seconds (the unit of Retry-After) and at least one.
func (t *throttler) retryAfter(c opClass) int {
	if t == nil {
		return 1
	}
	r := t.limiters[c].Reserve()
	delay := r.Delay()
	r.Cancel()
	return max(1, int(math.Ceil(delay.Seconds())))
}
