package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokenKind int

const (
	tkEOF     tokenKind = iota
	tkName              // identifier or keyword
	tkEscaped           // [[name]]
	tkNumber
	tkString
	tkPunct // operators and punctuation; text holds the symbol
)

type token struct {
	kind tokenKind
	text string  // source text (names, punctuation) or decoded string value
	num  float64 // tkNumber
	pos  Pos
}

// describe names the token for "found ..." parts of error messages.
func (t token) describe() string {
	switch t.kind {
	case tkEOF:
		return "end of query"
	case tkString:
		return "a string"
	case tkNumber:
		return "a number"
	case tkEscaped:
		return "'[[" + t.text + "]]'"
	}
	return "'" + t.text + "'"
}

// lexer splits query text into tokens. It is hand-written because the
// language is small and errors must carry exact positions.
type lexer struct {
	src  string
	off  int
	line int
	col  int
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) pos() Pos { return Pos{Line: l.line, Column: l.col} }

func (l *lexer) peekByte(ahead int) byte {
	if l.off+ahead < len(l.src) {
		return l.src[l.off+ahead]
	}
	return 0
}

// advance consumes one rune and keeps line and column up to date.
func (l *lexer) advance() rune {
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

func (l *lexer) skipSpace() {
	for l.off < len(l.src) {
		r, _ := utf8.DecodeRuneInString(l.src[l.off:])
		if !unicode.IsSpace(r) {
			return
		}
		l.advance()
	}
}

func isNameStart(r rune) bool { return r == '_' || r == '$' || unicode.IsLetter(r) }
func isNamePart(r rune) bool  { return isNameStart(r) || unicode.IsDigit(r) }

// isPlainName reports whether s can be written without [[...]]: a name that
// is not a keyword.
func isPlainName(s string) bool {
	if s == "" || isKeyword(s) {
		return false
	}
	for i, r := range s {
		if r == utf8.RuneError || (i == 0 && !isNameStart(r)) || !isNamePart(r) {
			return false
		}
	}
	return true
}

var keywords = map[string]bool{
	"SELECT": true, "TOP": true, "FROM": true, "WHERE": true, "GROUP": true,
	"BY": true, "AS": true, "AND": true, "OR": true, "NOT": true, "IN": true,
	"NIN": true, "TRUE": true, "FALSE": true, "NULL": true, "UNDEFINED": true,
}

func isKeyword(s string) bool { return keywords[strings.ToUpper(s)] }

// next returns the next token or a positioned error.
func (l *lexer) next() (token, *Error) {
	l.skipSpace()
	start := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tkEOF, pos: start}, nil
	}
	c := l.src[l.off]
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	switch {
	case c == '[' && l.peekByte(1) == '[':
		return l.escapedName(start)
	case c == '\'' || c == '"':
		return l.str(start)
	case c >= '0' && c <= '9':
		return l.number(start)
	case isNameStart(r):
		begin := l.off
		for l.off < len(l.src) {
			r, _ := utf8.DecodeRuneInString(l.src[l.off:])
			if !isNamePart(r) {
				break
			}
			l.advance()
		}
		return token{kind: tkName, text: l.src[begin:l.off], pos: start}, nil
	}
	for _, p := range []string{"!=", "<>", "<=", ">="} {
		if strings.HasPrefix(l.src[l.off:], p) {
			l.advance()
			l.advance()
			return token{kind: tkPunct, text: p, pos: start}, nil
		}
	}
	if strings.IndexByte("()[],.*+-/%=<>", c) >= 0 {
		l.advance()
		return token{kind: tkPunct, text: string(c), pos: start}, nil
	}
	return token{}, &Error{Pos: start, Msg: "unexpected character " + strconv.QuoteRune(r)}
}

func (l *lexer) escapedName(start Pos) (token, *Error) {
	l.advance()
	l.advance()
	end := strings.Index(l.src[l.off:], "]]")
	if end < 0 {
		return token{}, &Error{Pos: start, Msg: "unterminated [[ name: expected ']]'"}
	}
	name := l.src[l.off : l.off+end]
	if name == "" {
		return token{}, &Error{Pos: start, Msg: "expected a name inside [[ ]]"}
	}
	for l.off < len(l.src) && l.src[l.off:l.off+2] != "]]" {
		l.advance()
	}
	l.advance()
	l.advance()
	return token{kind: tkEscaped, text: name, pos: start}, nil
}

