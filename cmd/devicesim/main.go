// Command devicesim plays an IoT Hub device over MQTT: the tutorial's
// ReportConnectivity app as a sidecar, or many devices at once for load
// tests.
//
// Single-device mode connects with a device connection string, sends the
// reported properties given by --report and --report-file, and logs every
// desired-property patch it receives; with --ack-desired it echoes each
// desired value into reported properties, so a DeviceTwin's Converged
// condition can be watched. It serves /healthz (the process is alive and
// the client has not failed for good) and /readyz (connected to the hub).
//
// Load mode (--devices N) uses a registry connection string to create or
// reuse N devices, connects them all from this process, makes each report
// on an interval and prints the connect time, the achieved reported-patch
// rate and latency percentiles.
//
// Every flag can also be set by an environment variable: DEVICESIM_ plus the
// flag name in upper case with '-' as '_' (--ack-desired is
// DEVICESIM_ACK_DESIRED). Secrets are never taken from flags, which other
// users of the machine can read from the process list: the device
// connection string comes from --connection-string-file, the
// DEVICESIM_CONNECTION_STRING variable or connectionString in --secret-dir
// (the Secret a DeviceTwin with provisioning.createIdentity writes, which
// may also hold the hub's CA as ca.crt).
//
// Exit codes: 0 after SIGINT/SIGTERM or the end of --duration, 1 on a
// runtime failure, 2 on bad flags or configuration, 3 when the hub refuses
// the credentials or its certificate does not verify.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
