package iothub

// Tests in this file run against the real embedded hub (pkg/hub) over TLS
// on loopback, started by hubtest.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
	"github.com/twinsync/twinsync/pkg/twin"
)

func startHub(t *testing.T, opts ...hubtest.Option) (*hubtest.Hub, *Client) {
	t.Helper()
	h := hubtest.Start(t, append([]hubtest.Option{hubtest.InMemory()}, opts...)...)
	c, err := NewFromConnectionString(h.ServiceConnectionString, WithRootCAs(h.CAPool), WithLimits(NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

func TestHubRegistry(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()

	created, err := c.CreateDevice(ctx, &Device{DeviceID: "dev-1"})
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if created.DeviceID != "dev-1" || created.ETag == "" || created.Authentication == nil ||
		created.Authentication.SymmetricKey == nil || created.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("created device lacks id, etag or generated keys: %+v", created)
	}
	if _, err := sas.ParseKey(created.Authentication.SymmetricKey.PrimaryKey); err != nil {
		t.Errorf("generated key: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %#v", created.Authentication.SymmetricKey, created.Authentication, created); strings.Contains(s, created.Authentication.SymmetricKey.PrimaryKey) {
		t.Errorf("formatting a device prints its key: %s", s)
	}
	if _, err := c.CreateDevice(ctx, &Device{DeviceID: "dev-1"}); !errors.Is(err, ErrConflict) {
		t.Errorf("second CreateDevice: %v, want ErrConflict", err)
	}
	got, err := c.GetDevice(ctx, "dev-1")
	if err != nil || got.ETag != created.ETag || got.Status != StatusEnabled {
		t.Errorf("GetDevice = %+v, %v", got, err)
	}
	if _, err := c.CreateDevice(ctx, &Device{DeviceID: "dev-2", Status: StatusDisabled}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListDevices(ctx, 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListDevices = %d devices, %v", len(list), err)
	}

	// Modules live under their device.
	if _, err := c.CreateModule(ctx, &Device{DeviceID: "dev-1", ModuleID: "mod-1"}); err != nil {
		t.Fatalf("CreateModule: %v", err)
	}
	mod, err := c.GetModule(ctx, "dev-1", "mod-1")
	if err != nil || mod.ModuleID != "mod-1" {
		t.Fatalf("GetModule = %+v, %v", mod, err)
	}
	if err := c.DeleteModule(ctx, "dev-1", "mod-1", mod.ETag); err != nil {
		t.Errorf("DeleteModule: %v", err)
	}
	if _, err := c.GetModule(ctx, "dev-1", "mod-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetModule after delete: %v, want ErrNotFound", err)
	}

	// A stale identity etag is refused; the current one and ETagAny work.
	if err := c.DeleteDevice(ctx, "dev-1", "c3RhbGU="); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("DeleteDevice with a stale etag: %v, want ErrPreconditionFailed", err)
	}
	if err := c.DeleteDevice(ctx, "dev-1", created.ETag); err != nil {
		t.Errorf("DeleteDevice with its etag: %v", err)
	}
	if err := c.DeleteDevice(ctx, "dev-2", ETagAny); err != nil {
		t.Errorf("DeleteDevice with ETagAny: %v", err)
	}
	if _, err := c.GetDevice(ctx, "dev-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDevice after delete: %v, want ErrNotFound", err)
	}
}

func TestHubTwins(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &Device{DeviceID: "myDeviceId"}); err != nil {
		t.Fatal(err)
	}
	tw, err := c.GetTwin(ctx, "myDeviceId")
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	if tw.DeviceID != "myDeviceId" || tw.ETag == "" || tw.Properties.Desired.Version != 1 {
		t.Fatalf("new twin: %+v", tw)
	}

	// The tutorial's conditional update.
	patch := map[string]any{
		"tags":       map[string]any{"location": map[string]any{"region": "US", "plant": "Redmond43"}},
		"properties": map[string]any{"desired": map[string]any{"power_level": 1}},
	}
	updated, err := c.UpdateTwin(ctx, "myDeviceId", patch, tw.ETag)
	if err != nil {
		t.Fatalf("UpdateTwin: %v", err)
	}
	if updated.ETag == tw.ETag || updated.Properties.Desired.Values["power_level"] == nil ||
		updated.Tags["location"].(map[string]any)["plant"] != "Redmond43" {
		t.Fatalf("UpdateTwin returned %+v", updated)
	}

	// The old etag no longer matches; ETagAny still writes.
	if _, err := c.UpdateTwin(ctx, "myDeviceId", patch, tw.ETag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("UpdateTwin with a stale etag: %v, want ErrPreconditionFailed", err)
	}
	again, err := c.UpdateTwin(ctx, "myDeviceId", map[string]any{"tags": map[string]any{"extra": true}}, ETagAny)
	if err != nil || again.Tags["extra"] != true {
		t.Fatalf("unconditional UpdateTwin = %+v, %v", again, err)
	}

	// ReplaceTwin drops what the replacement lacks.
	replaced, err := c.ReplaceTwin(ctx, "myDeviceId", &twin.Twin{Tags: map[string]any{"only": "this"}}, again.ETag)
	if err != nil {
		t.Fatalf("ReplaceTwin: %v", err)
	}
	if len(replaced.Tags) != 1 || replaced.Tags["only"] != "this" || len(replaced.Properties.Desired.Values) != 0 {
		t.Errorf("ReplaceTwin left %v / %v", replaced.Tags, replaced.Properties.Desired.Values)
	}
	if _, err := c.ReplaceTwin(ctx, "myDeviceId", &twin.Twin{}, again.ETag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("ReplaceTwin with a stale etag: %v, want ErrPreconditionFailed", err)
	}

	// Module twins.
	if _, err := c.CreateModule(ctx, &Device{DeviceID: "myDeviceId", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	mt, err := c.GetModuleTwin(ctx, "myDeviceId", "m1")
	if err != nil || mt.ModuleID != "m1" {
		t.Fatalf("GetModuleTwin = %+v, %v", mt, err)
	}
	mt2, err := c.UpdateModuleTwin(ctx, "myDeviceId", "m1", map[string]any{"properties": map[string]any{"desired": map[string]any{"rate": 5}}}, mt.ETag)
	if err != nil || mt2.Properties.Desired.Version != 2 {
		t.Fatalf("UpdateModuleTwin = %+v, %v", mt2, err)
	}
	if _, err := c.UpdateModuleTwin(ctx, "myDeviceId", "m1", map[string]any{}, mt.ETag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("UpdateModuleTwin with a stale etag: %v", err)
	}
	mt3, err := c.ReplaceModuleTwin(ctx, "myDeviceId", "m1", &twin.Twin{}, mt2.ETag)
	if err != nil || len(mt3.Properties.Desired.Values) != 0 {
		t.Fatalf("ReplaceModuleTwin = %+v, %v", mt3, err)
	}
}

// TestHubTypedErrors provokes every error the embedded hub can give and
// checks the sentinel and the fields.
func TestHubTypedErrors(t *testing.T) {
	h, c := startHub(t)
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 4000)
	oversized := map[string]any{}
	for i := range 10 {
		oversized[fmt.Sprintf("k%d", i)] = big
	}
	wrongKey, err := sas.ParseKey("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh")
	if err != nil {
		t.Fatal(err)
	}
	badClient, err := New(h.Hostname(), sas.NewKeySource(h.Hostname(), "iothubowner", wrongKey), WithRootCAs(h.CAPool), WithLimits(NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		call   func() error
		want   error
		status int
		code   string
	}{
		{"unknown twin", func() error { _, err := c.GetTwin(ctx, "nope"); return err }, ErrNotFound, 404, "DeviceNotFound"},
		{"unknown module twin", func() error { _, err := c.GetModuleTwin(ctx, "d1", "nope"); return err }, ErrNotFound, 404, "ModuleNotFound"},
		{"stale etag", func() error {
			_, err := c.UpdateTwin(ctx, "d1", map[string]any{"tags": map[string]any{"a": 1}}, twin.ETagFromCounter(99))
			return err
		}, ErrPreconditionFailed, 412, "PreconditionFailed"},
		{"existing device", func() error { _, err := c.CreateDevice(ctx, &Device{DeviceID: "d1"}); return err }, ErrConflict, 409, "DeviceAlreadyExists"},
		{"null in a replacement", func() error {
			_, err := c.ReplaceTwin(ctx, "d1", &twin.Twin{Tags: map[string]any{"gone": nil}}, ETagAny)
			return err
		}, ErrInvalid, 400, "ArgumentInvalid"},
		{"oversized desired section", func() error {
			_, err := c.UpdateTwin(ctx, "d1", map[string]any{"properties": map[string]any{"desired": oversized}}, ETagAny)
			return err
		}, ErrTooLarge, 403, "DeviceModelMaxPropertiesExceeded"},
		{"wrong key", func() error { _, err := badClient.GetTwin(ctx, "d1"); return err }, ErrUnauthorized, 401, ""},
		{"invalid query", func() error { _, err := c.Query("SELEKT nothing").NextPage(ctx); return err }, ErrInvalid, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not *Error", err)
			}
			if e.StatusCode != tc.status || (tc.code != "" && e.Code != tc.code) || e.Message == "" {
				t.Errorf("got status %d code %q message %q, want %d %q", e.StatusCode, e.Code, e.Message, tc.status, tc.code)
			}
			if strings.Contains(err.Error(), "SharedAccessSignature") || strings.Contains(err.Error(), "sig=") {
				t.Errorf("error leaks a token: %v", err)
			}
		})
	}
}

