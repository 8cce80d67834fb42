package iothub

import (
	"strings"
)

// ETagAny asks for an unconditional write. Conditional calls refuse an
// empty etag (ErrEmptyETag) so that "unconditional" is always a visible
// choice in the caller's code.
const ETagAny = "*"

// ifMatch returns the If-Match header for etag, quoted as the official SDKs
// quote it: the hub ignores an unquoted twin etag and refuses an unquoted
// one on device DELETE (spec §2.3). ETagAny becomes "*".
func ifMatch(etag string) (string, error) {
	switch {
	case etag == "":
		return "", ErrEmptyETag
	case len(etag) >= 2 && strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`):
		return etag, nil
	default:
		return `"` + etag + `"`, nil
	}
}

// escapeID percent-encodes a device or module id for a path segment exactly
// like JavaScript's encodeURIComponent, which the Node SDK uses; the
// standard url.PathEscape leaves ':', '@', '$', '&', '+', ',', ';' and '='
// as they are, and matching the official SDK byte for byte keeps both
// clients on the same hub routes.
func escapeID(id string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(id); i++ {
		if !uriUnreserved(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	b := make([]byte, 0, len(id)+2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if uriUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// uriUnreserved reports the bytes encodeURIComponent leaves alone.
func uriUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}
