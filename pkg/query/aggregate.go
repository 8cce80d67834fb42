package query

import (
	"context"
	"encoding/json"
	"slices"
)

// group accumulates the aggregates of one GROUP BY group.
type group struct {
	values []any // the group's values, one per GROUP BY path
	accs   []accumulator
}

// accumulator holds the running state of one aggregate select item.
type accumulator struct {
	count    int64
	sum      float64
	numeric  int64
	extreme  any
	hasValue bool
}

func (a *accumulator) add(f Func, v any) {
	switch f {
	case FuncCount:
		a.count++
	case FuncSum, FuncAvg:
		if n, ok := v.(float64); ok {
			a.sum += n
			a.numeric++
		}
	case FuncMin, FuncMax:
		if k := kindOf(v); k == kindUndefined || !isPrimitive(k) {
			return
		}
		if !a.hasValue {
			a.extreme, a.hasValue = v, true
			return
		}
		c := compareTotal(v, a.extreme)
		if (f == FuncMin && c < 0) || (f == FuncMax && c > 0) {
			a.extreme = v
		}
	}
}

func (a *accumulator) result(f Func) any {
	switch f {
	case FuncCount:
		return a.count
	case FuncSum:
		if a.numeric > 0 {
			return a.sum
		}
	case FuncAvg:
		if a.numeric > 0 {
			return a.sum / float64(a.numeric)
		}
	case FuncMin, FuncMax:
		if a.hasValue {
			return a.extreme
		}
	}
	return Undefined
}

// aggregatePage computes the aggregate rows and returns those after the
// cursor's last group, ordered by group values.
func aggregatePage(ctx context.Context, q *Query, src Source, cur cursor, limit int64, page *Page) error {
	groups, err := collectGroups(ctx, q, src)
	if err != nil {
		return err
	}
	if len(q.GroupBy) == 0 && len(groups) == 0 {
		groups = []*group{newGroup(q, nil)} // COUNT() over nothing is 0
	}
	start := 0
	if cur.Group != nil {
		last := untag(cur.Group)
		start = len(groups)
		for i, g := range groups {
			if compareTuples(g.values, last) > 0 {
				start = i
				break
			}
		}
	}
	end := len(groups)
	if limit >= 0 && int64(end-start) > limit {
		end = start + int(limit)
	}
	for _, g := range groups[start:end] {
		page.Items = append(page.Items, groupRow(q, g))
	}
	returned := cur.Returned + int64(end-start)
	if end < len(groups) && (q.Top < 0 || returned < q.Top) {
		page.Continuation = encodeCursor(cursor{Version: cursorVersion, Hash: cur.Hash, Group: tag(groups[end-1].values), Returned: returned})
	}
	return nil
}

// collectGroups runs the aggregates over every matching twin and returns
// the groups sorted by their values.
func collectGroups(ctx context.Context, q *Query, src Source) ([]*group, error) {
	groups := groupIndex{byKey: map[any]*group{}}
	values := make([]any, len(q.GroupBy))
	err := iterate(ctx, q, src, "", func(_ string, _ map[string]any, r row) bool {
		for i, p := range q.GroupBy {
			values[i] = r.value(p)
		}
		g := groups.find(groupKey(values), func() *group { return newGroup(q, slices.Clone(values)) })
		for i, it := range q.Items {
			if c, ok := it.Expr.(*Call); ok && c.Func.Aggregate() {
				var v any
				if len(c.Args) == 1 {
					v = eval(c.Args[0], r)
				}
				g.accs[i].add(c.Func, v)
			}
		}
		return true
	})
	slices.SortFunc(groups.order, func(a, b *group) int { return compareTuples(a.values, b.values) })
	return groups.order, err
}

// groupIndex finds a row's group. With few groups, the usual case for
// GROUP BY over a status or a firmware version, a linear search by
// interface equality beats hashing; interned column strings even compare
// by pointer.
type groupIndex struct {
	order []*group
	keys  []any
	byKey map[any]*group
}

const linearGroups = 8

func (gi *groupIndex) find(key any, create func() *group) *group {
	if len(gi.order) <= linearGroups {
		for i, k := range gi.keys {
			if k == key {
				return gi.order[i]
			}
		}
	} else if g := gi.byKey[key]; g != nil {
		return g
	}
	g := create()
	gi.order = append(gi.order, g)
	gi.keys = append(gi.keys, key)
	gi.byKey[key] = g
	return g
}

func newGroup(q *Query, values []any) *group {
	return &group{values: values, accs: make([]accumulator, len(q.Items))}
}

// tupleKey is the map key of a group whose values are not a single
// primitive; its own type keeps it apart from string values.
type tupleKey string

// groupKey identifies a tuple of group values. A single primitive or
// undefined value is its own key (no allocation on the hot path); other
// tuples are encoded with valueKey and JSON text, tagged by kind.
func groupKey(values []any) any {
	if len(values) == 1 && (values[0] == Undefined || isPrimitive(kindOf(values[0]))) {
		return values[0]
	}
	var b []byte
	for _, v := range values {
		if vk, ok := valueKey(v); ok {
			b = append(b, vk...)
		} else if v == Undefined {
			b = append(b, 'u')
		} else {
			j, _ := json.Marshal(v)
			b = append(b, 'j')
			b = append(b, j...)
		}
		b = append(b, 0)
	}
	return tupleKey(b)
}

func groupRow(q *Query, g *group) map[string]any {
	row := make(map[string]any, len(q.Items))
	for i, it := range q.Items {
		var v any
		if c, ok := it.Expr.(*Call); ok && c.Func.Aggregate() {
			v = g.accs[i].result(c.Func)
		} else {
			v = groupValue(q, g, it.Expr.(*Path))
		}
		if v != Undefined {
			row[it.Name(i)] = v
		}
	}
	return row
}

func groupValue(q *Query, g *group, p *Path) any {
	for i, gp := range q.GroupBy {
		if slices.Equal(gp.Segments, p.Segments) {
			return g.values[i]
		}
	}
	return Undefined
}

func compareTuples(a, b []any) int {
	for i := range min(len(a), len(b)) {
		if c := compareTotal(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func tag(values []any) []taggedValue {
	out := make([]taggedValue, len(values))
	for i, v := range values {
		if v != Undefined {
			out[i] = taggedValue{Defined: true, Value: v}
		}
	}
	return out
}

func untag(tv []taggedValue) []any {
	out := make([]any, len(tv))
	for i, t := range tv {
		out[i] = Undefined
		if t.Defined {
			out[i] = normalize(t.Value)
		}
	}
	return out
}