func TestHubQueryPaging(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	const devices = 23
	for i := range devices {
		id := fmt.Sprintf("dev-%02d", i)
		if _, err := c.CreateDevice(ctx, &Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
		plant := "Redmond43"
		if i%2 == 1 {
			plant = "Other"
		}
		if _, err := c.UpdateTwin(ctx, id, map[string]any{"tags": map[string]any{"plant": plant}}, ETagAny); err != nil {
			t.Fatal(err)
		}
	}

	pager := c.Query("SELECT * FROM devices", WithPageSize(5))
	var sizes []int
	seen := map[string]bool{}
	for page, err := range pager.Pages(ctx) {
		if err != nil {
			t.Fatalf("page %d: %v", len(sizes)+1, err)
		}
		twins, err := page.Twins()
		if err != nil {
			t.Fatal(err)
		}
		for _, tw := range twins {
			seen[tw.DeviceID] = true
		}
		if !page.IsTwins() {
			t.Errorf("item type %q, want Twin", page.ItemType)
		}
		sizes = append(sizes, len(twins))
	}
	if fmt.Sprint(sizes) != "[5 5 5 5 3]" || len(seen) != devices {
		t.Errorf("pages %v covering %d devices, want [5 5 5 5 3] covering %d", sizes, len(seen), devices)
	}
	if pager.More() {
		t.Error("More() after the last page")
	}
	if _, err := pager.NextPage(ctx); !errors.Is(err, ErrNoMorePages) {
		t.Errorf("NextPage after the last page: %v", err)
	}

	// Resume from a continuation token, as a controller would across reconciles.
	first, err := c.Query("SELECT * FROM devices", WithPageSize(20)).NextPage(ctx)
	if err != nil || first.Continuation == "" {
		t.Fatalf("first page: %v, continuation %q", err, first.Continuation)
	}
	rest, err := c.Query("SELECT * FROM devices", WithPageSize(20), WithContinuation(first.Continuation)).NextPage(ctx)
	if err != nil || len(rest.Items) != devices-20 || rest.Continuation != "" {
		t.Fatalf("resumed page: %d items, continuation %q, %v", len(rest.Items), rest.Continuation, err)
	}

	// Projections and aggregates come back as raw rows.
	tests := []struct {
		sql  string
		want string
	}{
		{"SELECT deviceId FROM devices WHERE tags.plant = 'Redmond43' AND deviceId = 'dev-04'", "[map[deviceId:dev-04]]"},
		{"SELECT COUNT() AS n FROM devices WHERE tags.plant = 'Redmond43'", "[map[n:12]]"},
	}
	for _, tc := range tests {
		page, err := c.Query(tc.sql).NextPage(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		rows, err := page.Rows()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(page.ItemType, ItemTypeRaw) || fmt.Sprint(rows) != tc.want {
			t.Errorf("%s: %s rows %v, want Raw %s", tc.sql, page.ItemType, rows, tc.want)
		}
		if _, err := page.Twins(); err == nil {
			t.Errorf("%s: Twins() accepted raw rows", tc.sql)
		}
	}
}

// TestHubThrottling uses the hub's S1 throttling mode: a client without
// limits and retries gets ErrThrottled, one that retries gets through while
// others drain the hub and counts the 429s, and one with the S1 preset
// stays at the hub's rate, so it meets only a few 429s where the two
// buckets' clocks differ by a request's latency (the hub answers at once
// where IoT Hub would queue).
func TestHubThrottling(t *testing.T) {
	ctx := context.Background()
	var h *hubtest.Hub
	run := time.Now().UnixNano() // metrics are global: keep repeated runs apart
	label := func(name string) string { return fmt.Sprintf("%s-%d", name, run) }
	newClient := func(name string, opts ...Option) *Client {
		c, err := NewFromConnectionString(h.ServiceConnectionString,
			append([]Option{WithRootCAs(h.CAPool), WithHubLabel(label(name))}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Each phase gets a fresh hub, so it starts with a full bucket.
	freshHub := func() {
		h = hubtest.Start(t, hubtest.InMemory(), hubtest.Throttled("S1", 1))
		if _, err := h.RegisterDevice("d1"); err != nil {
			t.Fatal(err)
		}
	}
	freshHub()
	const reads = 150 // over S1's twin read burst of 100

	// No limiter, no retries: concurrent readers drain the hub's bucket
	// faster than it refills, however slow this machine is.
	naive := newClient("naive", WithLimits(NoLimits), WithRetry(NoRetry))
	if err := concurrentReads(ctx, naive, 16, 100, true); !errors.Is(err, ErrThrottled) {
		t.Fatalf("no ErrThrottled from unlimited concurrent reads: %v", err)
	}

	// Retries with backoff get a read through a drained bucket: drain it
	// with an unlimited client until the hub answers 429, then read with
	// retries at once. The hub refills the bucket while the client backs
	// off, so the read succeeds after at least one counted 429 (the first
	// attempt may slip in on a token refilled meanwhile; then drain again).
	freshHub()
	retrying := newClient("retrying", WithLimits(NoLimits),
		WithRetry(RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxAttempts: 50, MaxElapsed: 30 * time.Second}))
	drainer := newClient("drainer", WithLimits(NoLimits), WithRetry(NoRetry))
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(throttledTotal.WithLabelValues(label("retrying"), opGetTwin)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no throttled answer counted for reads right after the hub's bucket was drained")
		}
		if err := concurrentReads(ctx, drainer, 4, 1000, true); !errors.Is(err, ErrThrottled) {
			t.Fatalf("draining the hub's bucket: want ErrThrottled, got %v", err)
		}
		if _, err := retrying.GetTwin(ctx, "d1"); err != nil {
			t.Fatalf("retrying read: %v", err)
		}
	}
	if n := testutil.ToFloat64(retriesTotal.WithLabelValues(label("retrying"), opGetTwin, reasonThrottled)); n == 0 {
		t.Error("no retry counted")
	}

	// The S1 preset keeps the client under the hub's limit.
	freshHub()
	polite := newClient("polite", WithLimits(MustTierLimits(S1, 1)),
		WithRetry(RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxAttempts: 50, MaxElapsed: 30 * time.Second}))
	for i := range reads {
		if _, err := polite.GetTwin(ctx, "d1"); err != nil {
			t.Fatalf("read %d with the S1 preset: %v", i, err)
		}
	}
	if n := testutil.ToFloat64(throttledTotal.WithLabelValues(label("polite"), opGetTwin)); n > reads/10 {
		t.Errorf("%v throttled answers with the S1 preset, want at most %d", n, reads/10)
	}
	if n := testutil.ToFloat64(requestsTotal.WithLabelValues(label("polite"), opGetTwin, "200")); n != reads {
		t.Errorf("requests_total{code=200} = %v, want %d", n, reads)
	}
}

// concurrentReads reads twin d1 from workers goroutines, each up to n
// times. With stopAtError the first error stops every worker; it returns
// the first error.
func concurrentReads(ctx context.Context, c *Client, workers, n int, stopAtError bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := c.GetTwin(ctx, "d1"); err != nil {
					errs <- err
					if stopAtError {
						cancel()
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
