package controllers

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/twinsync/twinsync/pkg/iothub"
)

// DefaultReservedQueryShare is the share of each hub's query rate that the
// TwinQuery scheduler leaves to other users of the hub's query budget: the
// DeviceTwin watcher (whose default share is also one half) and anything
// else sharing the client.
const DefaultReservedQueryShare = 0.5

// tqRefreshJitter spreads refreshes of queries with the same interval, so that
// objects created together do not query the hub in lock step.
const tqRefreshJitter = 0.1

// tqSlotTolerance is how early a reconcile may start a refresh whose slot was
// reserved for a later time: requeues fire a little early or late.
const tqSlotTolerance = 100 * time.Millisecond

// QueryScheduler spreads TwinQuery refreshes over each hub's query budget.
//
// Every hub gets a usable query rate: the tier's query rate (from the shared
// client's limits) minus the reserved share. Each TwinQuery asks for
// cost/refreshInterval queries per second, where cost is the number of pages
// its last refresh took. When the sum of the asks exceeds the usable rate,
// every interval is stretched by the same factor (demand/rate), so each
// query keeps its share of the budget and none starves. On top of that a
// token bucket at the usable rate paces refreshes that are due at the same
// moment (a manager start, many spec changes): instead of blocking a worker
// in the client's limiter, a refresh that would have to wait gets a slot in
// the future and is requeued for it.
//
// The shared iothub.Client limiter stays the hard limit; the scheduler keeps
// TwinQueries well inside it so that the hub never has to answer 429.
// It is safe for concurrent use.
type QueryScheduler struct {
	// ReservedShare of every hub's query rate is left to other users;
	// zero and values outside (0, 1) mean DefaultReservedQueryShare.
	ReservedShare float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	hubs    map[string]*tqHubSchedule
	members map[types.NamespacedName]string // query -> hub key
}

// tqHubSchedule is the budget of one hub.
type tqHubSchedule struct {
	rate    float64 // usable queries per second, +Inf without limits
	pacer   *rate.Limiter
	members map[types.NamespacedName]*tqScheduled
}

// tqScheduled is what the scheduler knows of one TwinQuery.
type tqScheduled struct {
	interval time.Duration // spec.refreshInterval
	cost     int           // pages of the last refresh, at least 1
	last     time.Time     // start of the last refresh; zero before the first
	due      time.Time     // when the next periodic refresh is due
	slot     time.Time     // reserved start of a paced refresh; zero if none
	reserved int           // pacer tokens taken for the refresh under way
}

// QueryDecision is the scheduler's answer for one reconcile.
type QueryDecision struct {
	// Run is true when the refresh may start now.
	Run bool
	// Wait is how long to wait before asking again when Run is false.
	Wait time.Duration
	// Budget is true when the wait comes from the hub's budget rather than
	// from the query's own interval.
	Budget bool
}

// QueryBudgetState describes one query's share of its hub's budget.
type QueryBudgetState struct {
	// Short is true when refreshes are spread beyond spec.refreshInterval.
	Short bool
	// Interval is the achievable interval between refreshes.
	Interval time.Duration
	// Queries is the number of TwinQueries sharing the hub.
	Queries int
	// Demand and Usable are queries per minute asked for and available.
	Demand, Usable float64
}

// Message renders the state for a Throttled condition.
func (s QueryBudgetState) Message(requested time.Duration) string {
	return fmt.Sprintf("%d TwinQueries ask for %.1f queries/min of this hub, which allows them %.1f/min: refreshing every %s instead of %s",
		s.Queries, s.Demand, s.Usable, s.Interval, requested)
}

func (s *QueryScheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *QueryScheduler) share() float64 {
	if s.ReservedShare <= 0 || s.ReservedShare >= 1 {
		return DefaultReservedQueryShare
	}
	return s.ReservedShare
}

// Register records that query key runs against hub with the given interval
// and the hub's client limits, moving it from another hub if needed.
func (s *QueryScheduler) Register(key types.NamespacedName, hub string, limits iothub.Limits, interval time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hubs == nil {
		s.hubs = map[string]*tqHubSchedule{}
		s.members = map[types.NamespacedName]string{}
	}
	if old, ok := s.members[key]; ok && old != hub {
		s.forgetLocked(key)
	}
	h := s.hubs[hub]
	if h == nil {
		h = s.newHub(limits)
		s.hubs[hub] = h
	}
	s.members[key] = hub
	q := h.members[key]
	if q == nil {
		q = &tqScheduled{cost: 1}
		h.members[key] = q
	}
	q.interval = interval
}