func (l *lexer) number(start Pos) (token, *Error) {
	begin := l.off
	if l.src[l.off] == '0' && (l.peekByte(1) == 'x' || l.peekByte(1) == 'X') {
		l.advance()
		l.advance()
		for isHex(l.peekByte(0)) {
			l.advance()
		}
		digits := l.src[begin+2 : l.off]
		v, err := strconv.ParseUint(digits, 16, 64)
		if digits == "" || err != nil || l.followsName() {
			return token{}, &Error{Pos: start, Msg: "invalid hexadecimal number " + strconv.Quote(l.src[begin:l.off])}
		}
		return token{kind: tkNumber, text: l.src[begin:l.off], num: float64(v), pos: start}, nil
	}
	l.digits()
	if l.peekByte(0) == '.' && isDigit(l.peekByte(1)) {
		l.advance()
		l.digits()
	}
	if b := l.peekByte(0); b == 'e' || b == 'E' {
		save := *l
		l.advance()
		if b := l.peekByte(0); b == '+' || b == '-' {
			l.advance()
		}
		if !isDigit(l.peekByte(0)) {
			*l = save
		} else {
			l.digits()
		}
	}
	text := l.src[begin:l.off]
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || l.followsName() {
		return token{}, &Error{Pos: start, Msg: "invalid number " + strconv.Quote(text)}
	}
	return token{kind: tkNumber, text: text, num: v, pos: start}, nil
}

// followsName reports whether a name character follows directly, as in 12ab.
func (l *lexer) followsName() bool {
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return l.off < len(l.src) && isNamePart(r)
}

func (l *lexer) digits() {
	for isDigit(l.peekByte(0)) {
		l.advance()
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
func isHex(b byte) bool {
	return isDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

// str reads a '...' or "..." literal with the escapes \' \" \\ \/ \b \f \n
// \r \t and \uXXXX (surrogate pairs combined).
func (l *lexer) str(start Pos) (token, *Error) {
	quote := l.src[l.off]
	l.advance()
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return token{}, &Error{Pos: start, Msg: "unterminated string: expected closing " + string(quote)}
		}
		c := l.src[l.off]
		switch {
		case c == quote:
			l.advance()
			return token{kind: tkString, text: b.String(), pos: start}, nil
		case c == '\\':
			if err := l.escape(&b); err != nil {
				return token{}, err
			}
		default:
			// Copy raw bytes so that invalid UTF-8 survives a print/parse cycle.
			_, size := utf8.DecodeRuneInString(l.src[l.off:])
			b.WriteString(l.src[l.off : l.off+size])
			l.advance()
		}
	}
}

var simpleEscapes = map[byte]string{
	'\'': "'", '"': "\"", '\\': "\\", '/': "/", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t",
}

func (l *lexer) escape(b *strings.Builder) *Error {
	at := l.pos()
	l.advance()
	c := l.peekByte(0)
	if s, ok := simpleEscapes[c]; ok && l.off < len(l.src) {
		l.advance()
		b.WriteString(s)
		return nil
	}
	if c != 'u' {
		return &Error{Pos: at, Msg: `invalid escape in string: expected one of \' \" \\ \/ \b \f \n \r \t \uXXXX`}
	}
	l.advance()
	r, ok := l.hex4()
	if !ok {
		return &Error{Pos: at, Msg: `invalid \u escape: expected four hexadecimal digits`}
	}
	if utf16IsHighSurrogate(r) && l.peekByte(0) == '\\' && l.peekByte(1) == 'u' {
		save := *l
		l.advance()
		l.advance()
		if low, ok := l.hex4(); ok && low >= 0xDC00 && low <= 0xDFFF {
			r = (r-0xD800)<<10 + (low - 0xDC00) + 0x10000
		} else {
			*l = save
		}
	}
	b.WriteRune(r) // lone surrogates become U+FFFD
	return nil
}

func utf16IsHighSurrogate(r rune) bool { return r >= 0xD800 && r <= 0xDBFF }

func (l *lexer) hex4() (rune, bool) {
	if l.off+4 > len(l.src) {
		return 0, false
	}
	v, err := strconv.ParseUint(l.src[l.off:l.off+4], 16, 32)
	if err != nil {
		return 0, false
	}
	for range 4 {
		l.advance()
	}
	return rune(v), true
}

// formatConstant prints a literal value so that the lexer reads it back.
func formatConstant(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		if v {
			return "true"
		}
		return "false"
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return quoteString(v)
	}
	if v == Undefined {
		return "undefined"
	}
	return "undefined"
}

// quoteString writes s in single quotes, escaping only what must be escaped
// and keeping other bytes (even invalid UTF-8) as they are.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&0xF])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
