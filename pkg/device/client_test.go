package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/device"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
)

// testConfig is a client configuration for the test hub with short delays.
func testConfig(h *hubtest.Hub, cs string) device.Config {
	return device.Config{
		ConnectionString: cs,
		RootCAs:          h.CAPool,
		RequestTimeout:   10 * time.Second,
		ConnectTimeout:   5 * time.Second,
		MinBackoff:       20 * time.Millisecond,
		MaxBackoff:       200 * time.Millisecond,
	}
}

// withGateway points a device connection string at another MQTT address.
func withGateway(cs, addr string) string {
	i := strings.Index(cs, ";GatewayHostName=")
	if i >= 0 {
		cs = cs[:i]
	}
	return cs + ";GatewayHostName=" + addr
}

func dial(t *testing.T, cfg device.Config) *device.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := device.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextPatch waits for the next desired patch.
func nextPatch(t *testing.T, c *device.Client) device.DesiredPatch {
	t.Helper()
	select {
	case p, ok := <-c.DesiredPatches():
		if !ok {
			t.Fatalf("desired channel closed: %v", c.Err())
		}
		return p
	case <-time.After(15 * time.Second):
		t.Fatal("no desired patch within 15s")
	}
	return device.DesiredPatch{}
}

func num(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

// The tutorial's device: connect, report connectivity=cellular, receive the
// operator's desired power_level.
func TestTutorialDeviceFlow(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h)
	c := dial(t, testConfig(h, h.AddDevice(t, "myDeviceId")))

	initial := nextPatch(t, c)
	if !initial.Full || len(initial.Properties) != 0 {
		t.Fatalf("first patch = %+v, want the full, empty desired document", initial)
	}

	version, err := c.UpdateReported(t.Context(), map[string]any{"connectivity": "cellular"})
	if err != nil {
		t.Fatalf("UpdateReported: %v", err)
	}
	if version < 2 {
		t.Fatalf("reported $version = %d, want ≥ 2", version)
	}
	if got := svc.reported(t, "myDeviceId")["connectivity"]; got != "cellular" {
		t.Fatalf("service sees reported connectivity %v, want cellular", got)
	}

	desiredVersion := svc.patchDesired(t, "myDeviceId", map[string]any{"power_level": 1})
	p := nextPatch(t, c)
	if p.Full || p.Version != desiredVersion || num(p.Properties["power_level"]) != 1 {
		t.Fatalf("patch = %+v, want power_level=1 at $version %d", p, desiredVersion)
	}

	twin, err := c.GetTwin(t.Context())
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	if twin.Reported.Version != version || twin.Reported.Values["connectivity"] != "cellular" {
		t.Errorf("twin reported = %+v, want connectivity=cellular at $version %d", twin.Reported, version)
	}
	if twin.Desired.Version != desiredVersion || num(twin.Desired.Values["power_level"]) != 1 {
		t.Errorf("twin desired = %+v, want power_level=1 at $version %d", twin.Desired, desiredVersion)
	}
	if !h.Connected("myDeviceId", "") || !c.Connected() {
		t.Error("device not connected")
	}
}

// fold applies patches to a desired document as a consumer would.
func fold(doc map[string]any, p device.DesiredPatch) map[string]any {
	if p.Full {
		doc = map[string]any{}
	}
	for k, v := range p.Properties {
		if v == nil {
			delete(doc, k)
		} else {
			doc[k] = v
		}
	}
	return doc
}

// collect reads patches until one reaches version, checking that versions
// strictly increase, and returns them.
func collect(t *testing.T, c *device.Client, version int64) []device.DesiredPatch {
	t.Helper()
	var got []device.DesiredPatch
	last := int64(-1)
	for last < version {
		p := nextPatch(t, c)
		if p.Version <= last {
			t.Fatalf("patch $version %d after %d: out of order or duplicate (all: %+v)", p.Version, last, got)
		}
		last = p.Version
		got = append(got, p)
	}
	if last != version {
		t.Fatalf("patches overshot: last $version %d, want %d", last, version)
	}
	return got
}

