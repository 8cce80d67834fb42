package query

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Parse parses query text into a Query, checking the grammar of spec §6 and
// the restrictions IoT Hub places on it (aggregates only as select items,
// GROUP BY only over devices, devices.jobs only with SELECT *). Any error
// is an *Error naming the line, column and what was expected. Parse never
// panics.
func Parse(text string) (*Query, error) {
	if n := utf8.RuneCountInString(text); n > MaxQueryLength {
		return nil, &Error{Pos: Pos{Line: 1, Column: 1}, Msg: ErrQueryTooLong.Error(), Err: ErrQueryTooLong}
	}
	p := &parser{lex: newLexer(text)}
	if err := p.advance(); err != nil {
		return nil, err
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	if err := check(q); err != nil {
		return nil, err
	}
	return q, nil
}

// parser is a recursive-descent parser with one token of look-ahead.
type parser struct {
	lex  *lexer
	tok  token // current token
	prev token // token consumed last
}

func (p *parser) advance() *Error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.prev, p.tok = p.tok, t
	return nil
}

// isKw reports whether the current token is the keyword kw (upper case).
func (p *parser) isKw(kw string) bool {
	return p.tok.kind == tkName && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tkPunct && p.tok.text == s }

func (p *parser) errHere(expected string) *Error {
	return &Error{Pos: p.tok.pos, Msg: "expected " + expected + ", found " + p.tok.describe()}
}

func (p *parser) expectKw(kw, context string) *Error {
	if !p.isKw(kw) {
		return p.errHere(kw + context)
	}
	return p.advance()
}

func (p *parser) expectPunct(s, context string) *Error {
	if !p.isPunct(s) {
		return p.errHere("'" + s + "'" + context)
	}
	return p.advance()
}

func (p *parser) query() (*Query, *Error) {
	q := &Query{Top: -1}
	if err := p.expectKw("SELECT", " at the start of the query"); err != nil {
		return nil, err
	}
	if err := p.top(q); err != nil {
		return nil, err
	}
	if err := p.selectList(q); err != nil {
		return nil, err
	}
	if err := p.expectKw("FROM", " after the select list"); err != nil {
		return nil, err
	}
	c, err := p.collection()
	if err != nil {
		return nil, err
	}
	q.From = c
	if p.isKw("WHERE") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if q.Where, err = p.expr(); err != nil {
			return nil, err
		}
	}
	if p.isKw("GROUP") {
		if err := p.groupBy(q); err != nil {
			return nil, err
		}
	}
	if p.tok.kind != tkEOF {
		return nil, p.errHere("end of query")
	}
	return q, nil
}

func (p *parser) top(q *Query) *Error {
	if !p.isKw("TOP") {
		return nil
	}
	if err := p.advance(); err != nil {
		return err
	}
	t := p.tok
	if t.kind != tkNumber || t.num != math.Trunc(t.num) || t.num < 0 || t.num > math.MaxInt32 {
		return &Error{Pos: p.prev.pos, Msg: "expected a whole number after TOP"}
	}
	q.Top = int64(t.num)
	return p.advance()
}

func (p *parser) selectList(q *Query) *Error {
	if p.isPunct("*") {
		q.Star = true
		return p.advance()
	}
	for {
		it, err := p.selectItem()
		if err != nil {
			return err
		}
		q.Items = append(q.Items, it)
		if !p.isPunct(",") {
			return nil
		}
		if err := p.advance(); err != nil {
			return err
		}
	}
}

func (p *parser) selectItem() (SelectItem, *Error) {
	if p.tok.kind == tkEOF || p.isKw("FROM") {
		return SelectItem{}, p.errHere("'*' or a select item after " + p.prev.describe())
	}
	e, err := p.expr()
	if err != nil {
		return SelectItem{}, err
	}
	it := SelectItem{Expr: e}
	if p.isKw("AS") {
		if err := p.advance(); err != nil {
			return it, err
		}
		if it.Alias, err = p.name("an alias after AS"); err != nil {
			return it, err
		}
	}
	return it, nil
}

// name reads one name: a non-keyword identifier or a [[escaped]] name.
func (p *parser) name(expected string) (string, *Error) {
	t := p.tok
	switch {
	case t.kind == tkEscaped:
	case t.kind == tkName && !isKeyword(t.text):
	case t.kind == tkName:
		return "", &Error{Pos: t.pos, Msg: "expected " + expected + ", found keyword '" + t.text +
			"' (write [[" + t.text + "]] for a property with that name)"}
	default:
		return "", p.errHere(expected)
	}
	return t.text, p.advance()
}

