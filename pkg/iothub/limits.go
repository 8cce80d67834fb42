package iothub

import (
	"fmt"
	"math"
	"strings"

	"golang.org/x/time/rate"
)

// Class is an IoT Hub throttling class (spec §7.2). Each has its own token
// bucket in a Client.
type Class int

// The operation classes the client limits.
const (
	// ClassTwinRead covers device and module twin GETs.
	ClassTwinRead Class = iota
	// ClassTwinUpdate covers twin PATCH and PUT.
	ClassTwinUpdate
	// ClassQuery covers POST /devices/query, one token per page.
	ClassQuery
	// ClassRegistry covers identity create, get, list and delete.
	ClassRegistry
	numClasses
)

// String returns the class name used in metrics.
func (c Class) String() string {
	switch c {
	case ClassTwinRead:
		return "twin_read"
	case ClassTwinUpdate:
		return "twin_update"
	case ClassQuery:
		return "query"
	case ClassRegistry:
		return "registry"
	}
	return "unknown"
}

// Limit is one class's token bucket: Rate operations per second on average
// and bursts of up to Burst operations.
type Limit struct {
	Rate  rate.Limit
	Burst int
}

// Limits holds the token bucket of every class.
type Limits struct {
	TwinRead   Limit
	TwinUpdate Limit
	Query      Limit
	Registry   Limit
}

// NoLimits lets every request through at once; for tests against the
// embedded hub.
var NoLimits = Limits{
	TwinRead:   Limit{Rate: rate.Inf},
	TwinUpdate: Limit{Rate: rate.Inf},
	Query:      Limit{Rate: rate.Inf},
	Registry:   Limit{Rate: rate.Inf},
}

// Tier is an IoT Hub pricing tier.
type Tier string

// The standard and free tiers, which have twins.
const (
	F1 Tier = "F1"
	S1 Tier = "S1"
	S2 Tier = "S2"
	S3 Tier = "S3"
)

// TierLimits returns the limits of spec §7.2 for a hub of the given tier and
// number of units (F1 has one unit).
//
// Per-second limits (twin reads and updates) allow a burst of one second's
// worth, so a burst of 200 twin reads on S1 (100/s) finishes after about one
// second. Per-minute limits (queries, registry) allow a burst of ten
// seconds' worth, at least one: IoT Hub queues short bursts (traffic
// shaping) but answers 429 when they grow.
func TierLimits(tier Tier, units int) (Limits, error) {
	if units < 1 {
		return Limits{}, fmt.Errorf("iothub: units must be at least 1, got %d", units)
	}
	u := float64(units)
	switch Tier(strings.ToUpper(string(tier))) {
	case F1:
		if units != 1 {
			return Limits{}, fmt.Errorf("iothub: tier F1 has exactly one unit, got %d", units)
		}
		fallthrough
	case S1:
		return Limits{
			TwinRead:   perSecond(100),
			TwinUpdate: perSecond(50),
			Query:      perMinute(20 * u),
			Registry:   perMinute(100 * u),
		}, nil
	case S2:
		return Limits{
			TwinRead:   perSecond(max(100, 10*u)),
			TwinUpdate: perSecond(max(50, 5*u)),
			Query:      perMinute(20 * u),
			Registry:   perMinute(100 * u),
		}, nil
	case S3:
		return Limits{
			TwinRead:   perSecond(500 * u),
			TwinUpdate: perSecond(250 * u),
			Query:      perMinute(1000 * u),
			Registry:   perMinute(5000 * u),
		}, nil
	}
	return Limits{}, fmt.Errorf("iothub: unknown tier %q (want F1, S1, S2 or S3; basic tiers have no twins)", tier)
}

// MustTierLimits is TierLimits for constant arguments; it panics on error.
func MustTierLimits(tier Tier, units int) Limits {
	l, err := TierLimits(tier, units)
	if err != nil {
		panic(err)
	}
	return l
}

func perSecond(n float64) Limit {
	return Limit{Rate: rate.Limit(n), Burst: int(math.Ceil(n))}
}

func perMinute(n float64) Limit {
	return Limit{Rate: rate.Limit(n / 60), Burst: max(1, int(n/6))}
}

// of returns the limit of a class.
func (l Limits) of(c Class) Limit {
	switch c {
	case ClassTwinRead:
		return l.TwinRead
	case ClassTwinUpdate:
		return l.TwinUpdate
	case ClassQuery:
		return l.Query
	default:
		return l.Registry
	}
}

// limiters is one token bucket per class.
type limiters [numClasses]*rate.Limiter

func newLimiters(l Limits) (*limiters, error) {
	var out limiters
	for c := Class(0); c < numClasses; c++ {
		lim := l.of(c)
		if lim.Rate != rate.Inf && (lim.Rate <= 0 || lim.Burst < 1) {
			return nil, fmt.Errorf("iothub: %s limit needs a positive rate and a burst of at least 1", c)
		}
		out[c] = rate.NewLimiter(lim.Rate, lim.Burst)
	}
	return &out, nil
}
