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

// MemSource is the in-memory reference Source, ExactIndexedSource and
// ColumnSource. It keeps device twins and module twins in two collections.
// For each it maintains exact equality indexes on every primitive leaf under
// the configured paths, updated on every Put and Delete, and a snapshot:
// the keys in order, the documents, and value columns for the paths queries
// asked for (also limited to the configured paths). Replacing a twin updates
// the snapshot in place; adding or removing one marks it stale, and it is
// rebuilt on the next query, so bulk loads stay O(n log n).
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
	snap *snapshot // nil when stale
	// index maps indexKey(path, value) to the set of keys holding that
	// value; entries remembers each document's index keys for removal.
	index   map[string]*posting
	entries map[string][]string
}

// snapshot is a collection in key order, with value columns.
type snapshot struct {
	keys    []string
	docs    []map[string]any
	columns map[string]*column // by columnName(path)
}

type column struct {
	path   []string
	values []any
	// intern shares one copy of each short string value, so that equal
	// values are one cache line apart rather than one per twin.
	intern map[string]any
}

// Interning limits: long or numerous distinct strings are kept as they are.
const (
	maxInternLen   = 128
	maxInternCount = 4096
)

// value reads the column's path from doc.
func (col *column) value(doc map[string]any) any {
	v := lookup(doc, col.path)
	s, ok := v.(string)
	if !ok || len(s) > maxInternLen {
		return v
	}
	if shared, ok := col.intern[s]; ok {
		return shared
	}
	if len(col.intern) < maxInternCount {
		col.intern[s] = v
	}
	return v
}

// maxColumns bounds the memory columns take: 100,000 twins cost 1.6 MB a column.
const maxColumns = 32

// posting is the set of keys for one (path, value) pair. Every write to
// one of its twins marks its caches stale.
type posting struct {
	keys   map[string]struct{}
	sorted []string         // nil when stale
	docs   []map[string]any // parallel to sorted
}

// NewMemSource returns an empty MemSource that indexes every primitive
// leaf at or below each of the given dotted paths (e.g. "tags",
// "properties.reported.connectivity") and keeps columns for paths at or
// below them. With no paths every query scans the documents.
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
	key := Key(dev, mod)
	s.mu.Lock()
	defer s.mu.Unlock()
	mc := s.colls[collectionOf(mod)]
	_, exists := mc.docs[key]
	mc.unindex(key)
	mc.docs[key] = doc
	mc.indexDoc(key, doc, s.indexed)
	if !exists {
		mc.snap = nil
	} else if mc.snap != nil {
		mc.snap.replace(key, doc)
	}
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
	mc.snap = nil
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

// Scan implements Source. It holds s's lock while yield runs, so yield must
// not call s (a nested read lock deadlocks once a writer waits), and a
// long scan delays writers until it ends.
func (s *MemSource) Scan(ctx context.Context, c Collection, after string, yield func(string, map[string]any) bool) error {
	if c < Devices || c > Jobs {
		return nil
	}
	var err error
	s.withSnapshot(c, nil, func(snap *snapshot) {
		for i := startAfter(snap.keys, after); i < len(snap.keys); i++ {
			if i%1024 == 0 && ctx.Err() != nil {
				err = ctx.Err()
				return
			}
			if !yield(snap.keys[i], snap.docs[i]) {
				return
			}
		}
	})
	return err
}

