package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitRefused = 3
)

const envPrefix = "DEVICESIM_"

// Secret file names, as a DeviceTwin with provisioning.createIdentity
// writes them.
const (
	secretConnectionString = "connectionString"
	secretCA               = "ca.crt"
)

// options is the parsed configuration.
type options struct {
	connectionStringFile string
	secretDir            string
	caFile               string
	reports              reportFlag
	reportFile           string
	ackDesired           bool
	logPatches           bool
	logFormat            string
	logLevel             slog.Level
	healthAddr           string
	tokenLifetime        time.Duration
	requestTimeout       time.Duration
	connectTimeout       time.Duration

	// Load mode.
	devices                      int
	registryConnectionStringFile string
	devicePrefix                 string
	gatewayHost                  string
	interval                     time.Duration
	duration                     time.Duration
	connectConcurrency           int
	registryLimits               string

	// Resolved from the above and the environment.
	connectionString         string
	registryConnectionString string
	limits                   iothub.Limits
	rootCAs                  *x509.CertPool
	reported                 map[string]any
}

// parseOptions reads flags, then environment variables for flags not given
// on the command line, then the secret files.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("devicesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.connectionStringFile, "connection-string-file", "", "file holding the device connection string (else $DEVICESIM_CONNECTION_STRING or <secret-dir>/connectionString)")
	fs.StringVar(&o.secretDir, "secret-dir", "", "directory of a mounted device Secret: connectionString and optional ca.crt")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM file of CAs that sign the hub's certificate (else <secret-dir>/ca.crt if present, else the system roots)")
	fs.Var(&o.reports, "report", "reported property key=value to send on connect; repeatable; value parsed as JSON when it is JSON, else a string; dots nest keys")
	fs.StringVar(&o.reportFile, "report-file", "", "JSON object of reported properties to send on connect (--report values win)")
	fs.BoolVar(&o.ackDesired, "ack-desired", false, "echo every desired property into reported properties")
	fs.BoolVar(&o.logPatches, "log-patches", false, "log the content of each desired patch, not only its version and keys")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&o.healthAddr, "health-addr", ":8080", "address of the /healthz and /readyz endpoint; empty disables it")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", time.Hour, "lifetime of each SAS token; renewed by reconnecting before expiry")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 30*time.Second, "timeout of each twin request")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 0, "give up if the first connection takes longer; 0 waits for ever")
	fs.IntVar(&o.devices, "devices", 0, "load mode: simulate this many devices (needs a registry connection string)")
	fs.StringVar(&o.registryConnectionStringFile, "registry-connection-string-file", "", "load mode: file holding a service connection string with registry write rights (else $DEVICESIM_REGISTRY_CONNECTION_STRING)")
	fs.StringVar(&o.devicePrefix, "device-prefix", "devicesim-", "load mode: device ids are this prefix plus a number")
	fs.StringVar(&o.gatewayHost, "gateway-host", "", "host[:port] to dial for MQTT instead of HostName (GatewayHostName)")
	fs.DurationVar(&o.interval, "interval", time.Second, "load mode: reporting interval per device; 0 reports back to back")
	fs.DurationVar(&o.duration, "duration", 0, "load mode: measure for this long, then print the results and exit; 0 runs until a signal")
	fs.IntVar(&o.connectConcurrency, "connect-concurrency", 64, "load mode: devices created and connected in parallel")
	fs.StringVar(&o.registryLimits, "registry-limits", "none", "load mode: client-side rate limit of device creation, none or tier:units of a real hub (S1:1 allows 100 a minute)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := applyEnv(fs, getenv); err != nil {
		return nil, err
	}
	if err := o.resolve(getenv); err != nil {
		return nil, err
	}
	return o, nil
}

// applyEnv sets each flag not given on the command line from
// DEVICESIM_<NAME>, if set. For --report the variable holds comma-separated
// key=value pairs.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if v == "" {
			return
		}
		values := []string{v}
		if f.Name == "report" {
			values = strings.Split(v, ",")
		}
		for _, v := range values {
			if e := fs.Set(f.Name, strings.TrimSpace(v)); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
				return
			}
		}
	})
	return err
}

