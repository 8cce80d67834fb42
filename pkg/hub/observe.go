package hub

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// Request is a REST request as the hub received it, for tests that compare
// what different clients put on the wire. The Authorization value is
// reduced to its scheme and field names; the signature never leaves the
// hub.
type Request struct {
	Method   string
	Path     string // URL path, percent-encoding as sent
	RawQuery string
	Header   http.Header
	Body     []byte
}

// observe wraps the REST handler so that every request is reported to fn
// before it is served.
func observe(next http.Handler, fn func(Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			writeError(w, errArgumentInvalid("The request body could not be read."))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		header := r.Header.Clone()
		if auth := header.Get("Authorization"); auth != "" {
			header.Set("Authorization", redactAuthorization(auth))
		}
		fn(Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: header, Body: body})
		next.ServeHTTP(w, r)
	})
}

// redactAuthorization keeps the scheme and the token's field names in
// their order (e.g. "SharedAccessSignature sr&sig&skn&se") and drops every
// value.
func redactAuthorization(v string) string {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok {
		return "<redacted>"
	}
	var names []string
	for _, field := range strings.Split(rest, "&") {
		name, _, _ := strings.Cut(field, "=")
		names = append(names, name)
	}
	return scheme + " " + strings.Join(names, "&")
}
