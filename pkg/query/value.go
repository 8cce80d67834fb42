package query

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// undefinedValue is the type of Undefined.
type undefinedValue struct{}

// String prints the value as the query language writes it.
func (undefinedValue) String() string { return "undefined" }

// Undefined is the value of a missing property and of any expression over
// operands of the wrong type. It never compares true, not even to itself,
// and it is left out of result rows.
var Undefined any = undefinedValue{}

// kind orders JSON types for MIN, MAX and GROUP BY: undefined < null <
// bool < number < string < array < object.
type kind int

const (
	kindUndefined kind = iota
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// normalize maps the numeric types a decoder may produce (json.Number,
// integers, float32) to float64 and leaves other values alone. Numbers that
// do not fit a float64 are undefined.
func normalize(v any) any {
	switch n := v.(type) {
	case float64, string, bool, nil, map[string]any, []any:
		return v
	case json.Number:
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) {
			return Undefined
		}
		return f
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case int32:
		return float64(n)
	case uint64:
		return float64(n)
	case uint32:
		return float64(n)
	case float32:
		return float64(n)
	}
	return v
}

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case float64:
		return kindNumber
	case string:
		return kindString
	case []any:
		return kindArray
	case map[string]any:
		return kindObject
	}
	return kindUndefined
}

func isPrimitive(k kind) bool {
	return k == kindNull || k == kindBool || k == kindNumber || k == kindString
}

// comparePrimitives compares two normalized values of the same primitive
// kind; ok is false when a comparison is not defined (different kinds,
// undefined, objects or arrays), which makes the comparison undefined.
func comparePrimitives(a, b any) (c int, ok bool) {
	ka, kb := kindOf(a), kindOf(b)
	if ka != kb || !isPrimitive(ka) {
		return 0, false
	}
	return compareSameKind(ka, a, b), true
}

// compareSameKind orders two values of kind k. Strings compare by bytes
// (ordinal, case-sensitive).
func compareSameKind(k kind, a, b any) int {
	switch k {
	case kindBool:
		ab, bb := a.(bool), b.(bool)
		switch {
		case ab == bb:
			return 0
		case !ab:
			return -1
		}
		return 1
	case kindNumber:
		af, bf := a.(float64), b.(float64)
		switch {
		case af < bf:
			return -1
		case af > bf:
			return 1
		}
		return 0
	case kindString:
		return strings.Compare(a.(string), b.(string))
	}
	return 0
}

// compareTotal orders any two normalized values: first by kind, then by
// value for primitives. Arrays and objects of the same kind compare by
// their JSON text so that the order is total and deterministic.
func compareTotal(a, b any) int {
	ka, kb := kindOf(a), kindOf(b)
	if ka != kb {
		if ka < kb {
			return -1
		}
		return 1
	}
	if isPrimitive(ka) {
		return compareSameKind(ka, a, b)
	}
	if ka == kindUndefined {
		return 0
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return strings.Compare(string(ja), string(jb))
}

// lookup follows path through nested objects; the result is normalized.
func lookup(doc map[string]any, path []string) any {
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
	return normalize(cur)
}

// pathKey encodes a path as a map key. Segments are length-prefixed: an
// escaped name in a query may hold any character, so no separator is safe.
func pathKey(path []string) string {
	var b strings.Builder
	for _, seg := range path {
		b.WriteString(strconv.Itoa(len(seg)))
		b.WriteByte(':')
		b.WriteString(seg)
	}
	b.WriteByte('|')
	return b.String()
}