// resolve reads the secret files and checks the combination of options.
func (o *options) resolve(getenv func(string) string) error {
	if o.logFormat != "text" && o.logFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, not %q", o.logFormat)
	}
	if err := o.resolveCA(); err != nil {
		return err
	}
	var err error
	if o.reported, err = o.reportedProperties(); err != nil {
		return err
	}
	if o.devices > 0 {
		if o.devices > 1_000_000 {
			return errors.New("--devices may be at most 1000000 (IoT Hub's limit per hub)")
		}
		if o.connectConcurrency < 1 {
			return errors.New("--connect-concurrency must be at least 1")
		}
		if o.limits, err = parseLimits(o.registryLimits); err != nil {
			return err
		}
		o.registryConnectionString, err = secretFrom("registry connection string", o.registryConnectionStringFile, getenv(envPrefix+"REGISTRY_CONNECTION_STRING"), "")
		return err
	}
	var inDir string
	if o.secretDir != "" {
		inDir = filepath.Join(o.secretDir, secretConnectionString)
	}
	o.connectionString, err = secretFrom("device connection string", o.connectionStringFile, getenv(envPrefix+"CONNECTION_STRING"), inDir)
	return err
}

// secretFrom returns the first of: the file, the environment value, the
// file in the secret dir. Errors name the source, never the content.
func secretFrom(what, file, env, dirFile string) (string, error) {
	read := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the %s: %w", what, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("the %s file %s is empty", what, path)
		}
		return s, nil
	}
	switch {
	case file != "":
		return read(file)
	case env != "":
		return strings.TrimSpace(env), nil
	case dirFile != "":
		return read(dirFile)
	}
	return "", fmt.Errorf("no %s: give a file flag, the environment variable or --secret-dir", what)
}

// resolveCA loads --ca-file, else <secret-dir>/ca.crt when the Secret has
// one; nil means the system roots.
func (o *options) resolveCA() error {
	path := o.caFile
	if path == "" && o.secretDir != "" {
		candidate := filepath.Join(o.secretDir, secretCA)
		if _, err := os.Stat(candidate); err == nil {
			path = candidate
		}
	}
	if path == "" {
		return nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("the CA file %s holds no PEM certificate", path)
	}
	o.rootCAs = pool
	return nil
}

// reportedProperties merges --report-file and --report (the latter wins).
func (o *options) reportedProperties() (map[string]any, error) {
	props := map[string]any{}
	if o.reportFile != "" {
		b, err := os.ReadFile(o.reportFile)
		if err != nil {
			return nil, fmt.Errorf("reading --report-file: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&props); err != nil || props == nil {
			return nil, fmt.Errorf("--report-file %s must hold a JSON object", o.reportFile)
		}
	}
	for _, kv := range o.reports {
		setPath(props, kv.path, kv.value)
	}
	return props, nil
}

// reportFlag collects repeated --report key=value flags.
type reportFlag []keyValue

type keyValue struct {
	path  []string
	value any
}

func (r *reportFlag) String() string {
	parts := make([]string, len(*r))
	for i, kv := range *r {
		parts[i] = strings.Join(kv.path, ".")
	}
	return strings.Join(parts, ",")
}

// Set parses key=value. The value is JSON when it parses as JSON (5, true,
// null, {"a":1}, "quoted"), else the literal string; dots in the key nest
// objects (IoT Hub keys cannot contain dots).
func (r *reportFlag) Set(s string) error {
	key, raw, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	path := strings.Split(key, ".")
	for _, p := range path {
		if p == "" {
			return fmt.Errorf("key %q has an empty segment", key)
		}
		if strings.HasPrefix(p, "$") {
			return fmt.Errorf("key %q: IoT Hub refuses keys starting with '$'", key)
		}
	}
	*r = append(*r, keyValue{path: path, value: parseValue(raw)})
	return nil
}

func parseValue(raw string) any {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if _, err := dec.Token(); err == io.EOF {
			return v
		}
	}
	return raw
}

// setPath sets m[path[0]][path[1]]... = v, creating objects on the way.
func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// newLogger builds the structured logger.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
