// Command hub runs the embedded IoT-Hub-compatible server (pkg/hub): the
// HTTPS REST API and the MQTT/TLS device endpoint, with state in a data
// directory.
//
// On first start it creates a CA, a server certificate and the five
// standard shared access policies in the data directory and prints where
// the CA file and the service connection string are. Policy keys can be
// given as JSON ({"iothubowner":{"primaryKey":"..."},...}) in a file
// (--policy-keys-file, e.g. a mounted Kubernetes Secret) or in the
// HUB_POLICY_KEYS environment variable, so that a deployment is
// reproducible.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/twinsync/twinsync/pkg/hub"
)

// policyKeysEnv names the environment variable holding policy keys JSON.
const policyKeysEnv = "HUB_POLICY_KEYS"

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// options are the command-line settings.
type options struct {
	cfg            hub.Config
	policyKeysFile string
	exportDir      string
	logLevel       string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	fs.StringVar(&o.cfg.Hostname, "hostname", "localhost", "hub name used in connection strings, SAS scopes and MQTT user names (may carry :port)")
	fs.StringVar(&o.cfg.HTTPSAddr, "https-addr", ":8443", "HTTPS REST listen address (the Node service SDK always dials :443)")
	fs.StringVar(&o.cfg.MQTTAddr, "mqtt-addr", ":8883", "MQTT over TLS listen address")
	fs.StringVar(&o.cfg.DataDir, "data-dir", "hub-data", "directory for the store, CA, server certificate and policies")
	fs.BoolVar(&o.cfg.InMemory, "in-memory", false, "keep everything in memory and write nothing to the data directory")
	fs.Var((*stringList)(&o.cfg.SANs), "san", "extra DNS name or IP for the server certificate (repeatable, comma-separated)")
	fs.StringVar(&o.policyKeysFile, "policy-keys-file", "", "JSON file with policy keys (overrides stored keys); also $"+policyKeysEnv)
	fs.StringVar(&o.exportDir, "export-dir", "", "directory to write ca.pem and the service connection string to (default: the data directory; none with --in-memory)")
	fs.StringVar(&o.cfg.Throttling.Tier, "tier", "", "simulate IoT Hub throttling of this tier (F1, S1, S2, S3, B1, B2, B3); off when empty")
	fs.IntVar(&o.cfg.Throttling.Units, "units", 1, "number of units of --tier")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	keys, err := readPolicyKeys(o.policyKeysFile, os.Getenv(policyKeysEnv))
	if err != nil {
		return nil, err
	}
	o.cfg.PolicyKeys = keys
	if o.exportDir == "" && !o.cfg.InMemory {
		o.exportDir = o.cfg.DataDir
	}
	return o, nil
}

// readPolicyKeys reads policy keys from a file or, failing that, from the
// environment variable's value.
func readPolicyKeys(path, env string) (hub.PolicyKeys, error) {
	var data []byte
	switch {
	case path != "":
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	case env != "":
		data = []byte(env)
	default:
		return nil, nil
	}
	return hub.ParsePolicyKeys(data)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hub:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o.cfg.Logger = log

	h, err := hub.New(o.cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := export(h, o.exportDir); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down")
	return h.Close()
}

// export writes the CA certificate and the iothubowner connection string
// to dir and prints where they are. The connection string itself is never
// printed: it is a secret.
func export(h *hub.Hub, dir string) error {
	fmt.Printf("hub %s: HTTPS on %s, MQTT on %s\n", h.Hostname(), h.HTTPSAddr(), h.MQTTAddr())
	if dir == "" {
		fmt.Println("in memory: CA and connection string are not written (use --export-dir)")
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, h.CACertPEM(), 0o644); err != nil {
		return err
	}
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		return err
	}
	csPath := filepath.Join(dir, "service-connection-string")
	if err := os.WriteFile(csPath, []byte(cs+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("CA certificate: %s\n", caPath)
	fmt.Printf("service connection string (iothubowner): %s\n", csPath)
	return nil
}
