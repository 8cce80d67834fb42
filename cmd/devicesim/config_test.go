package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseOptions(t *testing.T) {
	dir := t.TempDir()
	csFile := writeFile(t, dir, "cs", "HostName=h;DeviceId=d;SharedAccessKey=a2V5\n")
	secretDir := t.TempDir()
	writeFile(t, secretDir, "connectionString", "HostName=s;DeviceId=d;SharedAccessKey=a2V5")
	reportFile := writeFile(t, dir, "report.json", `{"connectivity":"wifi","fw":{"v":1}}`)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, o *options)
		wantErr string
	}{
		{
			name: "file flag",
			args: []string{"--connection-string-file", csFile},
			check: func(t *testing.T, o *options) {
				if o.connectionString != "HostName=h;DeviceId=d;SharedAccessKey=a2V5" {
					t.Errorf("connection string not read from the file (trimmed)")
				}
			},
		},
		{
			name: "environment variable for the secret",
			env:  map[string]string{"DEVICESIM_CONNECTION_STRING": "HostName=e;DeviceId=d;SharedAccessKey=a2V5"},
			check: func(t *testing.T, o *options) {
				if !strings.HasPrefix(o.connectionString, "HostName=e;") {
					t.Errorf("connection string not taken from the environment")
				}
			},
		},
		{
			name: "secret dir without ca.crt uses system roots",
			args: []string{"--secret-dir", secretDir},
			check: func(t *testing.T, o *options) {
				if !strings.HasPrefix(o.connectionString, "HostName=s;") || o.rootCAs != nil {
					t.Errorf("secret dir not used as expected")
				}
			},
		},
		{
			name: "flags from the environment, command line wins",
			args: []string{"--connection-string-file", csFile, "--health-addr", "127.0.0.1:9"},
			env:  map[string]string{"DEVICESIM_ACK_DESIRED": "true", "DEVICESIM_HEALTH_ADDR": ":1", "DEVICESIM_REPORT": "a=1, b=x", "DEVICESIM_LOG_LEVEL": "debug"},
			check: func(t *testing.T, o *options) {
				if !o.ackDesired || o.healthAddr != "127.0.0.1:9" || o.logLevel.String() != "DEBUG" {
					t.Errorf("ack=%v health=%q level=%v", o.ackDesired, o.healthAddr, o.logLevel)
				}
				want := map[string]any{"a": json.Number("1"), "b": "x"}
				if !reflect.DeepEqual(o.reported, want) {
					t.Errorf("reported = %v, want %v", o.reported, want)
				}
			},
		},
		{
			name: "report file merged under report flags",
			args: []string{"--connection-string-file", csFile, "--report-file", reportFile, "--report", "connectivity=cellular", "--report", "fw.build=\"7\"", "--report", `loc={"plant":"Redmond43"}`},
			check: func(t *testing.T, o *options) {
				want := map[string]any{
					"connectivity": "cellular",
					"fw":           map[string]any{"v": json.Number("1"), "build": "7"},
					"loc":          map[string]any{"plant": "Redmond43"},
				}
				if !reflect.DeepEqual(o.reported, want) {
					t.Errorf("reported = %#v, want %#v", o.reported, want)
				}
			},
		},
		{
			name: "load mode reads the registry string",
			args: []string{"--devices", "3", "--interval", "10ms", "--registry-limits", "none"},
			env:  map[string]string{"DEVICESIM_REGISTRY_CONNECTION_STRING": "HostName=h;SharedAccessKeyName=p;SharedAccessKey=a2V5"},
			check: func(t *testing.T, o *options) {
				if o.devices != 3 || o.interval != 10*time.Millisecond || o.registryConnectionString == "" || o.limits != iothub.NoLimits {
					t.Errorf("load options not parsed: %+v", o)
				}
			},
		},
		{name: "no connection string", wantErr: "no device connection string"},
		{name: "missing file", args: []string{"--connection-string-file", filepath.Join(dir, "nope")}, wantErr: "reading the device connection string"},
		{name: "empty file", args: []string{"--connection-string-file", writeFile(t, dir, "empty", "\n")}, wantErr: "is empty"},
		{name: "bad report", args: []string{"--report", "novalue"}, wantErr: "want key=value"},
		{name: "dollar key", args: []string{"--report", "$version=1"}, wantErr: "'$'"},
		{name: "bad report file", args: []string{"--connection-string-file", csFile, "--report-file", csFile}, wantErr: "JSON object"},
		{name: "bad log format", args: []string{"--connection-string-file", csFile, "--log-format", "xml"}, wantErr: "text or json"},
		{name: "bad CA file", args: []string{"--connection-string-file", csFile, "--ca-file", csFile}, wantErr: "no PEM certificate"},
		{name: "bad env value", env: map[string]string{"DEVICESIM_DEVICES": "many"}, wantErr: "DEVICESIM_DEVICES"},
		{name: "bad registry limits", args: []string{"--devices", "2", "--registry-limits", "S9:1"}, env: map[string]string{"DEVICESIM_REGISTRY_CONNECTION_STRING": "x"}, wantErr: "S9"},
		{name: "load mode without registry string", args: []string{"--devices", "2"}, wantErr: "no registry connection string"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "a2V5") {
					t.Fatalf("error leaks a key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"cellular", "cellular"},
		{"5", json.Number("5")},
		{"true", true},
		{"null", nil},
		{`"5"`, "5"},
		{`{"a":[1]}`, map[string]any{"a": []any{json.Number("1")}}},
		{"1 2", "1 2"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := parseValue(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseValue(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	s1, _ := iothub.TierLimits(iothub.S1, 1)
	s3, _ := iothub.TierLimits(iothub.S3, 2)
	tests := []struct {
		in      string
		want    iothub.Limits
		wantErr bool
	}{
		{"none", iothub.NoLimits, false},
		{"", iothub.NoLimits, false},
		{"S1", s1, false},
		{"s3:2", s3, false},
		{"S1:x", iothub.Limits{}, true},
		{"S1:0", iothub.Limits{}, true},
		{"B9:1", iothub.Limits{}, true},
	}
	for _, tt := range tests {
		got, err := parseLimits(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseLimits(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
