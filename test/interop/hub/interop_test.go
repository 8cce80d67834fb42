// Package hubinterop runs the official Azure IoT Node SDKs against the
// embedded hub (test/interop/hub/tutorial.js).
package hubinterop

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/hub"
	"github.com/twinsync/twinsync/test/interop/nodetest"
)

// TestNodeSDKTutorial starts the hub as the Node SDKs need it (HostName
// localhost, HTTPS on 443, MQTT on 8883, loopback only) and runs the
// tutorial script with NODE_EXTRA_CA_CERTS pointing at the hub CA.
func TestNodeSDKTutorial(t *testing.T) {
	nodetest.Require(t, ".")

	h, err := hub.New(hub.Config{
		Hostname:  "localhost",
		HTTPSAddr: "127.0.0.1:443",
		MQTTAddr:  "127.0.0.1:8883",
		DataDir:   t.TempDir(),
	})
	if errors.Is(err, syscall.EACCES) {
		t.Skip("binding port 443 needs privileges here")
	}
	if err != nil {
		t.Fatalf("start hub on :443 and :8883: %v", err)
	}
	defer h.Close()
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "tutorial.js")
	cmd.Env = nodetest.Env([]string{"NODE_EXTRA_CA_CERTS"},
		"NODE_EXTRA_CA_CERTS="+h.CAFile(),
		"SERVICE_CONNECTION_STRING="+cs,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("tutorial.js output:\n%s", out)
	if strings.Contains(string(out), cs) {
		t.Error("the script printed the connection string")
	}
	if err != nil {
		t.Fatalf("tutorial.js: %v", err)
	}
	if !strings.Contains(string(out), "ok - device deleted") {
		t.Fatal("tutorial.js did not finish")
	}
}