// newHub sizes a hub's budget from its client's query limit.
func (s *QueryScheduler) newHub(limits iothub.Limits) *tqHubSchedule {
	h := &tqHubSchedule{members: map[types.NamespacedName]*tqScheduled{}, rate: math.Inf(1)}
	if limits.Query.Rate == rate.Inf {
		h.pacer = rate.NewLimiter(rate.Inf, 0)
		return h
	}
	h.rate = float64(limits.Query.Rate) * (1 - s.share())
	burst := max(1, int(float64(limits.Query.Burst)*(1-s.share())))
	h.pacer = rate.NewLimiter(rate.Limit(h.rate), burst)
	return h
}

// Forget drops a query, e.g. after its object was deleted or paused.
func (s *QueryScheduler) Forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(key)
}

func (s *QueryScheduler) forgetLocked(key types.NamespacedName) {
	hub, ok := s.members[key]
	if !ok {
		return
	}
	delete(s.members, key)
	if h := s.hubs[hub]; h != nil {
		delete(h.members, key)
		if len(h.members) == 0 {
			delete(s.hubs, hub)
		}
	}
}

// Decide says whether the registered query key may refresh now. force
// asks for a refresh before the interval is over (a spec change, a
// requested reconcile, a failed previous attempt); it is still paced.
func (s *QueryScheduler) Decide(key types.NamespacedName, force bool) QueryDecision {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, q := s.lookup(key)
	if q == nil {
		return QueryDecision{Run: true}
	}
	now := s.now()
	if !q.slot.IsZero() {
		if wait := q.slot.Sub(now); wait > tqSlotTolerance {
			return QueryDecision{Wait: wait, Budget: true}
		}
		q.slot = time.Time{}
		return QueryDecision{Run: true}
	}
	if !force && !q.last.IsZero() && now.Before(q.due) {
		wait := q.due.Sub(now)
		// Past the query's own interval but not yet its budgeted one.
		budget := !now.Before(q.last.Add(q.interval))
		return QueryDecision{Wait: wait, Budget: budget}
	}
	n := min(q.cost, max(1, h.pacer.Burst()))
	res := h.pacer.ReserveN(now, n)
	if !res.OK() { // unreachable with the cost capped at the burst; run anyway
		return QueryDecision{Run: true}
	}
	q.reserved = n
	if wait := res.DelayFrom(now); wait > tqSlotTolerance {
		q.slot = now.Add(wait)
		return QueryDecision{Wait: wait, Budget: true}
	}
	return QueryDecision{Run: true}
}

// Done records a refresh of key that started at start and took pages
// query pages (0 when it failed before the hub answered), and returns the
// wait until the next periodic refresh, with jitter.
func (s *QueryScheduler) Done(key types.NamespacedName, start time.Time, pages int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, q := s.lookup(key)
	if q == nil {
		return 0
	}
	q.last = start
	if pages > 0 {
		q.cost = pages
	}
	h.charge(s.now(), pages-q.reserved)
	q.reserved = 0
	interval := wait.Jitter(h.interval(q), tqRefreshJitter)
	q.due = start.Add(interval)
	return max(0, q.due.Sub(s.now()))
}

// State returns the budget state of key's hub as seen by key.
func (s *QueryScheduler) State(key types.NamespacedName) QueryBudgetState {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, q := s.lookup(key)
	if q == nil {
		return QueryBudgetState{}
	}
	demand := h.demand()
	return QueryBudgetState{
		Short:    h.factor() > 1,
		Interval: h.interval(q).Round(time.Second),
		Queries:  len(h.members),
		Demand:   demand * 60,
		Usable:   h.rate * 60,
	}
}

func (s *QueryScheduler) lookup(key types.NamespacedName) (*tqHubSchedule, *tqScheduled) {
	h := s.hubs[s.members[key]]
	if h == nil {
		return nil, nil
	}
	return h, h.members[key]
}

// charge takes n more tokens from the pacer for pages a refresh read
// beyond its reservation; the debt delays the next reservations.
func (h *tqHubSchedule) charge(now time.Time, n int) {
	for burst := max(1, h.pacer.Burst()); n > 0; n -= burst {
		h.pacer.ReserveN(now, min(n, burst))
	}
}

// demand is the queries per second all members ask for.
func (h *tqHubSchedule) demand() float64 {
	var d float64
	for _, q := range h.members {
		d += float64(q.cost) / q.interval.Seconds()
	}
	return d
}

// factor is how much every interval is stretched to fit the budget, at
// least 1.
func (h *tqHubSchedule) factor() float64 {
	if math.IsInf(h.rate, 1) {
		return 1
	}
	return max(1, h.demand()/h.rate)
}

// interval is q's achievable interval.
func (h *tqHubSchedule) interval(q *tqScheduled) time.Duration {
	return time.Duration(float64(q.interval) * h.factor())
}
