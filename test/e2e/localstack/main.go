// Command localstack runs twinsync on this machine for people: `make demo`
// plays the device twin tutorial end to end and stops, `make run` keeps the
// stack up for kubectl. Both need the binaries of `make build` and the
// control plane of hack/envtest.sh (KUBEBUILDER_ASSETS); the Makefile
// provides both. Run it from the repository root.
//
//	localstack demo [--bin-dir bin] [--keep]
//	localstack run  [--bin-dir bin]
//
// demo exits 0 when every step of the tutorial happened, 1 otherwise, and
// stops every process it started either way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/twinsync/twinsync/internal/localstack"
)

// Paths in the repository, relative to its root.
const (
	crdDir     = "config/crd/bases"
	rbacDir    = "config/rbac"
	samplesDir = "config/samples"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "demo" && os.Args[1] != "run") {
		fmt.Fprintln(os.Stderr, "usage: localstack demo|run [--bin-dir DIR]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	binDir := fs.String("bin-dir", "bin", "directory with the manager, hub and devicesim binaries")
	keep := fs.Bool("keep", false, "demo: keep the work directory (kubeconfig, logs) after a successful run")
	namespace := fs.String("namespace", "default", "namespace for the tutorial's objects")
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if mode == "demo" {
		err = demo(ctx, *binDir, *namespace, *keep)
	} else {
		err = run(ctx, *binDir, *namespace)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\n%s failed: %v\n", mode, err)
		os.Exit(1)
	}
}

// demo starts the stack in a temporary directory, plays the tutorial and
// stops everything. The work directory (logs) is kept when a step fails.
func demo(ctx context.Context, binDir, namespace string, keep bool) (err error) {
	start := time.Now()
	workDir, err := os.MkdirTemp("", "twinsync-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || keep {
			fmt.Printf("\nlogs and kubeconfig kept in %s\n", workDir)
			return
		}
		os.RemoveAll(workDir)
	}()
	stack, err := localstack.Start(ctx, options(binDir, workDir))
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\n==> stopping the device simulator, manager, hub and control plane")
		if stopErr := stack.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	if _, err := stack.PlayTutorial(ctx, samplesDir, namespace, os.Stdout); err != nil {
		return err
	}
	fmt.Printf("\nThe tutorial played end to end in %s.\n", time.Since(start).Round(time.Second))
	return nil
}

// run starts the stack in bin/localstack and keeps it up until interrupted.
// When the tutorial's device Secret appears it starts the device simulator
// on it, as the sidecar of config/devicesim would.
func run(ctx context.Context, binDir, namespace string) (err error) {
	workDir, err := filepath.Abs(filepath.Join(binDir, "localstack"))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(workDir); err != nil {
		return err
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return err
	}
	stack, err := localstack.Start(ctx, options(binDir, workDir))
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\n==> stopping the device simulator, manager, hub and control plane")
		if stopErr := stack.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	fmt.Printf(`
twinsync is running. In another terminal:

  export KUBECONFIG=%s
  kubectl apply -n %s -k %s/
  kubectl get dt,tq -n %s -w
  kubectl wait -n %s devicetwin/%s --for=condition=Ready --timeout=60s

When the DeviceTwin's Secret %s appears, the device simulator starts on it
(reporting connectivity=cellular, echoing desired properties).
Logs: %s/*.log. Press Ctrl-C to stop everything.
`, stack.Kubeconfig, namespace, samplesDir, namespace, namespace, localstack.DeviceTwinName,
		localstack.DeviceSecretName, workDir)

	if err := startDeviceWhenProvisioned(ctx, stack, namespace); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	<-ctx.Done()
	return nil
}

// startDeviceWhenProvisioned waits (until ctx ends) for the tutorial's
// device Secret and starts the simulator on it.
func startDeviceWhenProvisioned(ctx context.Context, stack *localstack.Stack, namespace string) error {
	for {
		_, err := stack.WaitSecret(ctx, namespace, localstack.DeviceSecretName, "connectionString")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			break
		}
	}
	p, err := stack.StartDevice(ctx, namespace, localstack.DeviceSecretName, func(msg map[string]any) {
		m, _ := msg["msg"].(string)
		if patch, ok := msg["patch"].(string); ok {
			m += " " + patch
		}
		if m != "" {
			fmt.Println("devicesim:", m)
		}
	}, "--report=connectivity=cellular", "--ack-desired", "--log-patches")
	if err != nil {
		return err
	}
	fmt.Printf("==> device simulator started on Secret %s/%s (log %s)\n", namespace, localstack.DeviceSecretName, p.LogPath)
	return nil
}

func options(binDir, workDir string) localstack.Options {
	absBin, _ := filepath.Abs(binDir)
	return localstack.Options{
		BinDir:   absBin,
		CRDDir:   crdDir,
		RBACDir:  rbacDir,
		WorkDir:  workDir,
		Progress: os.Stdout,
	}
}
