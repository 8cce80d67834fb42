package query

import (
	"context"
	"slices"
)

// visitFunc receives the matching twins in key order; r reads paths from
// the document or from columns. Returning false stops the iteration.
type visitFunc func(key string, doc map[string]any, r row) bool

// iterate calls visit for the twins after key `after` that match the WHERE
// clause of q, in key order, by the cheapest access path the source
// offers: an index for a conjunct of WHERE, else columns, else a scan of
// the documents.
func iterate(ctx context.Context, q *Query, src Source, after string, visit visitFunc) error {
	if is, ok := src.(IndexedSource); ok && q.Where != nil {
		if hit, ok := plan(is, q.From, q.Where); ok {
			return visitHit(ctx, is, q.From, hit, after, visit)
		}
	}
	matching := func(key string, doc map[string]any, r row) bool {
		if q.Where != nil && eval(q.Where, r) != true {
			return true
		}
		return visit(key, doc, r)
	}
	if cs, ok := src.(ColumnSource); ok {
		if done, err := visitColumns(ctx, q, cs, after, matching); done || err != nil {
			return err
		}
	}
	return src.Scan(ctx, q.From, after, func(key string, doc map[string]any) bool {
		return matching(key, doc, docRow(doc))
	})
}

// visitHit walks the candidates an index gave, checking what the index
// did not already decide.
func visitHit(ctx context.Context, is IndexedSource, c Collection, hit indexHit, after string, visit visitFunc) error {
	for i := startAfter(hit.keys, after); i < len(hit.keys); i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var doc map[string]any
		if hit.docs != nil {
			doc = hit.docs[i]
		} else if d, ok := is.Get(c, hit.keys[i]); ok {
			doc = d
		} else {
			continue // deleted since the lookup
		}
		if hit.residual != nil && eval(hit.residual, docRow(doc)) != true {
			continue
		}
		if !visit(hit.keys[i], doc, docRow(doc)) {
			return nil
		}
	}
	return nil
}

// colRow reads paths from the columns of a ColumnSource at row i.
type colRow struct {
	slots []pathSlot
	cols  [][]any
	i     int
}

// pathSlot maps a Path node of the query to its column. Queries read few
// paths, so a linear search beats a map here.
type pathSlot struct {
	path *Path
	col  int
}

func (r *colRow) value(p *Path) any {
	for _, s := range r.slots {
		if s.path == p {
			return r.cols[s.col][r.i]
		}
	}
	return Undefined
}

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
func queryPaths(q *Query) ([]pathSlot, [][]string) {
	var slots []pathSlot
	byName := map[string]int{}
	var paths [][]string
	add := func(e Expr) {
		walk(e, func(e Expr) {
			p, ok := e.(*Path)
			if !ok {
				return
			}
			name := pathKey(p.Segments)
			i, seen := byName[name]
			if !seen {
				i = len(paths)
				byName[name] = i
				paths = append(paths, p.Segments)
			}
			slots = append(slots, pathSlot{path: p, col: i})
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

// indexHit is what an index answered for one conjunct of WHERE.
type indexHit struct {
	keys []string
	// docs, parallel to keys, is set when the index is exact; the
	// conjunct it answered is then left out of residual.
	docs []map[string]any
	// residual is the part of WHERE still to check on each candidate, or nil.
	residual Expr
}

// plan picks the smallest candidate set an index gives for one of the
// AND-ed conjuncts of where; false when no conjunct is indexed.
func plan(is IndexedSource, c Collection, where Expr) (indexHit, bool) {
	conjs := conjuncts(where, nil)
	best, bestAt := indexHit{}, -1
	for i, conj := range conjs {
		hit, ok := lookupConjunct(is, c, conj)
		if ok && (bestAt < 0 || len(hit.keys) < len(best.keys)) {
			best, bestAt = hit, i
		}
	}
	if bestAt < 0 {
		return indexHit{}, false
	}
	best.residual = where
	if best.docs != nil {
		best.residual = and(slices.Delete(conjs, bestAt, bestAt+1))
	}
	return best, true
}

// and joins conjuncts with AND; nil for none.
func and(conjs []Expr) Expr {
	if len(conjs) == 0 {
		return nil
	}
	e := conjs[0]
	for _, c := range conjs[1:] {
		e = &Binary{At: e.Pos(), Op: OpAnd, L: e, R: c}
	}
	return e
}

func conjuncts(e Expr, out []Expr) []Expr {
	if b, ok := e.(*Binary); ok && b.Op == OpAnd {
		return conjuncts(b.R, conjuncts(b.L, out))
	}
	return append(out, e)
}

// lookupConjunct answers `path = constant` and `path IN [constants]`.
func lookupConjunct(is IndexedSource, c Collection, e Expr) (indexHit, bool) {
	switch e := e.(type) {
	case *Binary:
		if e.Op != OpEq {
			return indexHit{}, false
		}
		path, lit := pathAndLiteral(e.L, e.R)
		if path == nil {
			path, lit = pathAndLiteral(e.R, e.L)
		}
		if path == nil {
			return indexHit{}, false
		}
		return lookupValue(is, c, path.Segments, lit.Value)
	case *In:
		path, ok := e.X.(*Path)
		if !ok || e.Not {
			return indexHit{}, false
		}
		var union indexHit
		for _, lit := range e.List {
			if !isPrimitive(kindOf(lit.Value)) {
				continue // undefined never matches
			}
			hit, ok := lookupValue(is, c, path.Segments, lit.Value)
			if !ok {
				return indexHit{}, false
			}
			union = mergeHits(union, hit)
		}
		return union, true
	}
	return indexHit{}, false
}

// lookupValue asks the exact lookup when the source has one.
func lookupValue(is IndexedSource, c Collection, path []string, v any) (indexHit, bool) {
	if exact, ok := is.(ExactIndexedSource); ok {
		keys, docs, ok := exact.LookupDocs(c, path, v)
		if docs == nil {
			docs = []map[string]any{} // exact, even when empty
		}
		return indexHit{keys: keys, docs: docs}, ok
	}
	keys, ok := is.Lookup(c, path, v)
	return indexHit{keys: keys}, ok
}

func pathAndLiteral(a, b Expr) (*Path, *Literal) {
	p, ok1 := a.(*Path)
	l, ok2 := b.(*Literal)
	if !ok1 || !ok2 || !isPrimitive(kindOf(l.Value)) {
		return nil, nil
	}
	return p, l
}

// mergeHits returns the union of two hits in key order. The union is
// exact only when both are.
func mergeHits(a, b indexHit) indexHit {
	if a.keys == nil && a.docs == nil {
		return b
	}
	exact := a.docs != nil && b.docs != nil
	out := indexHit{keys: make([]string, 0, len(a.keys)+len(b.keys))}
	if exact {
		out.docs = make([]map[string]any, 0, len(a.keys)+len(b.keys))
	}
	take := func(h indexHit, i int) {
		out.keys = append(out.keys, h.keys[i])
		if exact {
			out.docs = append(out.docs, h.docs[i])
		}
	}
	i, j := 0, 0
	for i < len(a.keys) || j < len(b.keys) {
		switch {
		case j == len(b.keys) || (i < len(a.keys) && a.keys[i] < b.keys[j]):
			take(a, i)
			i++
		case i == len(a.keys) || b.keys[j] < a.keys[i]:
			take(b, j)
			j++
		default:
			take(a, i)
			i, j = i+1, j+1
		}
	}
	return out
}
