package hub

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/twinsync/twinsync/pkg/query"
)

// indexedRoots are the root fields the hub keeps equality indexes for, in
// addition to every primitive value under tags (the usual query filters).
// deviceId needs no index of its own: keys start with it.
var indexedRoots = []string{"deviceId", "moduleId", "status", "connectionState"}

// twinIndex is the query engine's view of the store (query.IndexedSource):
// the twin documents in key order per collection, and exact equality
// indexes over tags and a few root fields. The store keeps it up to date
// through its change callback, under the key's write lock, so it never
// misses or reorders a change.
type twinIndex struct {
	mu      sync.RWMutex
	docs    map[string]*identity
	modules map[string]bool
	sorted  [2][]string // device keys, module keys; nil when stale
	eq      map[string]map[indexValue]*postings
}

// indexValue is a JSON primitive as an index key.
type indexValue struct {
	kind byte // 's' string, 'n' number, 'b' bool, 'z' null
	text string
}

// postings is the set of keys having one value at one path, with a sorted
// copy built on demand.
type postings struct {
	keys   map[string]struct{}
	sorted []string
}

func newTwinIndex() *twinIndex {
	return &twinIndex{docs: map[string]*identity{}, modules: map[string]bool{}, eq: map[string]map[indexValue]*postings{}}
}

// change applies a store change (old or new may be nil). Only index
// entries that differ are touched, so rewriting a twin without changing
// its tags keeps the sorted postings valid.
func (x *twinIndex) change(old, new *identity) {
	var before, after map[indexEntry]bool
	if old != nil {
		before = indexEntries(old)
	}
	if new != nil {
		after = indexEntries(new)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != nil {
		key := old.key()
		for e := range before {
			if !after[e] {
				x.remove(e.path, e.value, key)
			}
		}
		if new == nil {
			delete(x.docs, key)
			delete(x.modules, key)
			x.sorted[collectionSlot(old.isModule())] = nil
		}
	}
	if new != nil {
		key := new.key()
		if old == nil {
			x.sorted[collectionSlot(new.isModule())] = nil
		}
		x.docs[key] = new
		x.modules[key] = new.isModule()
		for e := range after {
			if !before[e] {
				x.add(e.path, e.value, key)
			}
		}
	}
}

// indexEntry is one indexed (path, value) pair of a record.
type indexEntry struct {
	path  string
	value indexValue
}

func indexEntries(rec *identity) map[indexEntry]bool {
	entries := map[indexEntry]bool{}
	forEachIndexed(rec, func(path string, v indexValue) { entries[indexEntry{path, v}] = true })
	return entries
}

func collectionSlot(module bool) int {
	if module {
		return 1
	}
	return 0
}

func (x *twinIndex) add(path string, v indexValue, key string) {
	byValue := x.eq[path]
	if byValue == nil {
		byValue = map[indexValue]*postings{}
		x.eq[path] = byValue
	}
	p := byValue[v]
	if p == nil {
		p = &postings{keys: map[string]struct{}{}}
		byValue[v] = p
	}
	p.keys[key] = struct{}{}
	p.sorted = nil
}

func (x *twinIndex) remove(path string, v indexValue, key string) {
	p := x.eq[path][v]
	if p == nil {
		return
	}
	delete(p.keys, key)
	p.sorted = nil
	if len(p.keys) == 0 {
		delete(x.eq[path], v)
	}
}

// forEachIndexed calls fn for every indexed path of a record with its
// value, as the query document shows them.
func forEachIndexed(rec *identity, fn func(path string, v indexValue)) {
	d := &rec.Device
	if d.ModuleID != "" {
		fn("moduleId", indexValue{'s', d.ModuleID})
	}
	if d.Status != "" {
		fn("status", indexValue{'s', d.Status})
	}
	if d.ConnectionState != "" {
		fn("connectionState", indexValue{'s', d.ConnectionState})
	}
	walkPrimitives("tags", rec.Twin.Tags, fn)
}

func walkPrimitives(prefix string, m map[string]any, fn func(string, indexValue)) {
	for k, val := range m {
		path := prefix + "\x00" + k
		if child, ok := val.(map[string]any); ok {
			walkPrimitives(path, child, fn)
		} else if v, ok := primitive(val); ok {
			fn(path, v)
		}
	}
}

// primitive converts a JSON primitive to an index key.
func primitive(val any) (indexValue, bool) {
	switch v := val.(type) {
	case string:
		return indexValue{'s', v}, true
	case float64:
		return indexValue{'n', strconv.FormatFloat(v, 'g', -1, 64)}, true
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return indexValue{}, false
		}
		return indexValue{'n', strconv.FormatFloat(f, 'g', -1, 64)}, true
	case bool:
		return indexValue{'b', strconv.FormatBool(v)}, true
	case nil:
		return indexValue{kind: 'z'}, true
	}
	return indexValue{}, false
}

