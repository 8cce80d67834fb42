package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	storeFile       = "hub.db"
	identityBucket  = "identities"
	commitBatchSize = 512
	lockStripes     = 256
)

// errNotFound is returned by update functions to say "no such identity".
var errNotFound = errors.New("not found")

// store keeps identities (device or module registry entry plus its twin) in
// memory for reads and queries and, unless it runs in memory only, in a
// bbolt file. A write returns only after bbolt's fsync'd commit, so an
// acknowledged write survives a crash.
//
// Records are immutable once stored: an update builds a new record and
// swaps the pointer, so readers never lock for long and never see a half
// applied change.
type store struct {
	mu      sync.RWMutex
	records map[string]*identity

	stripes [lockStripes]sync.Mutex // serialise read-modify-write per key
	seed    maphash.Seed

	db      *bolt.DB // nil in memory-only mode
	commits chan *commitRequest
	done    chan struct{}

	// onChange, if set, is called after every committed change with the old
	// and new record (either may be nil). Used to keep indexes exact.
	onChange func(old, new *identity)
}

// commitRequest is one key's change waiting for the group committer.
type commitRequest struct {
	key   string
	value []byte // nil deletes
	done  chan error
}

// openStore opens (or creates) the store in dir; dir == "" keeps everything
// in memory.
func openStore(dir string) (*store, error) {
	s := &store{records: map[string]*identity{}, seed: maphash.MakeSeed()}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The freelist is rebuilt on open instead of written on every commit,
	// as etcd does: fewer pages per fsync'd commit.
	db, err := bolt.Open(filepath.Join(dir, storeFile), 0o600, &bolt.Options{
		Timeout:        5 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open hub store: %w", err)
	}
	if err := s.load(db); err != nil {
		db.Close()
		return nil, err
	}
	s.db = db
	s.commits = make(chan *commitRequest, commitBatchSize)
	s.done = make(chan struct{})
	go s.commitLoop()
	return s, nil
}

func (s *store) load(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(identityBucket))
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			rec := &identity{}
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("hub store: record %q: %w", k, err)
			}
			rec.afterLoad()
			s.records[string(k)] = rec
			return nil
		})
	})
}

// close stops the committer and closes the file.
func (s *store) close() error {
	if s.db == nil {
		return nil
	}
	close(s.commits)
	<-s.done
	return s.db.Close()
}

// get returns the record under key, or nil.
func (s *store) get(key string) *identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.records[key]
}

// all returns every record, ordered by key so that paging is stable.
func (s *store) all() []*identity {
	s.mu.RLock()
	out := make([]*identity, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// update runs fn on the current record under key (nil if absent) while no
// other update of that key runs, persists the record fn returns (nil
// deletes) and only then publishes it. If fn fails nothing changes.
func (s *store) update(key string, fn func(cur *identity) (*identity, error)) (*identity, error) {
	return s.updateThen(key, fn, nil)
}

// updateThen is update with a callback that runs after the change is
// committed and published but before the key's lock is released, so that
// effects of successive writes (desired notifications) keep their order.
func (s *store) updateThen(key string, fn func(cur *identity) (*identity, error), then func(next *identity)) (*identity, error) {
	lock := &s.stripes[maphash.String(s.seed, key)%lockStripes]
	lock.Lock()
	defer lock.Unlock()

	cur := s.get(key)
	next, err := fn(cur)
	if err != nil {
		return nil, err
	}
	if next == nil && cur == nil {
		return nil, nil
	}
	if err := s.persist(key, next); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if next == nil {
		delete(s.records, key)
	} else {
		s.records[key] = next
	}
	s.mu.Unlock()
	if s.onChange != nil {
		s.onChange(cur, next)
	}
	if then != nil && next != nil {
		then(next)
	}
	return next, nil
}

// persist writes rec (nil deletes) through the group committer.
func (s *store) persist(key string, rec *identity) error {
	if s.db == nil {
		return nil
	}
	req := &commitRequest{key: key, done: make(chan error, 1)}
	if rec != nil {
		data, err := rec.marshalRecord()
		if err != nil {
			return err
		}
		req.value = data
	}
	s.commits <- req
	return <-req.done
}

// commitLoop is a group committer: it takes every change queued while the
// previous fsync ran and commits them in one bbolt transaction. bbolt's own
// Batch waits a fixed delay before committing, which caps the throughput of
// a few sequential clients; this loop never waits when there is work.
func (s *store) commitLoop() {
	defer close(s.done)
	batch := make([]*commitRequest, 0, commitBatchSize)
	for req := range s.commits {
		batch = append(batch[:0], req)
	drain:
		for len(batch) < commitBatchSize {
			select {
			case r, ok := <-s.commits:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(identityBucket))
			for _, r := range batch {
				var err error
				if r.value == nil {
					err = b.Delete([]byte(r.key))
				} else {
					err = b.Put([]byte(r.key), r.value)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range batch {
			r.done <- err
		}
	}
}
