package hub

import (
	"strings"
	"time"

	"github.com/twinsync/twinsync/pkg/twin"
)

// applyServiceWrite applies a service PATCH (replace false) or PUT body to
// t and returns the desired notification to send, if any.
func applyServiceWrite(t *twin.Twin, body []byte, replace bool, now time.Time, apiVersion string) (*twin.DesiredNotification, error) {
	opts := twin.Options{APIVersion: apiVersion}
	if replace {
		return t.ReplaceService(body, now, opts)
	}
	return t.PatchService(body, now, opts)
}

// usernameAPIVersion extracts api-version from an MQTT user name
// ("host/id/?api-version=2021-04-12&..." or "host/id/api-version=...").
func usernameAPIVersion(username []byte) string {
	s := string(username)
	i := strings.Index(s, "api-version=")
	if i < 0 {
		return ""
	}
	v := s[i+len("api-version="):]
	if j := strings.IndexByte(v, '&'); j >= 0 {
		v = v[:j]
	}
	return v
}
