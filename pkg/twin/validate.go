package twin

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of IoT Hub twin documents (spec §4; the same constants edgeHub
// copies from IoT Hub).
const (
	// MaxKeyBytes is the longest key in UTF-8 bytes.
	MaxKeyBytes = 1024
	// MaxStringBytes is the longest string value in UTF-8 bytes.
	MaxStringBytes = 4096
	// MaxDepth is the deepest object nesting below a section root: a key
	// at path length MaxDepth may hold an object, one deeper may not.
	MaxDepth = 10
	// MaxSafeInteger and MinSafeInteger bound integer values (±2^52).
	MaxSafeInteger = 1<<52 - 1
	MinSafeInteger = -1 << 52
	// ArraysMinAPIVersion is the first service api-version that accepts
	// arrays in twins.
	ArraysMinAPIVersion = "2019-10-01"
)

// Options tune validation to the request being served.
type Options struct {
	// APIVersion is the request's api-version (query parameter or MQTT
	// user name). Arrays are refused below ArraysMinAPIVersion; the empty
	// string means the current version.
	APIVersion string
}

// arraysAllowed reports whether the api-version accepts array values.
// api-versions are dates, optionally with a "-preview" suffix, so they
// order as strings.
func (o Options) arraysAllowed() bool {
	return o.APIVersion == "" || o.APIVersion >= ArraysMinAPIVersion
}

// ValidateSection checks a complete section document (the tags, or the
// desired or reported values without $metadata/$version) against every
// IoT Hub limit: keys, depth, value types and sizes, integers, arrays,
// and the section size. It returns nil or an *Error. null values are
// refused, as in a PUT.
//
// Numbers should be json.Number (decode with UseNumber) so that integers
// are checked exactly; Go numbers are accepted too, and an integral
// float64 is checked as an integer.
func ValidateSection(section Section, doc map[string]any, opts Options) error {
	if err := validateTree(section, doc, opts, false); err != nil {
		return err
	}
	if size := Size(doc); size > section.MaxSize() {
		return sizeExceeded(section, section.MaxSize())
	}
	return nil
}

// ValidateSectionJSON is ValidateSection for a JSON object.
func ValidateSectionJSON(section Section, doc []byte, opts Options) error {
	obj, err := decodeObject(doc, section.Path())
	if err != nil {
		return err
	}
	return ValidateSection(section, obj, opts)
}

// ValidatePatch checks a merge patch for a section: the same per-key and
// per-value limits as ValidateSection, but null values (deletions) are
// allowed outside arrays. The section size depends on the document the
// patch applies to and is checked by the write methods.
func ValidatePatch(section Section, patch map[string]any, opts Options) error {
	return validateTree(section, patch, opts, true)
}

// validateTree walks the document in map order, which is fast; if it finds
// a problem it walks again in key order so the error reported is the same
// on every run.
func validateTree(section Section, doc map[string]any, opts Options, allowNull bool) error {
	var path [MaxDepth + 2]string // deep enough for any valid document
	v := validator{section: section, opts: opts, allowNull: allowNull, path: path[:0]}
	if v.object(doc, 1) == nil {
		return nil
	}
	v.sorted = true
	v.path = v.path[:0]
	if err := v.object(doc, 1); err != nil {
		return err
	}
	return nil
}

// validator holds the state of one validation walk.
type validator struct {
	section   Section
	opts      Options
	allowNull bool
	sorted    bool
	// path holds the keys (and "[i]" array indexes) leading to the value
	// being checked; joined only when reporting an error.
	path []string
}

// object checks the members of an object whose keys sit at depth.
func (v *validator) object(obj map[string]any, depth int) *Error {
	if v.sorted {
		for _, k := range sortedKeys(obj) {
			if err := v.member(k, obj[k], depth); err != nil {
				return err
			}
		}
		return nil
	}
	for k, child := range obj {
		if err := v.member(k, child, depth); err != nil {
			return err
		}
	}
	return nil
}

// member checks one key and its value.
func (v *validator) member(key string, value any, depth int) *Error {
	v.path = append(v.path, key)
	err := v.checkMember(key, value, depth)
	v.path = v.path[:len(v.path)-1]
	return err
}

// checkMember checks a member whose key is already on the path.
func (v *validator) checkMember(key string, value any, depth int) *Error {
	if err := v.key(key); err != nil {
		return err
	}
	if value == nil {
		if v.allowNull {
			return nil
		}
		return argumentInvalid(v.where(), "Value of Property or Tag cannot be null. Error in Property/Tag %s", v.where())
	}
	return v.value(key, value, depth)
}

// key checks a key's length and characters.
func (v *validator) key(key string) *Error {
	if len(key) > MaxKeyBytes {
		return argumentInvalid(v.where(), "Length of property name %s.. exceeds maximum length of %d", truncateKey(key), MaxKeyBytes)
	}
	if key == "" {
		return argumentInvalid(v.where(), "Property name cannot be empty. Error in Property/Tag %s", v.where())
	}
	for _, r := range key {
		if r == '.' || r == '$' || r == ' ' || unicode.IsControl(r) {
			return argumentInvalid(v.where(), "Property name %s contains invalid character %q", key, r)
		}
	}
	return nil
}

// value checks a non-null value found under key at depth.
func (v *validator) value(key string, value any, depth int) *Error {
	switch x := value.(type) {
	case string:
		if len(x) > MaxStringBytes {
			return argumentInvalid(v.where(), "Value associated with property name %s has length %d that exceeds maximum length of %d", key, len(x), MaxStringBytes)
		}
		return nil
	case bool:
		return nil
	case map[string]any:
		if depth > MaxDepth {
			return argumentInvalid(v.where(), "Nested depth of twin property exceeds %d. Error in Property/Tag %s", MaxDepth, v.where())
		}
		return v.object(x, depth+1)
	case []any:
		return v.array(key, x, depth)
	}
	if n, ok := numberText(value); ok {
		return v.number(key, n, value)
	}
	return v.unsupported(key)
}

// array checks an array value: allowed by the api-version, no null
// elements, each element within the value limits. Objects inside arrays
// count one nesting level, like an object value.
func (v *validator) array(key string, arr []any, depth int) *Error {
	if !v.opts.arraysAllowed() {
		return argumentInvalid(v.where(), "Property %s has an array value; arrays are not supported before api-version %s. Error in Property/Tag %s", key, ArraysMinAPIVersion, v.where())
	}
	for i, elem := range arr {
		v.path = append(v.path, "["+strconv.Itoa(i)+"]")
		var err *Error
		if elem == nil {
			err = argumentInvalid(v.where(), "Arrays cannot contain 'null' as value. Error in Property/Tag %s", v.where())
		} else {
			err = v.value(key, elem, depth)
		}
		v.path = v.path[:len(v.path)-1]
		if err != nil {
			return err
		}
	}
	return nil
}

// number checks that an integer lies within ±2^52. Only integer literals
// (no fraction, no exponent) are integers, as in IoT Hub's JSON parser. A
// Go float has lost its literal, so an integral one is treated as an
// integer.
func (v *validator) number(key string, n json.Number, raw any) *Error {
	switch f := raw.(type) {
	case float64:
		return v.integralFloat(key, f)
	case float32:
		return v.integralFloat(key, float64(f))
	}
	if strings.ContainsAny(string(n), ".eE") {
		if _, err := strconv.ParseFloat(string(n), 64); err != nil && !isRangeError(err) {
			return v.unsupported(key)
		}
		return nil
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	switch {
	case isRangeError(err):
		return v.outOfBound(key)
	case err != nil:
		return v.unsupported(key)
	case i < MinSafeInteger || i > MaxSafeInteger:
		return v.outOfBound(key)
	}
	return nil
}

// integralFloat range-checks a Go float that holds an integer.
func (v *validator) integralFloat(key string, f float64) *Error {
	if f == math.Trunc(f) && (f < MinSafeInteger || f > MaxSafeInteger) {
		return v.outOfBound(key)
	}
	return nil
}

// unsupported is the error for a value of a type twins cannot hold.
func (v *validator) unsupported(key string) *Error {
	return argumentInvalid(v.where(), "Property %s has a value of unsupported type. Valid types are integer, float, string, bool, null, array and nested object", key)
}

// outOfBound is the error for an integer outside ±2^52.
func (v *validator) outOfBound(key string) *Error {
	return argumentInvalid(v.where(), "Property %s has an out of bound value. Valid values are between %d and %d", key, MinSafeInteger, MaxSafeInteger)
}

// where returns the path of the value being checked from the twin root.
func (v *validator) where() string {
	var b strings.Builder
	b.WriteString(v.section.Path())
	for _, seg := range v.path {
		if !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// isRangeError reports whether err is strconv's out-of-range error.
func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// truncateKey shortens a long key for an error message, as IoT Hub does.
func truncateKey(key string) string {
	const keep = 10
	if len(key) <= keep {
		return key
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return key[:cut]
}

// Size returns a section's size as IoT Hub counts it against the section
// limit: for every member the UTF-8 length of its key plus the size of its
// value, where a string counts its UTF-8 bytes except control characters,
// a number 8, a boolean 4, an object the sum over its members and an array
// the sum over its elements. $metadata and $version are not part of the
// values and do not count.
func Size(doc map[string]any) int {
	total := 0
	for k, v := range doc {
		total += textSize(k) + valueSize(v)
	}
	return total
}

// valueSize returns the counted size of one value; null counts 0.
func valueSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 0
	case string:
		return textSize(x)
	case bool:
		return 4
	case map[string]any:
		return Size(x)
	case []any:
		total := 0
		for _, elem := range x {
			total += valueSize(elem)
		}
		return total
	}
	return 8
}

// textSize counts the UTF-8 bytes of s, leaving out C0 and C1 control
// characters.
func textSize(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f:
			n--
		case c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f:
			n -= 2 // U+0080..U+009F, the C1 controls
			i++
		}
	}
	return n
}