// keysOf returns the sorted keys of a collection.
func (x *twinIndex) keysOf(c query.Collection) []string {
	slot := collectionSlot(c == query.Modules)
	x.mu.RLock()
	keys := x.sorted[slot]
	x.mu.RUnlock()
	if keys != nil {
		return keys
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sorted[slot] == nil {
		keys := make([]string, 0, len(x.docs))
		for k, module := range x.modules {
			if module == (slot == 1) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		x.sorted[slot] = keys
	}
	return x.sorted[slot]
}

// Scan implements query.Source.
func (x *twinIndex) Scan(ctx context.Context, c query.Collection, after string, yield func(key string, doc map[string]any) bool) error {
	if c != query.Devices && c != query.Modules {
		return nil
	}
	keys := x.keysOf(c)
	start := 0
	if after != "" {
		start, _ = slices.BinarySearch(keys, after)
		if start < len(keys) && keys[start] == after {
			start++
		}
	}
	for i, key := range keys[start:] {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		x.mu.RLock()
		rec, ok := x.docs[key]
		x.mu.RUnlock()
		if ok && !yield(key, rec.document()) {
			return nil
		}
	}
	return nil
}

// Lookup implements query.IndexedSource.
func (x *twinIndex) Lookup(c query.Collection, path []string, v any) ([]string, bool) {
	if !indexedPath(path) {
		return nil, false
	}
	val, ok := primitive(v)
	if !ok {
		return nil, false
	}
	if len(path) == 1 && path[0] == "deviceId" {
		return x.lookupDeviceID(c, val), true
	}
	joined := strings.Join(path, "\x00")
	x.mu.RLock()
	p := x.eq[joined][val]
	if p == nil {
		x.mu.RUnlock()
		return []string{}, true
	}
	sorted := p.sorted
	x.mu.RUnlock()
	if sorted == nil {
		x.mu.Lock()
		if p.sorted == nil {
			p.sorted = make([]string, 0, len(p.keys))
			for k := range p.keys {
				p.sorted = append(p.sorted, k)
			}
			slices.Sort(p.sorted)
		}
		sorted = p.sorted
		x.mu.Unlock()
	}
	// The postings mix devices and modules; keep the collection's own.
	wantModule := c == query.Modules
	out := make([]string, 0, len(sorted))
	x.mu.RLock()
	for _, k := range sorted {
		if x.modules[k] == wantModule {
			out = append(out, k)
		}
	}
	x.mu.RUnlock()
	return out, true
}

// indexedPath reports whether the index covers path.
func indexedPath(path []string) bool {
	if len(path) == 1 {
		return slices.Contains(indexedRoots, path[0])
	}
	return len(path) > 1 && path[0] == "tags"
}

// Get implements query.IndexedSource.
func (x *twinIndex) Get(c query.Collection, key string) (map[string]any, bool) {
	x.mu.RLock()
	rec, ok := x.docs[key]
	module := x.modules[key]
	x.mu.RUnlock()
	if !ok || module != (c == query.Modules) {
		return nil, false
	}
	return rec.document(), true
}

// cachedJSON returns the stored REST JSON of the record whose query
// document is doc, or nil when doc is not (or no longer) a stored record's
// document.
func (x *twinIndex) cachedJSON(doc map[string]any) []byte {
	id, _ := doc["deviceId"].(string)
	mid, _ := doc["moduleId"].(string)
	x.mu.RLock()
	rec := x.docs[query.Key(id, mid)]
	x.mu.RUnlock()
	if rec == nil {
		return nil
	}
	cur := rec.doc.Load()
	if cur == nil || reflect.ValueOf(*cur).UnsafePointer() != reflect.ValueOf(doc).UnsafePointer() {
		return nil
	}
	return rec.twinJSON()
}

// lookupDeviceID answers deviceId = v from the keys themselves: the device
// key is the id, module keys start with the id and a '/'.
func (x *twinIndex) lookupDeviceID(c query.Collection, v indexValue) []string {
	if v.kind != 's' {
		return []string{}
	}
	if c != query.Modules {
		x.mu.RLock()
		_, ok := x.docs[v.text]
		x.mu.RUnlock()
		if ok && !strings.Contains(v.text, "/") {
			return []string{v.text}
		}
		return []string{}
	}
	keys := x.keysOf(query.Modules)
	prefix := v.text + "/"
	i, _ := slices.BinarySearch(keys, prefix)
	j := i
	for j < len(keys) && strings.HasPrefix(keys[j], prefix) {
		j++
	}
	return slices.Clone(keys[i:j])
}