// Desired patches arrive in order without duplicates while the connection
// is cut and restored under them, and the device ends with the final state.
func TestDesiredOrderAcrossForcedReconnect(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h)
	proxy := newFaultProxy(t, h.MQTTAddr)
	c := dial(t, testConfig(h, withGateway(h.AddDevice(t, "d1"), proxy.addr())))
	nextPatch(t, c) // the initial full document

	const patches = 30
	var final int64
	for i := 1; i <= patches; i++ {
		final = svc.patchDesired(t, "d1", map[string]any{"n": i, "key" + string(rune('a'+i%5)): i})
		if i == patches/2 {
			proxy.cut()
			eventually(t, 10*time.Second, "the device to notice the cut", func() bool { return !c.Connected() })
			proxy.restore()
		}
	}
	doc := map[string]any{}
	for _, p := range collect(t, c, final) {
		doc = fold(doc, p)
	}
	if num(doc["n"]) != patches {
		t.Fatalf("final desired n = %v, want %d (doc %v)", doc["n"], patches, doc)
	}
	if got := c.Stats().Connects; got < 2 {
		t.Fatalf("Connects = %d, want ≥ 2 after the cut", got)
	}
}

// A desired change made while the device is offline reaches it through the
// GET after the reconnect, as a full document.
func TestPatchWhileOfflinePickedUpByGet(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h)
	proxy := newFaultProxy(t, h.MQTTAddr)
	c := dial(t, testConfig(h, withGateway(h.AddDevice(t, "d1"), proxy.addr())))
	nextPatch(t, c)

	proxy.cut()
	eventually(t, 10*time.Second, "the device to go offline", func() bool { return !c.Connected() && !h.Connected("d1", "") })
	version := svc.patchDesired(t, "d1", map[string]any{"power_level": 7})
	proxy.restore()

	p := nextPatch(t, c)
	if !p.Full || p.Version != version || num(p.Properties["power_level"]) != 7 {
		t.Fatalf("after reconnect got %+v, want the full document with power_level=7 at $version %d", p, version)
	}
}

