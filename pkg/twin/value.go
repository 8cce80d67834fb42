package twin

import (
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"
)

// decodeObject decodes a JSON object with numbers as json.Number, so that
// integers keep their exact value for the ±2^52 check and numbers keep the
// literal text the client sent. Anything other than one object is an
// ArgumentInvalid *Error whose Path is path.
func decodeObject(data []byte, path string) (map[string]any, error) {
	v, err := parseJSON(data)
	if err != nil {
		return nil, argumentInvalid(path, "The request body is not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, argumentInvalid(path, "The request body must be a JSON object")
	}
	return obj, nil
}

// cloneValue deep-copies a canonical JSON value.
func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneObject(x)
	case []any:
		out := make([]any, len(x))
		for i, child := range x {
			out[i] = cloneValue(child)
		}
		return out
	}
	return v
}

// cloneObject deep-copies a JSON object; nil stays nil.
func cloneObject(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

// EqualValues reports whether two JSON values are equal as JSON: numbers by
// numeric value (1 equals 1.0 and 1e0), objects by their key sets, arrays
// element by element. Values may be in canonical form or use Go numbers.
func EqualValues(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !EqualValues(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !EqualValues(x[i], y[i]) {
				return false
			}
		}
		return true
	case nil, string, bool:
		return a == b
	}
	xn, ok := numberText(a)
	if !ok {
		return false
	}
	yn, ok := numberText(b)
	if !ok {
		return false
	}
	return equalNumbers(xn, yn)
}

// numberText returns the JSON text of a number value.
func numberText(v any) (json.Number, bool) {
	if n, ok := v.(json.Number); ok {
		return n, true
	}
	return goNumberText(v)
}

// goNumberText returns the JSON text of a Go number, for documents built in
// Go or decoded without UseNumber. NaN and infinities are not JSON numbers.
func goNumberText(v any) (json.Number, bool) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false
		}
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64)), true
	case float32:
		return goNumberText(float64(x))
	case int, int8, int16, int32, int64:
		return json.Number(strconv.FormatInt(reflect.ValueOf(x).Int(), 10)), true
	case uint, uint8, uint16, uint32, uint64:
		return json.Number(strconv.FormatUint(reflect.ValueOf(x).Uint(), 10)), true
	}
	return "", false
}

// equalNumbers compares two JSON numbers by value. Equal texts are equal;
// otherwise both are compared exactly as big.Float values (float64 would
// merge distinct integers above 2^53).
func equalNumbers(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, _, errX := big.ParseFloat(string(a), 10, 256, big.ToNearestEven)
	y, _, errY := big.ParseFloat(string(b), 10, 256, big.ToNearestEven)
	if errX != nil || errY != nil {
		return false
	}
	return x.Cmp(y) == 0
}

// appendValue appends the JSON encoding of a canonical value, object keys
// sorted so that output is deterministic.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		return appendString(b, x)
	case json.Number:
		if x == "" {
			return append(b, '0')
		}
		return append(b, x...)
	case map[string]any:
		return appendObject(b, x, nil)
	case []any:
		b = append(b, '[')
		for i, child := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, child)
		}
		return append(b, ']')
	}
	// Not canonical: a hand-built document. Go numbers are written as
	// numbers; anything else encoding/json can encode is; a value that is
	// not JSON at all (never in a validated twin) is written as null rather
	// than failing the whole rendering.
	if n, ok := goNumberText(v); ok {
		return append(b, n...)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

// appendObject appends m as a JSON object with sorted keys; extra, when not
// nil, appends further members (already prefixed by the caller's comma
// handling: it receives whether a member was written before).
func appendObject(b []byte, m map[string]any, extra func(b []byte, first bool) []byte) []byte {
	b = append(b, '{')
	keys := sortedKeys(m)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendValue(b, m[k])
	}
	if extra != nil {
		b = extra(b, len(keys) == 0)
	}
	return append(b, '}')
}

// sortedKeys returns the keys of m in ascending order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Hand-written rather than
// json.Marshal because it runs for every key and string on the write path;
// it escapes what RFC 8259 requires plus U+2028/U+2029, and replaces invalid
// UTF-8 with U+FFFD as encoding/json does (no HTML escaping).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
