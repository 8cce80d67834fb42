package query

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DefaultIndexedPaths are the paths a MemSource built by pkg/hub would
// typically index: the system properties people filter on and every tag.
var DefaultIndexedPaths = []string{"deviceId", "moduleId", "status", "connectionState", "tags"}

// MemSource is the in-memory reference Source and IndexedSource. It keeps
// device twins and module twins in two collections, each with its keys in
// sorted order and exact equality indexes on every primitive leaf under the
// configured paths. Indexes are updated on every Put and Delete.
//
// Documents handed to Put belong to the MemSource from then on and must not
// be modified by the caller: replace a twin by putting a new map.
// MemSource is safe for concurrent use.
type MemSource struct {
	mu      sync.RWMutex
	indexed [][]string
	colls   [Jobs + 1]*memCollection
}

type memCollection struct {
	docs map[string]map[string]any
	// sorted caches the keys of docs in order; nil when stale. It is
	// rebuilt on demand so that bulk loads stay O(n log n).
	sorted []string
	// index maps indexKey(path, value) to the set of keys holding that
	// value; entries remembers each document's index keys for removal.
	index   map[string]*posting
	entries map[string][]string
}

// posting is the set of keys for one (path, value) pair.
type posting struct {
	keys   map[string]struct{}
	sorted []string // nil when stale
}

// NewMemSource returns an empty MemSource that indexes every primitive
// leaf at or below each of the given dotted paths (e.g. "tags",
// "properties.reported.connectivity"). With no paths it keeps no indexes
// and every query scans.
func NewMemSource(indexedPaths ...string) *MemSource {
	s := &MemSource{}
	for _, p := range indexedPaths {
		s.indexed = append(s.indexed, strings.Split(p, "."))
	}
	for _, c := range []Collection{Devices, Modules, Jobs} {
		s.colls[c] = &memCollection{
			docs:    map[string]map[string]any{},
			index:   map[string]*posting{},
			entries: map[string][]string{},
		}
	}
	return s
}

// errNoDeviceID is returned by Put for a document without a deviceId.
var errNoDeviceID = errors.New("query: document has no string deviceId")

// Put inserts or replaces a twin. A document with a non-empty moduleId is
// a module twin.
func (s *MemSource) Put(doc map[string]any) error {
	dev, ok := doc["deviceId"].(string)
	if !ok || dev == "" {
		return errNoDeviceID
	}
	mod, _ := doc["moduleId"].(string)
	c := collectionOf(mod)
	key := Key(dev, mod)
	s.mu.Lock()
	defer s.mu.Unlock()
	mc := s.colls[c]
	if _, exists := mc.docs[key]; !exists {
		mc.sorted = nil
	}
	mc.unindex(key)
	mc.docs[key] = doc
	mc.indexDoc(key, doc, s.indexed)
	return nil
}

// Delete removes a twin; deleting an absent twin is a no-op.
func (s *MemSource) Delete(deviceID, moduleID string) {
	key := Key(deviceID, moduleID)
	s.mu.Lock()
	defer s.mu.Unlock()
	mc := s.colls[collectionOf(moduleID)]
	if _, ok := mc.docs[key]; !ok {
		return
	}
	mc.unindex(key)
	delete(mc.docs, key)
	mc.sorted = nil
}

// Len returns the number of documents in collection c.
func (s *MemSource) Len(c Collection) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c < Devices || c > Jobs {
		return 0
	}
	return len(s.colls[c].docs)
}

func collectionOf(moduleID string) Collection {
	if moduleID != "" {
		return Modules
	}
	return Devices
}

// Scan implements Source. It holds a read lock while yield runs, so yield
// must not write to s.
func (s *MemSource) Scan(ctx context.Context, c Collection, after string, yield func(string, map[string]any) bool) error {
	if c < Devices || c > Jobs {
		return nil
	}
	s.ensureSorted(c)
	s.mu.RLock()
	defer s.mu.RUnlock()
	mc := s.colls[c]
	keys := mc.sorted
	if keys == nil { // a writer got in between; sort a private copy
		keys = sortedKeys(mc.docs)
	}
	start := 0
	if after != "" {
		start, _ = slices.BinarySearch(keys, after)
		if start < len(keys) && keys[start] == after {
			start++
		}
	}
	for i, k := range keys[start:] {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if !yield(k, mc.docs[k]) {
			return nil
		}
	}
	return nil
}

