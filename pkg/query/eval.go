package query

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Matches reports whether doc satisfies the WHERE clause of q (true when
// there is none). Only a Boolean true matches.
func (q *Query) Matches(doc map[string]any) bool { return q.matches(docRow(doc)) }

func (q *Query) matches(r row) bool { return q.Where == nil || eval(q.Where, r) == true }

// Eval evaluates e against doc and returns a JSON value (nil, bool,
// float64, string, []any, map[string]any) or Undefined.
func Eval(e Expr, doc map[string]any) any { return eval(e, docRow(doc)) }

// row resolves paths for the evaluator: from a document, or from the
// columns of a ColumnSource.
type row interface {
	value(p *Path) any
}

// docRow reads paths from a decoded twin.
type docRow map[string]any

func (d docRow) value(p *Path) any { return lookup(d, p.Segments) }

func eval(e Expr, doc row) any {
	switch e := e.(type) {
	case *Path:
		return doc.value(e)
	case *Literal:
		return e.Value
	case *Unary:
		return evalUnary(e, doc)
	case *Binary:
		return evalBinary(e, doc)
	case *In:
		return evalIn(e, doc)
	case *Call:
		return evalCall(e, doc)
	}
	return Undefined
}

func evalUnary(e *Unary, doc row) any {
	x := eval(e.X, doc)
	switch e.Op {
	case OpNot:
		if b, ok := x.(bool); ok {
			return !b
		}
	case OpNeg:
		if f, ok := x.(float64); ok {
			return -f
		}
	}
	return Undefined
}

func evalBinary(e *Binary, doc row) any {
	switch e.Op {
	case OpAnd:
		return evalAnd(e, doc)
	case OpOr:
		return evalOr(e, doc)
	}
	l, r := eval(e.L, doc), eval(e.R, doc)
	switch e.Op {
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe:
		return evalComparison(e.Op, l, r)
	}
	return evalArithmetic(e.Op, l, r)
}

// evalAnd is three-valued: false wins over undefined, true needs both.
func evalAnd(e *Binary, doc row) any {
	l := eval(e.L, doc)
	if l == false {
		return false
	}
	r := eval(e.R, doc)
	switch {
	case r == false:
		return false
	case l == true && r == true:
		return true
	}
	return Undefined
}

// evalOr is three-valued: true wins over undefined, false needs both.
func evalOr(e *Binary, doc row) any {
	l := eval(e.L, doc)
	if l == true {
		return true
	}
	r := eval(e.R, doc)
	switch {
	case r == true:
		return true
	case l == false && r == false:
		return false
	}
	return Undefined
}

// evalComparison compares primitives of the same type; anything else,
// undefined included, is undefined (so != on a missing property is not true).
func evalComparison(op Op, l, r any) any {
	c, ok := comparePrimitives(l, r)
	if !ok {
		return Undefined
	}
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	}
	if kindOf(l) == kindNull {
		return Undefined // null has equality but no order
	}
	switch op {
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	}
	return c >= 0
}

// evalArithmetic works on numbers only; a non-finite result is undefined.
func evalArithmetic(op Op, l, r any) any {
	a, ok1 := l.(float64)
	b, ok2 := r.(float64)
	if !ok1 || !ok2 {
		return Undefined
	}
	var v float64
	switch op {
	case OpAdd:
		v = a + b
	case OpSub:
		v = a - b
	case OpMul:
		v = a * b
	case OpDiv:
		v = a / b
	case OpMod:
		v = math.Mod(a, b)
	default:
		return Undefined
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return Undefined
	}
	return v
}

// evalIn is true when x equals an element, false when it is a primitive
// equal to none; NIN negates that. An undefined or non-primitive x is
// undefined either way.
func evalIn(e *In, doc row) any {
	x := eval(e.X, doc)
	if !isPrimitive(kindOf(x)) {
		return Undefined
	}
	found := false
	for _, c := range e.List {
		if cmp, ok := comparePrimitives(x, c.Value); ok && cmp == 0 {
			found = true
			break
		}
	}
	return found != e.Not
}

func evalCall(e *Call, doc row) any {
	args := make([]any, len(e.Args))
	for i, a := range e.Args {
		args[i] = eval(a, doc)
	}
	if len(args) == 1 {
		return evalFunc1(e.Func, args[0])
	}
	if len(args) == 2 {
		return evalStringPredicate(e.Func, args[0], args[1])
	}
	return Undefined // aggregates are evaluated per group, not per document
}

func evalFunc1(f Func, x any) any {
	k := kindOf(x)
	switch f {
	case FuncIsDefined:
		return k != kindUndefined
	case FuncIsNull:
		return k == kindNull
	case FuncIsBool:
		return k == kindBool
	case FuncIsNumber:
		return k == kindNumber
	case FuncIsString:
		return k == kindString
	case FuncIsObject:
		return k == kindObject
	case FuncIsArray:
		return k == kindArray
	case FuncIsPrimitive:
		return isPrimitive(k)
	}
	s, ok := x.(string)
	if !ok {
		return Undefined
	}
	switch f {
	case FuncLower:
		return strings.ToLower(s)
	case FuncUpper:
		return strings.ToUpper(s)
	case FuncLength:
		return float64(utf8.RuneCountInString(s))
	}
	return Undefined
}

// evalStringPredicate runs STARTSWITH, ENDSWITH and CONTAINS, which are
// case-sensitive and defined only on two strings.
func evalStringPredicate(f Func, x, y any) any {
	s, ok1 := x.(string)
	t, ok2 := y.(string)
	if !ok1 || !ok2 {
		return Undefined
	}
	switch f {
	case FuncStartsWith:
		return strings.HasPrefix(s, t)
	case FuncEndsWith:
		return strings.HasSuffix(s, t)
	case FuncContains:
		return strings.Contains(s, t)
	}
	return Undefined
}