// Columns implements ColumnSource for paths at or below the indexed paths.
// Like Scan it holds s's lock while fn runs, so fn must not call s.
func (s *MemSource) Columns(ctx context.Context, c Collection, paths [][]string, fn func([]string, []map[string]any, [][]any)) (bool, error) {
	if c < Devices || c > Jobs || len(paths) > maxColumns {
		return false, nil
	}
	for _, p := range paths {
		if !s.covers(p) {
			return false, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.withSnapshot(c, paths, func(snap *snapshot) {
		cols := make([][]any, len(paths))
		for i, p := range paths {
			cols[i] = snap.columns[columnName(p)].values
		}
		fn(snap.keys, snap.docs, cols)
	})
	return true, nil
}

// withSnapshot runs fn on an up-to-date snapshot of c holding the given
// columns: under the read lock when nothing needs building, else under the
// write lock after building what is missing.
func (s *MemSource) withSnapshot(c Collection, paths [][]string, fn func(*snapshot)) {
	mc := s.colls[c]
	s.mu.RLock()
	if mc.snap != nil && mc.snap.hasColumns(paths) {
		defer s.mu.RUnlock()
		fn(mc.snap)
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if mc.snap == nil {
		mc.snap = newSnapshot(mc.docs)
	}
	mc.snap.addColumns(paths)
	fn(mc.snap)
}

func newSnapshot(docs map[string]map[string]any) *snapshot {
	snap := &snapshot{keys: sortedKeys(docs), columns: map[string]*column{}}
	snap.docs = make([]map[string]any, len(snap.keys))
	for i, k := range snap.keys {
		snap.docs[i] = docs[k]
	}
	return snap
}

func (snap *snapshot) hasColumns(paths [][]string) bool {
	for _, p := range paths {
		if snap.columns[columnName(p)] == nil {
			return false
		}
	}
	return true
}

func (snap *snapshot) addColumns(paths [][]string) {
	if snap.hasColumns(paths) {
		return
	}
	if len(snap.columns)+len(paths) > maxColumns {
		clear(snap.columns) // start over rather than grow without bound
	}
	for _, p := range paths {
		name := columnName(p)
		if snap.columns[name] != nil {
			continue
		}
		col := &column{path: slices.Clone(p), values: make([]any, len(snap.docs)), intern: map[string]any{}}
		for i, d := range snap.docs {
			col.values[i] = col.value(d)
		}
		snap.columns[name] = col
	}
}

// columnName keys a column by its path.
func columnName(path []string) string { return pathKey(path) }

// replace swaps in a new version of an existing twin.
func (snap *snapshot) replace(key string, doc map[string]any) {
	i, found := slices.BinarySearch(snap.keys, key)
	if !found {
		return
	}
	snap.docs[i] = doc
	for _, col := range snap.columns {
		col.values[i] = col.value(doc)
	}
}

// startAfter is the index of the first key after `after` in sorted keys.
func startAfter(keys []string, after string) int {
	if after == "" {
		return 0
	}
	i, found := slices.BinarySearch(keys, after)
	if found {
		i++
	}
	return i
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
	keys, _, ok := s.LookupDocs(c, path, v)
	return keys, ok
}

// LookupDocs implements ExactIndexedSource: the keys and documents whose
// value at path equals v, from one consistent view. The returned slices
// are shared and must not be modified.
func (s *MemSource) LookupDocs(c Collection, path []string, v any) ([]string, []map[string]any, bool) {
	if c < Devices || c > Jobs || !s.covers(path) {
		return nil, nil, false
	}
	vk, ok := valueKey(normalize(v))
	if !ok {
		return nil, nil, false
	}
	ik := indexKey(path, vk)
	s.mu.RLock()
	p := s.colls[c].index[ik]
	if p == nil || p.sorted != nil {
		defer s.mu.RUnlock()
		if p == nil {
			return nil, nil, true
		}
		return p.sorted, p.docs, true
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	mc := s.colls[c]
	if p = mc.index[ik]; p == nil {
		return nil, nil, true
	}
	if p.sorted == nil {
		p.sorted = sortedKeys(p.keys)
		p.docs = make([]map[string]any, len(p.sorted))
		for i, k := range p.sorted {
			p.docs[i] = mc.docs[k]
		}
	}
	return p.sorted, p.docs, true
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
		p.sorted, p.docs = nil, nil
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
		p.sorted, p.docs = nil, nil
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
	return pathKey(path) + vk
}
