package query

import (
	"slices"
	"strings"
)

// rootNames are the twin's root properties in canonical casing. A path's
// first segment matches them case-insensitively, as IoT Hub's system
// property names do; keys below tags and properties stay case-sensitive.
var rootNames = canonicalSet("deviceId", "moduleId", "etag", "deviceEtag", "status",
	"statusReason", "statusUpdateTime", "connectionState", "lastActivityTime",
	"cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint", "modelId",
	"version", "tags", "properties", "capabilities", "deviceScope", "parentScopes",
	"configurations")

// sectionNames are the second segments under properties.
var sectionNames = canonicalSet("desired", "reported")

func canonicalSet(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// check resolves paths against the collection and enforces IoT Hub's
// restrictions that the grammar alone does not express.
func check(q *Query) *Error {
	var err *Error
	resolve := func(e Expr) {
		walk(e, func(e Expr) {
			if p, ok := e.(*Path); ok {
				resolvePath(p, q.From)
			}
		})
	}
	for _, it := range q.Items {
		resolve(it.Expr)
	}
	if q.Where != nil {
		resolve(q.Where)
	}
	for _, g := range q.GroupBy {
		resolve(g)
	}
	for _, step := range []func(*Query) *Error{checkAggregates, checkGroupBy, checkJobs, checkNames} {
		if err = step(q); err != nil {
			return err
		}
	}
	return nil
}

// resolvePath drops a collection prefix (devices., devices.modules.,
// devices.jobs.) and canonicalises system property names.
func resolvePath(p *Path, c Collection) {
	s := p.Segments
	if len(s) > 1 && strings.EqualFold(s[0], "devices") {
		s = s[1:]
		if len(s) > 1 && ((c == Modules && strings.EqualFold(s[0], "modules")) || (c == Jobs && strings.EqualFold(s[0], "jobs"))) {
			s = s[1:]
		}
	}
	if c != Jobs {
		if canon, ok := rootNames[strings.ToLower(s[0])]; ok {
			s[0] = canon
		} else if strings.EqualFold(s[0], "id") {
			s[0] = "deviceId" // the SDK samples' STARTSWITH(id, ...)
		}
		if s[0] == "properties" && len(s) > 1 {
			if canon, ok := sectionNames[strings.ToLower(s[1])]; ok {
				s[1] = canon
			}
		}
	}
	p.Segments = s
}

// walk calls fn for e and every expression below it.
func walk(e Expr, fn func(Expr)) {
	fn(e)
	switch e := e.(type) {
	case *Unary:
		walk(e.X, fn)
	case *Binary:
		walk(e.L, fn)
		walk(e.R, fn)
	case *In:
		walk(e.X, fn)
	case *Call:
		for _, a := range e.Args {
			walk(a, fn)
		}
	}
}

// findAggregate returns the first aggregate call at or below e, or nil.
func findAggregate(e Expr) *Call {
	var found *Call
	walk(e, func(e Expr) {
		if c, ok := e.(*Call); ok && c.Func.Aggregate() && found == nil {
			found = c
		}
	})
	return found
}

func isAggregate(e Expr) bool {
	c, ok := e.(*Call)
	return ok && c.Func.Aggregate()
}

// HasAggregates reports whether the select list holds an aggregate, so
// that rows are one per group rather than one per twin.
func (q *Query) HasAggregates() bool {
	return slices.ContainsFunc(q.Items, func(it SelectItem) bool { return isAggregate(it.Expr) })
}

func checkAggregates(q *Query) *Error {
	if q.Where != nil {
		if c := findAggregate(q.Where); c != nil {
			return &Error{Pos: c.At, Msg: string(c.Func) + " is an aggregate and is allowed only in the select list"}
		}
	}
	for _, it := range q.Items {
		for _, a := range argsOf(it.Expr) {
			if c := findAggregate(a); c != nil {
				return &Error{Pos: c.At, Msg: "aggregate " + string(c.Func) + " cannot be nested in an expression"}
			}
		}
		if !isAggregate(it.Expr) {
			if c := findAggregate(it.Expr); c != nil {
				return &Error{Pos: c.At, Msg: "aggregate " + string(c.Func) + " must be a select item of its own"}
			}
		}
	}
	if !q.HasAggregates() || len(q.GroupBy) > 0 {
		return nil
	}
	for _, it := range q.Items {
		if !isAggregate(it.Expr) {
			return &Error{Pos: it.Expr.Pos(), Msg: "expected an aggregate: without GROUP BY, a select list with aggregates holds only aggregates"}
		}
	}
	return nil
}

func argsOf(e Expr) []Expr {
	if c, ok := e.(*Call); ok && c.Func.Aggregate() {
		return c.Args
	}
	return nil
}

func checkGroupBy(q *Query) *Error {
	if len(q.GroupBy) == 0 {
		return nil
	}
	g := q.GroupBy[0]
	switch {
	case q.From != Devices:
		return &Error{Pos: g.At, Msg: "GROUP BY is supported only FROM devices"}
	case q.Star:
		return &Error{Pos: g.At, Msg: "expected a select list of grouped paths and aggregates with GROUP BY, found '*'"}
	}
	for _, it := range q.Items {
		if isAggregate(it.Expr) {
			continue
		}
		p, ok := it.Expr.(*Path)
		if !ok || !slices.ContainsFunc(q.GroupBy, func(g *Path) bool { return slices.Equal(g.Segments, p.Segments) }) {
			return &Error{Pos: it.Expr.Pos(), Msg: "expected an aggregate or a GROUP BY path, found " + it.Expr.String()}
		}
	}
	return nil
}

func checkJobs(q *Query) *Error {
	if q.From == Jobs && !q.Star {
		return &Error{Pos: q.Items[0].Expr.Pos(), Msg: "devices.jobs supports only SELECT *"}
	}
	return nil
}

func checkNames(q *Query) *Error {
	seen := map[string]bool{}
	for i, it := range q.Items {
		n := it.Name(i)
		if seen[n] {
			return &Error{Pos: it.Expr.Pos(), Msg: "duplicate output name '" + n + "': add AS with another name"}
		}
		seen[n] = true
	}
	return nil
}
