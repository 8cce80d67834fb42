package device

import "sync"

// sequencer applies the reconnect rule to desired notifications (see the
// package documentation): while a GET is outstanding it holds notifications
// back, afterwards it drops those not newer than the last delivered
// $version and asks for a re-read when one is skipped. It never blocks:
// deliver must return at once, because notify runs on the MQTT client's
// message goroutine.
type sequencer struct {
	mu      sync.Mutex
	last    int64 // desired $version of the last delivered state
	syncing bool  // a GET is outstanding; hold notifications back
	held    []DesiredPatch
	dropped int64 // notifications not newer than last

	deliver func(DesiredPatch)
}

func newSequencer(deliver func(DesiredPatch)) *sequencer {
	// A new client has not read the twin yet: start held back.
	return &sequencer{syncing: true, deliver: deliver}
}

// beginSync starts holding notifications back ahead of a GET.
func (s *sequencer) beginSync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncing = true
	s.held = s.held[:0]
}

// notify takes a notification. It reports true when it detected a gap and a
// GET is needed; the notification is then held until that GET completes.
func (s *sequencer) notify(p DesiredPatch) (needResync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncing {
		s.held = append(s.held, p)
		return false
	}
	return s.apply(p)
}

// endSync takes the desired section read by GET, delivers it as a full patch
// if it is newer than what was delivered, then releases the held
// notifications. It reports true if a held one revealed another gap.
func (s *sequencer) endSync(desired Properties) (needResync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if desired.Version > s.last {
		s.last = desired.Version
		s.deliver(DesiredPatch{Version: desired.Version, Properties: desired.Values, Full: true})
	}
	held := s.held
	s.held = nil
	s.syncing = false
	for i, p := range held {
		if s.apply(p) {
			// apply restarted holding with p; keep the rest behind it.
			s.held = append(s.held, held[i+1:]...)
			return true
		}
	}
	return false
}

// apply delivers or drops p; on a gap it switches to holding (with p held)
// and reports true. The caller holds s.mu.
func (s *sequencer) apply(p DesiredPatch) (gap bool) {
	switch {
	case p.Version <= s.last:
		s.dropped++
		return false
	case p.Version > s.last+1:
		s.syncing = true
		s.held = append(s.held[:0], p)
		return true
	default:
		s.last = p.Version
		s.deliver(p)
		return false
	}
}

// stats returns the last delivered $version and the count of dropped
// notifications.
func (s *sequencer) stats() (last, dropped int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.dropped
}

// patchQueue is an unbounded FIFO between the sequencer, which must not
// block, and the consumer's channel, which may be slow.
type patchQueue struct {
	mu     sync.Mutex
	items  []DesiredPatch
	signal chan struct{}
}

func newPatchQueue() *patchQueue { return &patchQueue{signal: make(chan struct{}, 1)} }

func (q *patchQueue) push(p DesiredPatch) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pump moves patches to out in order until stop is closed, then closes out.
func (q *patchQueue) pump(out chan<- DesiredPatch, stop <-chan struct{}) {
	defer close(out)
	for {
		select {
		case <-q.signal:
		case <-stop:
			return
		}
		q.mu.Lock()
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		for _, p := range batch {
			select {
			case out <- p:
			case <-stop:
				return
			}
		}
	}
}