// ensureSorted rebuilds the sorted key cache of c if a write made it stale.
func (s *MemSource) ensureSorted(c Collection) {
	s.mu.RLock()
	fresh := s.colls[c].sorted != nil || len(s.colls[c].docs) == 0
	s.mu.RUnlock()
	if fresh {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if mc := s.colls[c]; mc.sorted == nil {
		mc.sorted = sortedKeys(mc.docs)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Get implements IndexedSource.
func (s *MemSource) Get(c Collection, key string) (map[string]any, bool) {
	if c < Devices || c > Jobs {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	doc, ok := s.colls[c].docs[key]
	return doc, ok
}

// Lookup implements IndexedSource. The returned slice is shared and must
// not be modified.
func (s *MemSource) Lookup(c Collection, path []string, v any) ([]string, bool) {
	if c < Devices || c > Jobs || !s.covers(path) {
		return nil, false
	}
	vk, ok := valueKey(normalize(v))
	if !ok {
		return nil, false
	}
	ik := indexKey(path, vk)
	s.mu.RLock()
	p := s.colls[c].index[ik]
	var keys []string
	if p != nil {
		keys = p.sorted
	}
	s.mu.RUnlock()
	if p == nil || keys != nil {
		return keys, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p = s.colls[c].index[ik]; p == nil {
		return nil, true
	}
	if p.sorted == nil {
		p.sorted = sortedKeys(p.keys)
	}
	return p.sorted, true
}

// covers reports whether path lies at or below an indexed path.
func (s *MemSource) covers(path []string) bool {
	for _, prefix := range s.indexed {
		if len(path) >= len(prefix) && slices.Equal(path[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

func (mc *memCollection) unindex(key string) {
	for _, ik := range mc.entries[key] {
		p := mc.index[ik]
		delete(p.keys, key)
		p.sorted = nil
		if len(p.keys) == 0 {
			delete(mc.index, ik)
		}
	}
	delete(mc.entries, key)
}

func (mc *memCollection) indexDoc(key string, doc map[string]any, indexed [][]string) {
	var iks []string
	for _, prefix := range indexed {
		leaves(lookupRaw(doc, prefix), prefix, func(path []string, v any) {
			if vk, ok := valueKey(v); ok {
				iks = append(iks, indexKey(path, vk))
			}
		})
	}
	slices.Sort(iks)
	iks = slices.Compact(iks) // overlapping prefixes yield duplicates
	for _, ik := range iks {
		p := mc.index[ik]
		if p == nil {
			p = &posting{keys: map[string]struct{}{}}
			mc.index[ik] = p
		}
		p.keys[key] = struct{}{}
		p.sorted = nil
	}
	if len(iks) > 0 {
		mc.entries[key] = iks
	}
}

// lookupRaw is lookup without normalisation, for walking subtrees.
func lookupRaw(doc map[string]any, path []string) any {
	var cur any = doc
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return Undefined
		}
		if cur, ok = m[seg]; !ok {
			return Undefined
		}
	}
	return cur
}

// leaves calls fn for every primitive value at or below v. Arrays are not
// indexed: equality with an array is never true.
func leaves(v any, path []string, fn func([]string, any)) {
	if m, ok := v.(map[string]any); ok {
		for k, child := range m {
			leaves(child, append(path[:len(path):len(path)], k), fn)
		}
		return
	}
	if v = normalize(v); isPrimitive(kindOf(v)) {
		fn(path, v)
	}
}

// valueKey encodes a primitive with its type, so 1 and '1' differ.
func valueKey(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "z", true
	case bool:
		return "b" + strconv.FormatBool(v), true
	case float64:
		if v == 0 {
			v = 0 // -0 and 0 are equal
		}
		return "n" + strconv.FormatFloat(v, 'g', -1, 64), true
	case string:
		return "s" + v, true
	}
	return "", false
}

func indexKey(path []string, vk string) string {
	return strings.Join(path, "\x00") + "\x01" + vk
}
