package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/device"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
)

// syncBuffer is a bytes.Buffer safe for the program's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serviceClient returns the project's service client for the hub, playing
// the operator's side.
func serviceClient(t *testing.T, h *hubtest.Hub) *iothub.Client {
	t.Helper()
	c, err := iothub.NewFromConnectionString(h.ServiceConnectionString,
		iothub.WithRootCAs(h.CAPool), iothub.WithLimits(iothub.NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reported returns the twin's reported properties as encoding/json decodes
// them into any (numbers as float64), the form the assertions compare with.
func reported(t *testing.T, h *hubtest.Hub, deviceID string) map[string]any {
	t.Helper()
	tw, err := serviceClient(t, h).GetTwin(t.Context(), deviceID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tw.Properties.Reported.Values)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// program runs the command in the background.
type program struct {
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	code           chan int
}

func start(args []string, getenv func(string) string) *program {
	p := &program{code: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.code <- run(ctx, args, getenv, &p.stdout, &p.stderr) }()
	return p
}

// wait returns the exit code.
func (p *program) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-p.code:
		return c
	case <-time.After(30 * time.Second):
		t.Fatalf("devicesim did not exit; stderr:\n%s", p.stderr.String())
	}
	return -1
}

// The tutorial's device as a sidecar: it reads the Secret written by a
// DeviceTwin, reports connectivity=cellular, logs the desired patch the
// operator writes and echoes it, and serves its health endpoints.
func TestRunTutorialSidecar(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	secretDir := t.TempDir()
	writeFile(t, secretDir, "connectionString", h.AddDevice(t, "myDeviceId"))
	writeFile(t, secretDir, "ca.crt", string(h.CACertPEM()))
	health := freeAddr(t)

	p := start([]string{"--secret-dir", secretDir, "--report", "connectivity=cellular", "--ack-desired", "--log-patches", "--log-format", "json", "--health-addr", health}, env(nil))
	t.Cleanup(p.cancel)

	eventually(t, 15*time.Second, "reported connectivity=cellular", func() bool {
		return reported(t, h, "myDeviceId")["connectivity"] == "cellular"
	})
	resp, err := http.Get("http://" + health + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d, want 200", resp.StatusCode)
	}

	if _, err := serviceClient(t, h).UpdateTwin(t.Context(), "myDeviceId", map[string]any{
		"tags":       map[string]any{"location": map[string]any{"plant": "Redmond43"}},
		"properties": map[string]any{"desired": map[string]any{"power_level": 1}},
	}, iothub.ETagAny); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "power_level echoed into reported", func() bool {
		return reported(t, h, "myDeviceId")["power_level"] == float64(1)
	})
	if !strings.Contains(p.stderr.String(), `"msg":"desired properties received"`) || !strings.Contains(p.stderr.String(), `"patch":"{\"power_level\":1}"`) {
		t.Errorf("the desired patch was not logged; stderr:\n%s", p.stderr.String())
	}

	p.cancel()
	if code := p.wait(t); code != exitOK {
		t.Fatalf("exit code after SIGTERM = %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	eventually(t, 5*time.Second, "the hub to see the device leave", func() bool { return !h.Connected("myDeviceId", "") })
}

// Refused credentials end the program with exit code 3 and a message that
// says what to check, without the key.
func TestRunExitCodes(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	good := h.AddDevice(t, "d1")
	dir := t.TempDir()
	const wrongKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	wrong := good[:strings.Index(good, "SharedAccessKey=")] + "SharedAccessKey=" + wrongKey + good[strings.Index(good, ";GatewayHostName"):]
	tests := []struct {
		name     string
		args     []string
		getenv   map[string]string
		wantCode int
		wantText string
	}{
		{
			name:     "wrong key",
			args:     []string{"--connection-string-file", writeFile(t, dir, "wrong", wrong), "--ca-file", h.CAFile, "--health-addr", ""},
			wantCode: exitRefused, wantText: "connection refused by the hub",
		},
		{
			name:     "hub CA not given",
			getenv:   map[string]string{"DEVICESIM_CONNECTION_STRING": good, "DEVICESIM_HEALTH_ADDR": ""},
			wantCode: exitRefused, wantText: "TLS",
		},
		{
			name:     "no connection string",
			args:     []string{"--health-addr", ""},
			wantCode: exitUsage, wantText: "no device connection string",
		},
		{
			name:     "service string instead of a device string",
			args:     []string{"--connection-string-file", writeFile(t, dir, "svc", h.ServiceConnectionString), "--health-addr", ""},
			wantCode: exitUsage, wantText: "DeviceId",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(tt.args, env(tt.getenv))
			defer p.cancel()
			if code := p.wait(t); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, p.stderr.String())
			}
			out := p.stderr.String()
			if !strings.Contains(out, tt.wantText) {
				t.Errorf("stderr does not mention %q:\n%s", tt.wantText, out)
			}
			if strings.Contains(out, wrongKey) || strings.Contains(out, "sig=") {
				t.Errorf("stderr leaks a secret:\n%s", out)
			}
		})
	}
}

// Load mode creates the devices through the registry, runs them and prints
// its measurements.
func TestRunLoadMode(t *testing.T) {
	h := hubtest.Start(t, hubtest.InMemory())
	dir := t.TempDir()
	reg := writeFile(t, dir, "registry", h.ServiceConnectionString)
	h.AddDevice(t, "load-00001") // an existing device is reused
	args := []string{"--devices", "5", "--device-prefix", "load-", "--registry-connection-string-file", reg,
		"--ca-file", h.CAFile, "--gateway-host", h.MQTTAddr, "--interval", "20ms", "--duration", "500ms"}
	p := start(args, env(nil))
	if code := p.wait(t); code != exitOK {
		t.Fatalf("exit code = %d; stderr:\n%s", code, p.stderr.String())
	}
	out := p.stdout.String()
	for _, want := range []string{"devices           5", "(0 errors)", "patches/s", "p99", "per reported patch"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for i := range 5 {
		id := deviceID("load-", i)
		if _, ok := reported(t, h, id)["seq"]; !ok {
			t.Errorf("device %s reported nothing", id)
		}
	}
}

func TestAckPatch(t *testing.T) {
	s := &simulator{acked: map[string]bool{}}
	steps := []struct {
		patch device.DesiredPatch
		want  map[string]any
	}{
		{device.DesiredPatch{Version: 1, Full: true, Properties: map[string]any{"a": 1, "b": 2}}, map[string]any{"a": 1, "b": 2}},
		{device.DesiredPatch{Version: 2, Properties: map[string]any{"a": nil, "c": 3}}, map[string]any{"a": nil, "c": 3}},
		{device.DesiredPatch{Version: 5, Full: true, Properties: map[string]any{"c": 4}}, map[string]any{"b": nil, "c": 4}},
	}
	for i, st := range steps {
		if got := s.ackPatch(st.patch); !reflect.DeepEqual(got, st.want) {
			t.Errorf("step %d: ack = %v, want %v", i, got, st.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}, {0, 1}}
	for _, tt := range tests {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
