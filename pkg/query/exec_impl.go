package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
	"slices"
)

// cursor is what a continuation token carries.
type cursor struct {
	Version int    `json:"v"`
	Hash    uint64 `json:"h"`
	// Key is the key of the last twin returned (twin and projection rows).
	Key string `json:"k,omitempty"`
	// Group is the tagged value tuple of the last group returned.
	Group []taggedValue `json:"g,omitempty"`
	// Returned counts the rows returned by earlier pages, for TOP.
	Returned int64 `json:"n,omitempty"`
}

// taggedValue encodes a value that may be undefined, which JSON cannot say.
type taggedValue struct {
	Defined bool `json:"d"`
	Value   any  `json:"x,omitempty"`
}

const cursorVersion = 1

func queryHash(q *Query) uint64 {
	h := fnv.New64a()
	h.Write([]byte(q.String()))
	return h.Sum64()
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // cursor holds only JSON-safe values
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(token string, hash uint64) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Version != cursorVersion || c.Hash != hash || c.Returned < 0 {
		return cursor{}, ErrInvalidContinuation
	}
	return c, nil
}

func executeQuery(ctx context.Context, q *Query, src Source, opts Options) (*Page, error) {
	page := &Page{ItemType: q.ItemType(), Items: []map[string]any{}}
	hash := queryHash(q)
	cur := cursor{Version: cursorVersion, Hash: hash}
	if opts.Continuation != "" {
		var err error
		if cur, err = decodeCursor(opts.Continuation, hash); err != nil {
			return nil, err
		}
	}
	if q.From == Jobs {
		return page, nil // the engine keeps no jobs
	}
	limit := pageLimit(q, opts, cur)
	if limit == 0 {
		return page, nil
	}
	if q.HasAggregates() {
		return page, aggregatePage(ctx, q, src, cur, limit, page)
	}
	return page, rowPage(ctx, q, src, cur, limit, page)
}

// pageLimit is how many rows this page may hold: the page size, capped by
// what TOP leaves; -1 means no limit.
func pageLimit(q *Query, opts Options, cur cursor) int64 {
	limit := int64(-1)
	if opts.PageSize > 0 {
		limit = int64(opts.PageSize)
	}
	if q.Top >= 0 {
		left := max(q.Top-cur.Returned, 0)
		if limit < 0 || left < limit {
			limit = left
		}
	}
	return limit
}

// rowPage fills page with twins or projections in key order. After a full
// page it looks for one more match, so that the token is sent only when
// another page really exists.
func rowPage(ctx context.Context, q *Query, src Source, cur cursor, limit int64, page *Page) error {
	var lastKey string
	more := false
	err := candidates(ctx, q, src, cur.Key, func(key string, doc map[string]any) bool {
		if !q.Matches(doc) {
			return true
		}
		if limit >= 0 && int64(len(page.Items)) == limit {
			more = true
			return false
		}
		page.Items = append(page.Items, project(q, doc))
		lastKey = key
		return true
	})
	if err != nil {
		return err
	}
	returned := cur.Returned + int64(len(page.Items))
	if more && (q.Top < 0 || returned < q.Top) {
		page.Continuation = encodeCursor(cursor{Version: cursorVersion, Hash: cur.Hash, Key: lastKey, Returned: returned})
	}
	return nil
}

// project builds the row for one twin: the twin itself for SELECT *,
// else an object with one key per defined select item.
func project(q *Query, doc map[string]any) map[string]any {
	if q.Star {
		return doc
	}
	row := make(map[string]any, len(q.Items))
	for i, it := range q.Items {
		if v := eval(it.Expr, doc); v != Undefined {
			row[it.Name(i)] = v
		}
	}
	return row
}

// candidates yields the twins after key `after` that may match q, in key
// order: from an index when the source has one for a conjunct of WHERE,
// else from a scan.
func candidates(ctx context.Context, q *Query, src Source, after string, yield func(string, map[string]any) bool) error {
	is, ok := src.(IndexedSource)
	if !ok || q.Where == nil {
		return src.Scan(ctx, q.From, after, yield)
	}
	keys, ok := plan(is, q.From, q.Where)
	if !ok {
		return src.Scan(ctx, q.From, after, yield)
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
		doc, ok := is.Get(q.From, k)
		if ok && !yield(k, doc) {
			return nil
		}
	}
	return nil
}

// plan returns the smallest sorted key set an index gives for one of the
// AND-ed conjuncts of where, or false when no conjunct is indexed.
func plan(is IndexedSource, c Collection, where Expr) ([]string, bool) {
	var best []string
	found := false
	for _, conj := range conjuncts(where, nil) {
		keys, ok := lookupConjunct(is, c, conj)
		if ok && (!found || len(keys) < len(best)) {
			best, found = keys, true
		}
	}
	return best, found
}

func conjuncts(e Expr, out []Expr) []Expr {
	if b, ok := e.(*Binary); ok && b.Op == OpAnd {
		return conjuncts(b.R, conjuncts(b.L, out))
	}
	return append(out, e)
}

// lookupConjunct answers `path = constant` and `path IN [constants]`.
func lookupConjunct(is IndexedSource, c Collection, e Expr) ([]string, bool) {
	switch e := e.(type) {
	case *Binary:
		if e.Op != OpEq {
			return nil, false
		}
		path, lit := pathAndLiteral(e.L, e.R)
		if path == nil {
			path, lit = pathAndLiteral(e.R, e.L)
		}
		if path == nil {
			return nil, false
		}
		return is.Lookup(c, path.Segments, lit.Value)
	case *In:
		path, ok := e.X.(*Path)
		if !ok || e.Not {
			return nil, false
		}
		var union []string
		for _, lit := range e.List {
			if !isPrimitive(kindOf(lit.Value)) {
				continue // undefined never matches
			}
			keys, ok := is.Lookup(c, path.Segments, lit.Value)
			if !ok {
				return nil, false
			}
			union = mergeSorted(union, keys)
		}
		return union, true
	}
	return nil, false
}

func pathAndLiteral(a, b Expr) (*Path, *Literal) {
	p, ok1 := a.(*Path)
	l, ok2 := b.(*Literal)
	if !ok1 || !ok2 || !isPrimitive(kindOf(l.Value)) {
		return nil, nil
	}
	return p, l
}

// mergeSorted returns the sorted union of two sorted key lists.
func mergeSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
