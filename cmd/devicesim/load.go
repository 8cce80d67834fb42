package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twinsync/twinsync/pkg/device"
	"github.com/twinsync/twinsync/pkg/iothub"
)

// loadConfig is what a load run needs; cmd flags map onto it and the
// benchmark builds it directly.
type loadConfig struct {
	registryConnectionString string
	limits                   iothub.Limits
	rootCAs                  *x509.CertPool
	devices                  int
	devicePrefix             string
	gateway                  string
	interval                 time.Duration // 0: back to back
	duration                 time.Duration // 0: until ctx ends
	concurrency              int
	tokenLifetime            time.Duration
	requestTimeout           time.Duration
	log                      *slog.Logger
}

// loadResult is the outcome of a load run.
type loadResult struct {
	Devices       int
	ProvisionTime time.Duration // create or read every identity
	ConnectTime   time.Duration // all devices connected, from the first attempt
	ConnectP50    time.Duration // one device's connect time
	ConnectP99    time.Duration
	Measured      time.Duration // reporting window
	Patches       int64         // reported patches acknowledged by the hub
	Errors        int64
	Rate          float64 // Patches per second over Measured
	P50, P90, P99 time.Duration
	Max           time.Duration
	// ConnectCPU and ReportCPU are the process CPU time (user + system)
	// spent connecting and reporting; with an in-process hub they include
	// the hub's share.
	ConnectCPU, ReportCPU time.Duration
}

// cpuPerPatch is ReportCPU per acknowledged patch.
func (r *loadResult) cpuPerPatch() time.Duration {
	if r.Patches == 0 {
		return 0
	}
	return r.ReportCPU / time.Duration(r.Patches)
}

// runLoad is load mode: provision, connect, report, print the results.
func runLoad(ctx context.Context, o *options, log *slog.Logger, stdout, stderr io.Writer) int {
	res, err := loadTest(ctx, loadConfig{
		registryConnectionString: o.registryConnectionString,
		limits:                   o.limits,
		rootCAs:                  o.rootCAs,
		devices:                  o.devices,
		devicePrefix:             o.devicePrefix,
		gateway:                  o.gatewayHost,
		interval:                 o.interval,
		duration:                 o.duration,
		concurrency:              o.connectConcurrency,
		tokenLifetime:            o.tokenLifetime,
		requestTimeout:           o.requestTimeout,
		log:                      log,
	})
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // interrupted before the measurement began
		}
		return fail(stderr, log, "load test", err)
	}
	res.print(stdout)
	return exitOK
}

// loadTest provisions and connects cfg.devices devices, has each report on
// cfg.interval for cfg.duration (or until ctx ends) and measures.
func loadTest(ctx context.Context, cfg loadConfig) (*loadResult, error) {
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.limits == (iothub.Limits{}) {
		cfg.limits = iothub.NoLimits
	}
	reg, err := newRegistry(cfg.registryConnectionString, cfg.rootCAs, cfg.requestTimeout, cfg.limits)
	if err != nil {
		return nil, err
	}
	res := &loadResult{Devices: cfg.devices}

	start := time.Now()
	conns, err := provision(ctx, reg, cfg)
	reg.close() // done with REST; do not hold sockets open
	if err != nil {
		return nil, err
	}
	res.ProvisionTime = time.Since(start)
	log.Info("devices provisioned", "devices", cfg.devices, "took", res.ProvisionTime)

	start, cpu := time.Now(), processCPU()
	clients, connectTimes, err := connectAll(ctx, conns, cfg)
	defer closeAll(clients)
	if err != nil {
		return nil, err
	}
	res.ConnectTime, res.ConnectCPU = time.Since(start), processCPU()-cpu
	slices.Sort(connectTimes)
	res.ConnectP50, res.ConnectP99 = percentile(connectTimes, 0.50), percentile(connectTimes, 0.99)
	log.Info("devices connected", "devices", cfg.devices, "took", res.ConnectTime)

	cpu = processCPU()
	report(ctx, clients, cfg, res, log)
	res.ReportCPU = processCPU() - cpu
	return res, nil
}

// provision creates (or reuses) the devices, in parallel.
func provision(ctx context.Context, reg *registry, cfg loadConfig) ([]string, error) {
	conns := make([]string, cfg.devices)
	err := parallel(ctx, cfg.devices, cfg.concurrency, func(ctx context.Context, i int) error {
		cs, err := reg.ensureDevice(ctx, deviceID(cfg.devicePrefix, i), cfg.gateway)
		conns[i] = cs
		return err
	})
	return conns, err
}