func (p *parser) collection() (Collection, *Error) {
	const want = "devices, devices.modules or devices.jobs"
	if !(p.tok.kind == tkName && strings.EqualFold(p.tok.text, "devices")) {
		return 0, p.errHere(want + " after FROM")
	}
	if err := p.advance(); err != nil {
		return 0, err
	}
	if !p.isPunct(".") {
		return Devices, nil
	}
	if err := p.advance(); err != nil {
		return 0, err
	}
	switch {
	case p.isKw("modules"):
		return Modules, p.advance()
	case p.isKw("jobs"):
		return Jobs, p.advance()
	}
	return 0, p.errHere("modules or jobs after 'devices.'")
}

func (p *parser) groupBy(q *Query) *Error {
	if err := p.advance(); err != nil {
		return err
	}
	if err := p.expectKw("BY", " after GROUP"); err != nil {
		return err
	}
	for {
		if p.tok.kind != tkName && p.tok.kind != tkEscaped {
			return &Error{Pos: p.prev.pos, Msg: "expected a property path after " + p.prev.describe()}
		}
		e, err := p.pathOrCall()
		if err != nil {
			return err
		}
		path, ok := e.(*Path)
		if !ok {
			return &Error{Pos: e.Pos(), Msg: "expected a property path in GROUP BY"}
		}
		q.GroupBy = append(q.GroupBy, path)
		if !p.isPunct(",") {
			return nil
		}
		if err := p.advance(); err != nil {
			return err
		}
	}
}

// expr parses an expression. Precedence from loosest: OR, AND, NOT,
// comparison and IN/NIN, + -, * / %, unary minus.
func (p *parser) expr() (Expr, *Error) { return p.or() }

func (p *parser) or() (Expr, *Error) {
	return p.binaryLeft(p.and, func() (Op, bool) { return OpOr, p.isKw("OR") })
}

func (p *parser) and() (Expr, *Error) {
	return p.binaryLeft(p.not, func() (Op, bool) { return OpAnd, p.isKw("AND") })
}

// binaryLeft parses a left-associative chain of operand (op operand)*.
func (p *parser) binaryLeft(operand func() (Expr, *Error), op func() (Op, bool)) (Expr, *Error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		o, ok := op()
		if !ok {
			return l, nil
		}
		at := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = &Binary{At: at, Op: o, L: l, R: r}
	}
}

func (p *parser) not() (Expr, *Error) {
	if !p.isKw("NOT") {
		return p.comparison()
	}
	at := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	return &Unary{At: at, Op: OpNot, X: x}, nil
}

