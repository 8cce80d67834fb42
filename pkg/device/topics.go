package device

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Twin topics of IoT Hub's MQTT dialect (spec §5.2).
const (
	topicResponses       = "$iothub/twin/res/"
	topicResponsesFilter = "$iothub/twin/res/#"
	topicDesired         = "$iothub/twin/PATCH/properties/desired/"
	topicDesiredFilter   = "$iothub/twin/PATCH/properties/desired/#"
	topicGetPrefix       = "$iothub/twin/GET/?$rid="
	topicReportedPrefix  = "$iothub/twin/PATCH/properties/reported/?$rid="
)

// apiVersion is the api-version the current official device SDKs put in the
// MQTT user name.
const apiVersion = "2021-04-12"

func getTopic(rid string) string      { return topicGetPrefix + rid }
func reportedTopic(rid string) string { return topicReportedPrefix + rid }

// response is a parsed $iothub/twin/res/{status}/?$rid={rid}[&$version={n}].
type response struct {
	status  int
	rid     string
	version int64 // 0 when the topic carries none
	body    []byte
}

// parseResponseTopic parses a twin response topic. It accepts the topic with
// or without the '/' before '?', as both have been seen from hubs.
func parseResponseTopic(topic string) (response, error) {
	rest, ok := strings.CutPrefix(topic, topicResponses)
	if !ok {
		return response{}, fmt.Errorf("not a twin response topic: %q", topic)
	}
	statusText, query, _ := strings.Cut(rest, "?")
	statusText = strings.TrimSuffix(statusText, "/")
	status, err := strconv.Atoi(statusText)
	if err != nil || status < 100 || status > 999 {
		return response{}, fmt.Errorf("twin response topic %q has no valid status", topic)
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return response{}, fmt.Errorf("twin response topic %q has a malformed query: %w", topic, err)
	}
	r := response{status: status, rid: values.Get("$rid")}
	if r.rid == "" {
		return response{}, fmt.Errorf("twin response topic %q has no $rid", topic)
	}
	if v := values.Get("$version"); v != "" {
		if r.version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return response{}, fmt.Errorf("twin response topic %q has a malformed $version", topic)
		}
	}
	return r, nil
}

// desiredTopicVersion returns the $version of a desired notification topic
// ($iothub/twin/PATCH/properties/desired/?$version={n}), or 0 if absent. The
// body's $version is authoritative; this is the fallback.
func desiredTopicVersion(topic string) int64 {
	_, query, ok := strings.Cut(topic, "?")
	if !ok {
		return 0
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(values.Get("$version"), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// isDesiredTopic reports whether topic is a desired-property notification.
// The Node SDK accepts any topic starting with the desired prefix (with or
// without the trailing '/'); so does this client.
func isDesiredTopic(topic string) bool {
	return strings.HasPrefix(topic, strings.TrimSuffix(topicDesired, "/"))
}

// isResponseTopic reports whether topic is a twin response.
func isResponseTopic(topic string) bool { return strings.HasPrefix(topic, topicResponses) }

// userName builds the MQTT user name the official SDKs send:
// host/clientID/?api-version=...&DeviceClientType=<encoded product info>.
func userName(host, clientID, productInfo string) string {
	return host + "/" + clientID + "/?api-version=" + apiVersion +
		"&DeviceClientType=" + encodeURIComponent(productInfo)
}

// encodeURIComponent escapes like JavaScript's function of that name (spaces
// as %20, not '+'), which is what the Node SDK puts in the user name.
func encodeURIComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
