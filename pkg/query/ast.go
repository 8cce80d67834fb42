package query

import (
	"strconv"
	"strings"
)

// Pos is a position in the query text: 1-based line and column, columns
// counted in characters (runes).
type Pos struct {
	Line   int
	Column int
}

// String renders the position the way errors show it.
func (p Pos) String() string {
	return "line " + strconv.Itoa(p.Line) + ", column " + strconv.Itoa(p.Column)
}

// Collection is the FROM clause: which set of documents a query reads.
type Collection int

const (
	// Devices is `FROM devices`: device twins (documents without moduleId).
	Devices Collection = iota + 1
	// Modules is `FROM devices.modules`: module twins (documents with moduleId).
	Modules
	// Jobs is `FROM devices.jobs`. The engine has no jobs and answers an empty set.
	Jobs
)

// String returns the collection as written in a query.
func (c Collection) String() string {
	switch c {
	case Devices:
		return "devices"
	case Modules:
		return "devices.modules"
	case Jobs:
		return "devices.jobs"
	}
	return "Collection(" + strconv.Itoa(int(c)) + ")"
}

// Query is a parsed query. Build one with Parse; the zero value is not useful.
type Query struct {
	// Top is the TOP n limit, or -1 when the query has none.
	Top int64
	// Star is true for `SELECT *`; Items is empty then.
	Star bool
	// Items are the projections and aggregates of the select list.
	Items []SelectItem
	// From is the collection the query reads.
	From Collection
	// Where is the filter, or nil.
	Where Expr
	// GroupBy holds the grouping paths, empty when the query does not group.
	GroupBy []*Path
}

// SelectItem is one entry of the select list.
type SelectItem struct {
	// Expr is the projected expression; an aggregate is a *Call whose
	// Func.Aggregate() is true.
	Expr Expr
	// Alias is the AS name, "" when none was written.
	Alias string
}

// Name is the key the item gets in result rows: the alias, else the last
// segment of a path, else "$<n>" numbered from 1 by position in the list.
func (it SelectItem) Name(index int) string {
	if it.Alias != "" {
		return it.Alias
	}
	if p, ok := it.Expr.(*Path); ok && len(p.Segments) > 0 {
		return p.Segments[len(p.Segments)-1]
	}
	return "$" + strconv.Itoa(index+1)
}

// Expr is a node of an expression tree: *Path, *Literal, *Unary, *Binary,
// *In or *Call.
type Expr interface {
	// Pos is where the expression starts in the query text.
	Pos() Pos
	// String prints the expression in a form Parse reads back to the same tree.
	String() string
	exprNode()
}

// Path is a property reference such as tags.location.plant. System property
// names at the root (deviceId, connectionState, properties.reported, ...)
// are stored in canonical casing; a collection prefix (devices.,
// devices.modules.) is removed by the parser.
type Path struct {
	At       Pos
	Segments []string
}

// Literal is a constant: nil (null), Undefined, bool, float64 or string.
// Arrays appear only on the right of IN/NIN (see In).
type Literal struct {
	At    Pos
	Value any
}

// Op is an operator of a unary or binary expression.
type Op int

// Operators. OpNeg is unary minus; OpNot is NOT.
const (
	OpOr Op = iota + 1
	OpAnd
	OpEq
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpAdd
	OpSub
	OpMul
	OpDiv
	OpMod
	OpNot
	OpNeg
)

var opText = map[Op]string{
	OpOr: "OR", OpAnd: "AND", OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=",
	OpGt: ">", OpGe: ">=", OpAdd: "+", OpSub: "-", OpMul: "*", OpDiv: "/",
	OpMod: "%", OpNot: "NOT", OpNeg: "-",
}

