package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinsync/twinsync/pkg/hub"
)

func TestParseFlags(t *testing.T) {
	key := hub.NewKey()
	keysFile := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keysFile, []byte(`{"iothubowner":{"primaryKey":"`+key+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		env     string
		check   func(t *testing.T, o *options)
		wantErr string
	}{
		{"defaults", nil, "", func(t *testing.T, o *options) {
			c := o.cfg
			if c.Hostname != "localhost" || c.HTTPSAddr != ":8443" || c.MQTTAddr != ":8883" || c.InMemory || c.Throttling.Tier != "" || o.exportDir != c.DataDir {
				t.Fatalf("%+v", o)
			}
		}, ""},
		{"everything", []string{"--hostname", "hub.example", "--https-addr", ":443", "--mqtt-addr", "127.0.0.1:1883",
			"--data-dir", "/d", "--in-memory", "--san", "a.example,10.0.0.1", "--san", "b.example", "--tier", "S1", "--units", "2"}, "",
			func(t *testing.T, o *options) {
				c := o.cfg
				if c.Hostname != "hub.example" || c.HTTPSAddr != ":443" || !c.InMemory || strings.Join(c.SANs, " ") != "a.example 10.0.0.1 b.example" ||
					c.Throttling != (hub.Throttling{Tier: "S1", Units: 2}) || o.exportDir != "" {
					t.Fatalf("%+v", o)
				}
			}, ""},
		{"keys from file", []string{"--policy-keys-file", keysFile}, "", func(t *testing.T, o *options) {
			if o.cfg.PolicyKeys["iothubowner"].PrimaryKey != key {
				t.Fatal("key not read")
			}
		}, ""},
		{"keys from environment", nil, `{"service":{"primaryKey":"` + key + `"}}`, func(t *testing.T, o *options) {
			if o.cfg.PolicyKeys["service"].PrimaryKey != key {
				t.Fatal("key not read")
			}
		}, ""},
		{"bad keys", nil, `{"service":{"primaryKey":"x"}}`, nil, "primary key"},
		{"stray argument", []string{"extra"}, "", nil, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(policyKeysEnv, c.env)
			o, err := parseFlags(c.args)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, o)
		})
	}
}