func deviceID(prefix string, i int) string { return fmt.Sprintf("%s%05d", prefix, i) }

// connectAll connects every device, in parallel.
func connectAll(ctx context.Context, conns []string, cfg loadConfig) ([]*device.Client, []time.Duration, error) {
	clients := make([]*device.Client, len(conns))
	times := make([]time.Duration, len(conns))
	quiet := cfg.log
	if quiet == nil {
		quiet = slog.New(slog.DiscardHandler)
	}
	// A thousand devices logging every connect would drown the summary.
	quiet = slog.New(levelFilter{quiet.Handler(), slog.LevelWarn})
	err := parallel(ctx, len(conns), cfg.concurrency, func(ctx context.Context, i int) error {
		c, err := device.New(device.Config{
			ConnectionString: conns[i],
			RootCAs:          cfg.rootCAs,
			TokenLifetime:    cfg.tokenLifetime,
			RequestTimeout:   cfg.requestTimeout,
			IgnoreDesired:    true,
			ProductInfo:      "devicesim-load/" + version,
			Logger:           quiet,
		})
		if err != nil {
			return err
		}
		start := time.Now()
		if err := c.Connect(ctx); err != nil {
			return err
		}
		times[i] = time.Since(start)
		clients[i] = c
		return nil
	})
	return clients, times, err
}

func closeAll(clients []*device.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

// report runs every device's reporting loop for the measurement window.
func report(ctx context.Context, clients []*device.Client, cfg loadConfig, res *loadResult, log *slog.Logger) {
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	var (
		wg        sync.WaitGroup
		errCount  atomic.Int64
		latencies = make([][]time.Duration, len(clients))
	)
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			latencies[i] = reportLoop(ctx, c, cfg.interval, &errCount, log)
		})
	}
	wg.Wait()
	res.Measured = time.Since(start)

	all := slices.Concat(latencies...)
	slices.Sort(all)
	res.Patches = int64(len(all))
	res.Errors = errCount.Load()
	res.Rate = float64(res.Patches) / res.Measured.Seconds()
	res.P50, res.P90, res.P99 = percentile(all, 0.50), percentile(all, 0.90), percentile(all, 0.99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
}

// reportLoop sends {"seq": n} every interval (back to back for 0) until ctx
// ends and returns the latency of each acknowledged patch.
func reportLoop(ctx context.Context, c *device.Client, interval time.Duration, errCount *atomic.Int64, log *slog.Logger) []time.Duration {
	var lat []time.Duration
	var tick <-chan time.Time
	if interval > 0 {
		// Spread the devices over the interval instead of reporting in step.
		select {
		case <-time.After(rand.N(interval)):
		case <-ctx.Done():
			return nil
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for seq := 0; ctx.Err() == nil; seq++ {
		start := time.Now()
		_, err := c.UpdateReported(ctx, map[string]any{"seq": seq})
		switch {
		case err == nil:
			lat = append(lat, time.Since(start))
		case ctx.Err() == nil:
			if errCount.Add(1) <= 10 {
				log.Warn("reported patch failed", "device", c.DeviceID(), "error", err)
			}
		}
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
	}
	return lat
}

// parallel runs fn(0..n-1) with at most limit at a time and returns the
// first error, cancelling the rest.
func parallel(ctx context.Context, n, limit int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r *loadResult) print(w io.Writer) {
	fmt.Fprintf(w, "devices           %d\n", r.Devices)
	fmt.Fprintf(w, "provision time    %v\n", r.ProvisionTime.Round(time.Millisecond))
	fmt.Fprintf(w, "connect time      %v for all (per device p50 %v, p99 %v)\n",
		r.ConnectTime.Round(time.Millisecond), r.ConnectP50.Round(time.Microsecond), r.ConnectP99.Round(time.Microsecond))
	fmt.Fprintf(w, "measured for      %v\n", r.Measured.Round(time.Millisecond))
	fmt.Fprintf(w, "reported patches  %d (%d errors)\n", r.Patches, r.Errors)
	fmt.Fprintf(w, "rate              %.0f patches/s\n", r.Rate)
	fmt.Fprintf(w, "latency           p50 %v  p90 %v  p99 %v  max %v\n",
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	fmt.Fprintf(w, "process CPU       %v connecting, %v per reported patch\n",
		r.ConnectCPU.Round(time.Millisecond), r.cpuPerPatch().Round(time.Microsecond/10))
}

// levelFilter raises a handler's minimum level.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(attrs), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(name), f.min}
}
