package device

import (
	"strings"
	"testing"
)

func TestParseResponseTopic(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		want    response
		wantErr string
	}{
		{name: "get", topic: "$iothub/twin/res/200/?$rid=7", want: response{status: 200, rid: "7"}},
		{name: "reported with version", topic: "$iothub/twin/res/204/?$rid=99fcc526-224c&$version=12", want: response{status: 204, rid: "99fcc526-224c", version: 12}},
		{name: "no slash before query", topic: "$iothub/twin/res/429?$rid=a1", want: response{status: 429, rid: "a1"}},
		{name: "version first", topic: "$iothub/twin/res/204/?$version=3&$rid=x", want: response{status: 204, rid: "x", version: 3}},
		{name: "not a response", topic: "$iothub/twin/PATCH/properties/desired/?$version=1", wantErr: "not a twin response"},
		{name: "status missing", topic: "$iothub/twin/res//?$rid=1", wantErr: "no valid status"},
		{name: "status not a number", topic: "$iothub/twin/res/ok/?$rid=1", wantErr: "no valid status"},
		{name: "rid missing", topic: "$iothub/twin/res/200/?$version=1", wantErr: "no $rid"},
		{name: "version malformed", topic: "$iothub/twin/res/204/?$rid=1&$version=x", wantErr: "malformed $version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseResponseTopic(tt.topic)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.want.status || got.rid != tt.want.rid || got.version != tt.want.version {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDesiredTopic(t *testing.T) {
	tests := []struct {
		topic       string
		isDesired   bool
		wantVersion int64
	}{
		{"$iothub/twin/PATCH/properties/desired/?$version=3", true, 3},
		{"$iothub/twin/PATCH/properties/desired?$version=4", true, 4},
		{"$iothub/twin/PATCH/properties/desired/", true, 0},
		{"$iothub/twin/PATCH/properties/reported/?$rid=1", false, 0},
		{"$iothub/twin/res/200/?$rid=1", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			if got := isDesiredTopic(tt.topic); got != tt.isDesired {
				t.Fatalf("isDesiredTopic = %v, want %v", got, tt.isDesired)
			}
			if got := desiredTopicVersion(tt.topic); got != tt.wantVersion {
				t.Fatalf("desiredTopicVersion = %d, want %d", got, tt.wantVersion)
			}
		})
	}
}

func TestUserNameAndTopics(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"user name", userName("myhub.azure-devices.net", "dev1", "twinsync-device/0.1.0 (go1.26; linux; amd64)"),
			"myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=twinsync-device%2F0.1.0%20%28go1.26%3B%20linux%3B%20amd64%29"},
		{"module user name keeps host port", userName("localhost:8883", "dev1/mod1", "x"),
			"localhost:8883/dev1/mod1/?api-version=2021-04-12&DeviceClientType=x"},
		{"get topic", getTopic("5"), "$iothub/twin/GET/?$rid=5"},
		{"reported topic", reportedTopic("6"), "$iothub/twin/PATCH/properties/reported/?$rid=6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