var comparisonOps = map[string]Op{"=": OpEq, "!=": OpNe, "<>": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

func (p *parser) comparison() (Expr, *Error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	if p.isKw("IN") || p.isKw("NIN") {
		return p.in(l)
	}
	op, ok := comparisonOps[p.tok.text]
	if !ok || p.tok.kind != tkPunct {
		return l, nil
	}
	at := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	r, err := p.additive()
	if err != nil {
		return nil, err
	}
	return &Binary{At: at, Op: op, L: l, R: r}, nil
}

func (p *parser) in(x Expr) (Expr, *Error) {
	n := &In{At: p.tok.pos, X: x, Not: p.isKw("NIN")}
	kw := strings.ToUpper(p.tok.text)
	if err := p.advance(); err != nil {
		return nil, err
	}
	if !p.isPunct("[") {
		return nil, &Error{Pos: p.prev.pos, Msg: "expected '[' after " + kw + " (IN and NIN take a bracketed array such as ['a', 'b'])"}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	for {
		c, err := p.constant()
		if err != nil {
			return nil, err
		}
		n.List = append(n.List, c)
		if p.isPunct("]") {
			return n, p.advance()
		}
		if err := p.expectPunct(",", " or ']' in the array"); err != nil {
			return nil, err
		}
	}
}

// constant reads a literal inside an IN array.
func (p *parser) constant() (*Literal, *Error) {
	t := p.tok
	neg := false
	if p.isPunct("-") {
		neg = true
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	var v any
	switch {
	case p.tok.kind == tkNumber:
		v = p.tok.num
		if neg {
			v = -p.tok.num
		}
	case neg:
		return nil, &Error{Pos: t.pos, Msg: "expected a number after '-'"}
	case p.tok.kind == tkString:
		v = p.tok.text
	case p.tok.kind == tkName:
		lit, ok := keywordConstant(p.tok.text)
		if !ok {
			return nil, &Error{Pos: p.tok.pos, Msg: "expected a constant in the array, found " + p.tok.describe()}
		}
		v = lit
	default:
		return nil, &Error{Pos: p.prev.pos, Msg: "expected a constant after " + p.prev.describe()}
	}
	return &Literal{At: t.pos, Value: v}, p.advance()
}

// keywordConstant resolves true, false, null and undefined.
func keywordConstant(s string) (any, bool) {
	switch strings.ToUpper(s) {
	case "TRUE":
		return true, true
	case "FALSE":
		return false, true
	case "NULL":
		return nil, true
	case "UNDEFINED":
		return Undefined, true
	}
	return nil, false
}

func (p *parser) additive() (Expr, *Error) {
	return p.binaryLeft(p.multiplicative, func() (Op, bool) {
		switch {
		case p.isPunct("+"):
			return OpAdd, true
		case p.isPunct("-"):
			return OpSub, true
		}
		return 0, false
	})
}

func (p *parser) multiplicative() (Expr, *Error) {
	return p.binaryLeft(p.unary, func() (Op, bool) {
		switch {
		case p.isPunct("*"):
			return OpMul, true
		case p.isPunct("/"):
			return OpDiv, true
		case p.isPunct("%"):
			return OpMod, true
		}
		return 0, false
	})
}

func (p *parser) unary() (Expr, *Error) {
	if !p.isPunct("-") {
		return p.primary()
	}
	at := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	if lit, ok := x.(*Literal); ok {
		if f, ok := lit.Value.(float64); ok {
			return &Literal{At: at, Value: -f}, nil
		}
	}
	return &Unary{At: at, Op: OpNeg, X: x}, nil
}

func (p *parser) primary() (Expr, *Error) {
	t := p.tok
	switch {
	case t.kind == tkNumber:
		return &Literal{At: t.pos, Value: t.num}, p.advance()
	case t.kind == tkString:
		return &Literal{At: t.pos, Value: t.text}, p.advance()
	case t.kind == tkName && isKeyword(t.text):
		if v, ok := keywordConstant(t.text); ok {
			return &Literal{At: t.pos, Value: v}, p.advance()
		}
	case t.kind == tkName || t.kind == tkEscaped:
		return p.pathOrCall()
	case p.isPunct("("):
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return e, p.expectPunct(")", " to close the '(' at "+t.pos.String())
	case p.isPunct("["):
		return nil, &Error{Pos: t.pos, Msg: "arrays are allowed only after IN or NIN"}
	}
	if p.prev.kind == tkEOF { // nothing consumed yet
		return nil, p.errHere("a value")
	}
	return nil, &Error{Pos: p.prev.pos, Msg: "expected a value after " + p.prev.describe()}
}

// pathOrCall reads name(.name)* or a function call name(args).
func (p *parser) pathOrCall() (Expr, *Error) {
	t := p.tok
	first, err := p.name("a property name")
	if err != nil {
		return nil, err
	}
	if t.kind == tkName && p.isPunct("(") {
		return p.call(t)
	}
	path := &Path{At: t.pos, Segments: []string{first}}
	for p.isPunct(".") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		seg, err := p.name("a property name after '.'")
		if err != nil {
			return nil, err
		}
		path.Segments = append(path.Segments, seg)
	}
	return path, nil
}

func (p *parser) call(name token) (Expr, *Error) {
	f := Func(strings.ToUpper(name.text))
	arity, ok := funcArity[f]
	if !ok {
		return nil, &Error{Pos: name.pos, Msg: "unknown function '" + name.text + "'"}
	}
	if err := p.advance(); err != nil { // '('
		return nil, err
	}
	c := &Call{At: name.pos, Func: f}
	for !p.isPunct(")") {
		if len(c.Args) > 0 {
			if err := p.expectPunct(",", " or ')' in the arguments of "+string(f)); err != nil {
				return nil, err
			}
		}
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.Args = append(c.Args, a)
	}
	if len(c.Args) != arity {
		return nil, &Error{Pos: name.pos, Msg: string(f) + " takes " + plural(arity, "argument") + ", found " + plural(len(c.Args), "")}
	}
	return c, p.advance()
}

func plural(n int, noun string) string {
	s := []string{"no", "one", "two"}[min(n, 2)]
	if n > 2 {
		s = "more"
	}
	if noun == "" {
		return s
	}
	if n == 1 {
		return s + " " + noun
	}
	return s + " " + noun + "s"
}
