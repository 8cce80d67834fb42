package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
	"strings"
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
	err := iterate(ctx, q, src, cur.Key, func(key string, doc map[string]any, r row) bool {
		if !q.matches(r) {
			return true
		}
		if limit >= 0 && int64(len(page.Items)) == limit {
			more = true
			return false
		}
		page.Items = append(page.Items, project(q, doc, r))
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
func project(q *Query, doc map[string]any, r row) map[string]any {
	if q.Star {
		return doc
	}
	out := make(map[string]any, len(q.Items))
	for i, it := range q.Items {
		if v := eval(it.Expr, r); v != Undefined {
			out[it.Name(i)] = v
		}
	}
	return out
}

// visitFunc receives candidate twins in key order; r reads paths from the
// document or from columns. Returning false stops the iteration.
type visitFunc func(key string, doc map[string]any, r row) bool

// iterate yields the twins after key `after` that may match q, in key
// order, by the cheapest access path the source offers: an index for a
// conjunct of WHERE, else columns, else a scan of the documents.
func iterate(ctx context.Context, q *Query, src Source, after string, visit visitFunc) error {
	if is, ok := src.(IndexedSource); ok && q.Where != nil {
		if keys, ok := plan(is, q.From, q.Where); ok {
			return visitKeys(ctx, is, q.From, keys, after, visit)
		}
	}
	if cs, ok := src.(ColumnSource); ok {
		if done, err := visitColumns(ctx, q, cs, after, visit); done || err != nil {
			return err
		}
	}
	return src.Scan(ctx, q.From, after, func(key string, doc map[string]any) bool {
		return visit(key, doc, docRow(doc))
	})
}

func visitKeys(ctx context.Context, is IndexedSource, c Collection, keys []string, after string, visit visitFunc) error {
	for i := startAfter(keys, after); i < len(keys); i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if doc, ok := is.Get(c, keys[i]); ok && !visit(keys[i], doc, docRow(doc)) {
			return nil
		}
	}
	return nil
}

// colRow reads paths from the columns of a ColumnSource at row i.
type colRow struct {
	slots map[*Path]int
	cols  [][]any
	i     int
}

func (r *colRow) value(p *Path) any { return r.cols[r.slots[p]][r.i] }

// visitColumns iterates over a column snapshot; done is false when the
// source keeps no columns for some path of q.
func visitColumns(ctx context.Context, q *Query, cs ColumnSource, after string, visit visitFunc) (done bool, err error) {
	slots, paths := queryPaths(q)
	done, err = cs.Columns(ctx, q.From, paths, func(keys []string, docs []map[string]any, cols [][]any) {
		r := &colRow{slots: slots, cols: cols}
		for i := startAfter(keys, after); i < len(keys); i++ {
			if i%4096 == 0 && ctx.Err() != nil {
				err = ctx.Err()
				return
			}
			r.i = i
			if !visit(keys[i], docs[i], r) {
				return
			}
		}
	})
	return done, err
}

// queryPaths lists the distinct paths q reads and maps each Path node to
// its position in that list.
func queryPaths(q *Query) (map[*Path]int, [][]string) {
	slots := map[*Path]int{}
	byName := map[string]int{}
	var paths [][]string
	add := func(e Expr) {
		walk(e, func(e Expr) {
			p, ok := e.(*Path)
			if !ok {
				return
			}
			name := strings.Join(p.Segments, "\x00")
			i, seen := byName[name]
			if !seen {
				i = len(paths)
				byName[name] = i
				paths = append(paths, p.Segments)
			}
			slots[p] = i
		})
	}
	for _, it := range q.Items {
		add(it.Expr)
	}
	if q.Where != nil {
		add(q.Where)
	}
	for _, g := range q.GroupBy {
		add(g)
	}
	return slots, paths
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
