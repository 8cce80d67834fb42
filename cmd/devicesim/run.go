package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/twinsync/twinsync/pkg/device"
)

// version is the simulator's version, in user agents.
const version = "0.1.0"

// run is the whole program; main only adds signals and os.Exit, so tests
// can check exit codes and output in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "devicesim: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, o.logFormat, o.logLevel)
	if o.devices > 0 {
		return runLoad(ctx, o, log, stdout, stderr)
	}
	return runDevice(ctx, o, log, stderr)
}

// runDevice is single-device mode.
func runDevice(ctx context.Context, o *options, log *slog.Logger, stderr io.Writer) int {
	c, err := device.New(device.Config{
		ConnectionString: o.connectionString,
		RootCAs:          o.rootCAs,
		TokenLifetime:    o.tokenLifetime,
		RequestTimeout:   o.requestTimeout,
		ProductInfo:      "devicesim/" + version,
		Logger:           log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "devicesim: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	log = log.With("device", c.DeviceID())

	if o.healthAddr != "" {
		stopHealth, err := serveHealth(o.healthAddr, c, log)
		if err != nil {
			fmt.Fprintf(stderr, "devicesim: health endpoint: %v\n", err)
			return exitUsage
		}
		defer stopHealth()
	}

	connectCtx := ctx
	if o.connectTimeout > 0 {
		var cancel context.CancelFunc
		connectCtx, cancel = context.WithTimeout(ctx, o.connectTimeout)
		defer cancel()
	}
	if err := c.Connect(connectCtx); err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		return fail(stderr, log, "connecting to the hub", err)
	}

	sim := &simulator{client: c, log: log, ackDesired: o.ackDesired, logPatches: o.logPatches, acked: map[string]bool{}}
	if len(o.reported) > 0 {
		if err := sim.report(ctx, o.reported, "reported properties sent"); err != nil {
			return fail(stderr, log, "sending reported properties", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			return exitOK
		case p, ok := <-c.DesiredPatches():
			if !ok {
				return fail(stderr, log, "device client stopped", c.Err())
			}
			if err := sim.onDesired(ctx, p); err != nil && ctx.Err() == nil {
				// The hub refused the echo (too large, invalid): keep running.
				log.Error("acknowledging desired properties failed", "error", err)
			}
		}
	}
}

// fail reports a fatal error on stderr and returns the exit code for it.
func fail(stderr io.Writer, log *slog.Logger, what string, err error) int {
	code := exitFailure
	if errors.Is(err, device.ErrRefused) || errors.Is(err, device.ErrTLS) {
		code = exitRefused
	}
	log.Error(what+" failed", "error", err)
	fmt.Fprintf(stderr, "devicesim: %s: %v\n", what, err)
	return code
}

// simulator is the device app: it logs desired patches and optionally
// echoes them into reported properties.
type simulator struct {
	client     *device.Client
	log        *slog.Logger
	ackDesired bool
	logPatches bool
	acked      map[string]bool // top-level keys echoed so far
}

func (s *simulator) report(ctx context.Context, props map[string]any, msg string) error {
	version, err := s.client.UpdateReported(ctx, props)
	if err != nil {
		return err
	}
	s.log.Info(msg, "reportedVersion", version, "keys", keys(props))
	return nil
}

// onDesired logs a desired patch (the tutorial's output) and acknowledges it.
func (s *simulator) onDesired(ctx context.Context, p device.DesiredPatch) error {
	attrs := []any{"desiredVersion", p.Version, "full", p.Full, "keys", keys(p.Properties)}
	if s.logPatches {
		b, _ := json.Marshal(p.Properties)
		attrs = append(attrs, "patch", string(b))
	}
	s.log.Info("desired properties received", attrs...)
	if !s.ackDesired {
		return nil
	}
	ack := s.ackPatch(p)
	if len(ack) == 0 {
		return nil
	}
	return s.report(ctx, ack, "desired properties acknowledged")
}

// ackPatch echoes a patch as is (a null deletes the reported key too). A
// full document replaces: keys echoed before and now gone are deleted.
func (s *simulator) ackPatch(p device.DesiredPatch) map[string]any {
	ack := make(map[string]any, len(p.Properties))
	for k, v := range p.Properties {
		ack[k] = v
	}
	if p.Full {
		for k := range s.acked {
			if _, ok := p.Properties[k]; !ok {
				ack[k] = nil
			}
		}
	}
	for k, v := range ack {
		if v == nil {
			delete(s.acked, k)
		} else {
			s.acked[k] = true
		}
	}
	return ack
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// serveHealth serves /healthz (alive: the client has not stopped) and
// /readyz (connected). It returns a function that stops the server.
func serveHealth(addr string, c *device.Client, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-c.Done():
			http.Error(w, "device client stopped", http.StatusServiceUnavailable)
		default:
			_, _ = io.WriteString(w, "ok\n")
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.Connected() {
			http.Error(w, "not connected to the hub", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health endpoint stopped", "error", err)
		}
	}()
	log.Info("health endpoint listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