// With 5-second tokens the client renews by reconnecting, and neither
// reported patches nor desired patches are lost meanwhile.
func TestTokenRenewalKeepsDeviceConnected(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 12 seconds")
	}
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h)
	cfg := testConfig(h, h.AddDevice(t, "d1"))
	cfg.TokenLifetime = 5 * time.Second
	c := dial(t, cfg)
	nextPatch(t, c)

	var (
		lastReported int64
		final        int64
		i            int
	)
	deadline := time.Now().Add(12 * time.Second)
	for ; time.Now().Before(deadline); i++ {
		v, err := c.UpdateReported(t.Context(), map[string]any{"seq": i})
		if err != nil {
			t.Fatalf("UpdateReported %d failed across renewal: %v", i, err)
		}
		if v <= lastReported {
			t.Fatalf("reported $version went from %d to %d", lastReported, v)
		}
		lastReported = v
		final = svc.patchDesired(t, "d1", map[string]any{"seq": i})
	}
	doc := map[string]any{}
	for _, p := range collect(t, c, final) {
		doc = fold(doc, p)
	}
	if num(doc["seq"]) != int64(i-1) {
		t.Fatalf("final desired seq = %v, want %d", doc["seq"], i-1)
	}
	if got := num(json.Number(strings.TrimSuffix(jsonText(svc.reported(t, "d1")["seq"]), ".0"))); got != int64(i-1) {
		t.Fatalf("hub has reported seq %d, want %d", got, i-1)
	}
	if got := c.Stats().Connects; got < 3 {
		t.Fatalf("Connects = %d, want ≥ 3 (a renewal every ~3.75s over 12s)", got)
	}
	if !c.Connected() {
		t.Fatal("not connected at the end")
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Refused credentials and an untrusted certificate are final, clear errors
// that never show the key.
func TestConnectFailuresAreFinal(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	good := h.AddDevice(t, "d1")
	const wrongKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct {
		name    string
		cfg     func(device.Config) device.Config
		wantErr error
		text    string
	}{
		{
			name: "wrong key",
			cfg: func(c device.Config) device.Config {
				c.ConnectionString = replaceKey(good, wrongKey)
				return c
			},
			wantErr: device.ErrRefused, text: `device "d1"`,
		},
		{
			name: "unknown device",
			cfg: func(c device.Config) device.Config {
				c.ConnectionString = strings.Replace(replaceKey(good, wrongKey), "DeviceId=d1", "DeviceId=nobody", 1)
				return c
			},
			wantErr: device.ErrRefused, text: `device "nobody"`,
		},
		{
			name: "hub CA not trusted",
			cfg: func(c device.Config) device.Config {
				c.RootCAs = nil
				return c
			},
			wantErr: device.ErrTLS, text: "CA",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, err := device.Dial(ctx, tt.cfg(testConfig(h, good)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dial error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not mention %q", err, tt.text)
			}
			if strings.Contains(err.Error(), wrongKey) || strings.Contains(err.Error(), "sig=") {
				t.Errorf("error leaks a secret: %q", err)
			}
		})
	}
}

func replaceKey(cs, key string) string {
	parts := strings.Split(cs, ";")
	for i, p := range parts {
		if strings.HasPrefix(p, "SharedAccessKey=") {
			parts[i] = "SharedAccessKey=" + key
		}
	}
	return strings.Join(parts, ";")
}

// Requests the hub refuses come back as typed errors with its status and
// errorCode.
func TestHubErrors(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	c := dial(t, testConfig(h, h.AddDevice(t, "d1")))
	tests := []struct {
		name    string
		patch   any
		wantErr error
	}{
		{name: "$version in a reported patch", patch: map[string]any{"$version": 3}, wantErr: device.ErrInvalid},
		{name: "key with a dot", patch: map[string]any{"a.b": 1}, wantErr: device.ErrInvalid},
		{name: "not an object", patch: []int{1}, wantErr: device.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.UpdateReported(t.Context(), tt.patch)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if _, err := c.UpdateReported(t.Context(), map[string]any{"ok": true}); err != nil {
		t.Fatalf("a valid patch after refused ones: %v", err)
	}
}

// Close ends the session cleanly: the hub sees the device disconnect, the
// desired channel closes and later requests fail with ErrClosed.
func TestClose(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	c := dial(t, testConfig(h, h.AddDevice(t, "d1")))
	eventually(t, 5*time.Second, "the hub to see the device", func() bool { return h.Connected("d1", "") })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the hub to see the disconnect", func() bool { return !h.Connected("d1", "") })
	for range c.DesiredPatches() {
	}
	if _, err := c.GetTwin(context.Background()); !errors.Is(err, device.ErrClosed) {
		t.Fatalf("GetTwin after Close = %v, want ErrClosed", err)
	}
	if !errors.Is(c.Err(), device.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
}

// A module identity uses the same twin topics with client id device/module;
// its twin is the module twin.
func TestModuleTwin(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h)
	h.AddDevice(t, "d1")
	svc.addModule(t, "d1", "m1")
	cs, err := h.Hub.DeviceConnectionString("d1", "m1")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, testConfig(h, cs+";GatewayHostName="+h.MQTTAddr))
	if c.ModuleID() != "m1" || c.DeviceID() != "d1" {
		t.Fatalf("ids = %q/%q", c.DeviceID(), c.ModuleID())
	}
	nextPatch(t, c)
	if _, err := c.UpdateReported(t.Context(), map[string]any{"module": "up"}); err != nil {
		t.Fatal(err)
	}
	if got := svc.moduleReported(t, "d1", "m1")["module"]; got != "up" {
		t.Fatalf("module twin reported = %v, want up", got)
	}
	if got := svc.reported(t, "d1")["module"]; got != nil {
		t.Fatalf("device twin got the module's property: %v", got)
	}
}

// A requested reconnect swaps the session without failing requests and
// without redelivering desired state the device already has.
func TestReconnectOnRequest(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	svc := newService(t, h)
	c := dial(t, testConfig(h, h.AddDevice(t, "d1")))
	first := nextPatch(t, c)

	var sent atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if _, err := c.UpdateReported(context.Background(), map[string]any{"i": i}); err != nil {
				errs <- err
				return
			}
			sent.Store(i)
		}
	}()
	eventually(t, 10*time.Second, "reports before the reconnect", func() bool { return sent.Load() >= 5 })
	c.Reconnect()
	eventually(t, 10*time.Second, "the second connection", func() bool { return c.Stats().Connects >= 2 && c.Connected() })
	after := sent.Load()
	eventually(t, 10*time.Second, "reports after the reconnect", func() bool { return sent.Load() >= after+5 })
	close(stop)
	if err := <-errs; err != nil {
		t.Fatalf("UpdateReported across the reconnect: %v", err)
	}
	if got := svc.reported(t, "d1")["i"]; got != float64(sent.Load()) {
		t.Fatalf("reported i = %v, want %d", got, sent.Load())
	}
	v := svc.patchDesired(t, "d1", map[string]any{"after": true})
	if p := nextPatch(t, c); p.Full || p.Version != v || p.Version <= first.Version {
		t.Fatalf("after the reconnect got %+v, want only the new patch at $version %d", p, v)
	}
}