// String returns the operator as printed in queries.
func (o Op) String() string {
	if s, ok := opText[o]; ok {
		return s
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Unary is NOT x or -x.
type Unary struct {
	At Pos
	Op Op
	X  Expr
}

// Binary is l op r for comparison, logical and arithmetic operators.
type Binary struct {
	At   Pos
	Op   Op
	L, R Expr
}

// In is x IN [c1, c2, ...] or, with Not set, x NIN [...].
type In struct {
	At   Pos
	X    Expr
	Not  bool
	List []*Literal
}

// Func names a built-in function in canonical upper case.
type Func string

// Built-in functions. The last five are aggregates, allowed only as select items.
const (
	FuncIsDefined   Func = "IS_DEFINED"
	FuncIsNull      Func = "IS_NULL"
	FuncIsBool      Func = "IS_BOOL"
	FuncIsNumber    Func = "IS_NUMBER"
	FuncIsString    Func = "IS_STRING"
	FuncIsObject    Func = "IS_OBJECT"
	FuncIsArray     Func = "IS_ARRAY"
	FuncIsPrimitive Func = "IS_PRIMITIVE"
	FuncStartsWith  Func = "STARTSWITH"
	FuncEndsWith    Func = "ENDSWITH"
	FuncContains    Func = "CONTAINS"
	FuncLower       Func = "LOWER"
	FuncUpper       Func = "UPPER"
	FuncLength      Func = "LENGTH"
	FuncCount       Func = "COUNT"
	FuncAvg         Func = "AVG"
	FuncSum         Func = "SUM"
	FuncMin         Func = "MIN"
	FuncMax         Func = "MAX"
)

// funcArity is the number of arguments each function takes; it doubles as
// the set of known functions.
var funcArity = map[Func]int{
	FuncIsDefined: 1, FuncIsNull: 1, FuncIsBool: 1, FuncIsNumber: 1,
	FuncIsString: 1, FuncIsObject: 1, FuncIsArray: 1, FuncIsPrimitive: 1,
	FuncStartsWith: 2, FuncEndsWith: 2, FuncContains: 2,
	FuncLower: 1, FuncUpper: 1, FuncLength: 1,
	FuncCount: 0, FuncAvg: 1, FuncSum: 1, FuncMin: 1, FuncMax: 1,
}

// Aggregate reports whether f is COUNT, AVG, SUM, MIN or MAX.
func (f Func) Aggregate() bool {
	switch f {
	case FuncCount, FuncAvg, FuncSum, FuncMin, FuncMax:
		return true
	}
	return false
}

// Call is a function call; Func is canonical whatever casing the query used.
type Call struct {
	At   Pos
	Func Func
	Args []Expr
}

func (*Path) exprNode()    {}
func (*Literal) exprNode() {}
func (*Unary) exprNode()   {}
func (*Binary) exprNode()  {}
func (*In) exprNode()      {}
func (*Call) exprNode()    {}

// Pos implements Expr.
func (e *Path) Pos() Pos { return e.At }

// Pos implements Expr.
func (e *Literal) Pos() Pos { return e.At }

// Pos implements Expr.
func (e *Unary) Pos() Pos { return e.At }

// Pos implements Expr.
func (e *Binary) Pos() Pos { return e.At }

// Pos implements Expr.
func (e *In) Pos() Pos { return e.At }

// Pos implements Expr.
func (e *Call) Pos() Pos { return e.At }

// String implements Expr; segments that are not plain names are escaped as [[...]].
func (e *Path) String() string {
	var b strings.Builder
	if len(e.Segments) > 1 && strings.EqualFold(e.Segments[0], "devices") {
		// The parser drops one leading "devices." as a collection prefix.
		b.WriteString("devices.")
	}
	for i, s := range e.Segments {
		if i > 0 {
			b.WriteByte('.')
		}
		if isPlainName(s) {
			b.WriteString(s)
		} else {
			b.WriteString("[[" + s + "]]")
		}
	}
	return b.String()
}

// String implements Expr.
func (e *Literal) String() string { return formatConstant(e.Value) }

// String implements Expr.
func (e *Unary) String() string {
	if e.Op == OpNot {
		return "(NOT " + e.X.String() + ")"
	}
	return "(-" + e.X.String() + ")"
}

// String implements Expr; binary expressions are fully parenthesised.
func (e *Binary) String() string {
	return "(" + e.L.String() + " " + e.Op.String() + " " + e.R.String() + ")"
}

// String implements Expr.
func (e *In) String() string {
	var b strings.Builder
	b.WriteString("(" + e.X.String())
	if e.Not {
		b.WriteString(" NIN [")
	} else {
		b.WriteString(" IN [")
	}
	for i, c := range e.List {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.String())
	}
	b.WriteString("])")
	return b.String()
}

// String implements Expr.
func (e *Call) String() string {
	args := make([]string, len(e.Args))
	for i, a := range e.Args {
		args[i] = a.String()
	}
	return string(e.Func) + "(" + strings.Join(args, ", ") + ")"
}

// String prints the query in canonical form; Parse(q.String()) yields the
// same tree (positions aside).
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.Top >= 0 {
		b.WriteString("TOP " + strconv.FormatInt(q.Top, 10) + " ")
	}
	if q.Star {
		b.WriteString("*")
	}
	for i, it := range q.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it.Expr.String())
		if it.Alias != "" {
			b.WriteString(" AS ")
			b.WriteString((&Path{Segments: []string{it.Alias}}).String())
		}
	}
	b.WriteString(" FROM " + q.From.String())
	if q.Where != nil {
		b.WriteString(" WHERE " + q.Where.String())
	}
	for i, g := range q.GroupBy {
		if i == 0 {
			b.WriteString(" GROUP BY ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(g.String())
	}
	return b.String()
}
