package devicetwin

import (
	"bufio"
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/internal/localstack"
	"github.com/twinsync/twinsync/pkg/iothub"
)

var (
	binDir      = flag.String("devicetwin.bin", filepath.Join("..", "..", "..", "bin"), "directory of the manager, hub and devicesim binaries (ManagerMemory)")
	steadyFor   = flag.Duration("devicetwin.steady", 30*time.Second, "how long the manager's memory is sampled after convergence (ManagerMemory)")
	managerArgs = flag.String("devicetwin.manager-args", "--hub-tier=S3 --hub-units=10 --devicetwin-concurrency=16",
		"space-separated flags added to the manager's (ManagerMemory)")
)

// memoryTargetMiB is the target for the manager's RSS at 10,000.
const memoryTargetMiB = 300

// BenchmarkDeviceTwinManagerMemory measures the manager's own memory: the
// real bin/manager runs as its own process (internal/localstack starts it
// with the hub, bin/hub, as another process), so its resident set holds
// neither the hub's twins nor the benchmark's client, unlike the rss_MiB of
// BenchmarkDeviceTwinApply.
//
// Build the binaries first; the benchmark does not build them, so that it
// measures exactly what was built:
//
//	go build -o bin/ ./cmd/manager ./cmd/hub ./cmd/devicesim
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/bench/devicetwin/ \
//	    -run '^$' -bench ManagerMemory -benchtime 1x -timeout 40m \
//	    -devicetwin.n 1000,10000
//
// Per size a fresh stack (control plane, hub, manager) starts; N
// DeviceTwins without spec.hubSecretRef (the manager's default hub Secret)
// are created; once all are Synced the manager's VmRSS, and its Go heap from
// its metrics endpoint, are sampled over -devicetwin.steady while the hub
// watcher keeps polling. Metrics:
//
//	sync_s            from the first create until every object is Synced
//	rss_peak_MiB      VmHWM of the manager at the end: the peak over its life
//	rss_steady_MiB    largest VmRSS sampled in the steady state
//	heap_inuse_MiB    largest go_memstats_heap_inuse_bytes sampled then
//	target_ratio      rss_peak_MiB / 300 (the target: ≤ 300 MiB at 10,000; ≤ 1 meets it)
//	hub_rss_MiB       VmRSS of the hub process at the end, for comparison
func BenchmarkDeviceTwinManagerMemory(b *testing.B) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		b.Skip("KUBEBUILDER_ASSETS is not set (KUBEBUILDER_ASSETS=$(hack/envtest.sh))")
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("bad -devicetwin.n %q", s)
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { runManagerMemory(b, n) })
	}
}

// runManagerMemory measures one N on a stack of its own.
func runManagerMemory(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	metricsAddr := freeAddr(b)
	args := append(strings.Fields(*managerArgs), "--metrics-bind-address="+metricsAddr, "--metrics-secure=false")
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	must(b, err)
	stack, err := localstack.Start(ctx, localstack.Options{
		BinDir:      *binDir,
		CRDDir:      filepath.Join(root, "config", "crd", "bases"),
		WorkDir:     b.TempDir(),
		ManagerArgs: args,
	})
	must(b, err)
	b.Cleanup(func() { _ = stack.Stop() })
	pid := childPID(b, "manager")
	b.Logf("manager pid %d, flags %s", pid, strings.Join(args, " "))

	cfg := *stack.RESTConfig
	cfg.QPS, cfg.Burst = -1, 0 // the benchmark's creates must not be throttled client-side
	c, err := client.New(&cfg, client.Options{Scheme: localstack.Scheme()})
	must(b, err)
	ns := namespace(ctx, b, c, "memory")
	registerDevices(ctx, b, stack, n)

	start := time.Now()
	forEach(n, 16, func(i int) {
		dt := benchDeviceTwin(ns, i)
		dt.Spec.HubSecretRef = nil // the manager's default hub Secret
		check(b, c.Create(ctx, dt))
	})
	waitSynced(ctx, b, c, ns, n, stack.Manager)
	b.ReportMetric(time.Since(start).Seconds(), "sync_s")

	steady, heap := sampleSteady(ctx, b, pid, "http://"+metricsAddr+"/metrics")
	// The kernel updates VmHWM lazily, so a VmRSS sample can exceed it.
	peak := max(procStatusMiB(b, pid, "VmHWM"), steady)
	b.ReportMetric(peak, "rss_peak_MiB")
	b.ReportMetric(steady, "rss_steady_MiB")
	b.ReportMetric(heap, "heap_inuse_MiB")
	b.ReportMetric(peak/memoryTargetMiB, "target_ratio")
	b.ReportMetric(procStatusMiB(b, childPID(b, "hub"), "VmRSS"), "hub_rss_MiB")
}

// registerDevices creates the N device identities on the hub, as the
// Apply benchmark does, so that the DeviceTwins need no provisioning (which
// would add a Secret per object to what the manager holds).
func registerDevices(ctx context.Context, b *testing.B, stack *localstack.Stack, n int) {
	var secret corev1.Secret
	must(b, stack.Client.Get(ctx, client.ObjectKey{Namespace: localstack.SystemNamespace, Name: localstack.HubSecretName}, &secret))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(stack.HubCA) {
		b.Fatal("the hub's CA is not PEM")
	}
	hub, err := iothub.NewFromConnectionString(string(secret.Data["connectionString"]),
		iothub.WithRootCAs(pool), iothub.WithLimits(iothub.NoLimits), iothub.WithHubLabel("bench"))
	must(b, err)
	forEach(n, 16, func(i int) {
		_, err := hub.CreateDevice(ctx, &iothub.Device{DeviceID: deviceID(i)})
		check(b, err)
	})
	if b.Failed() {
		b.FailNow()
	}
}

// waitSynced lists the namespace every 2 s (a list of 10,000 objects is
// not free on the apiserver the manager writes to) until n objects are
// Synced for their generation, the manager exits or 20 minutes pass.
func waitSynced(ctx context.Context, b *testing.B, c client.Client, ns string, n int, manager *localstack.Process) {
	last, lastMessage := 0, ""
	err := pollUntil(ctx, 2*time.Second, 20*time.Minute, func() (bool, error) {
		if exited, err := manager.Exited(); exited {
			return false, fmt.Errorf("manager exited (%v):\n%s", err, manager.LogTail(20))
		}
		var list iotv1alpha1.DeviceTwinList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		last = 0
		for i := range list.Items {
			cond := meta.FindStatusCondition(list.Items[i].Status.Conditions, iotv1alpha1.ConditionSynced)
			if cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == list.Items[i].Generation {
				last++
			} else if cond != nil {
				lastMessage = cond.Message
			}
		}
		return last == n, nil
	})
	if err != nil {
		b.Fatalf("%d of %d synced (one not synced says %q): %v", last, n, lastMessage, err)
	}
}

// sampleSteady samples the manager's VmRSS and Go heap in use every 2 s for
// -devicetwin.steady and returns the largest of each, in MiB.
func sampleSteady(ctx context.Context, b *testing.B, pid int, metricsURL string) (rss, heap float64) {
	deadline := time.Now().Add(*steadyFor)
	err := pollUntil(ctx, 2*time.Second, *steadyFor+time.Minute, func() (bool, error) {
		rss = max(rss, procStatusMiB(b, pid, "VmRSS"))
		inuse, err := scrapeGauge(ctx, metricsURL, "go_memstats_heap_inuse_bytes")
		if err != nil {
			return false, err
		}
		heap = max(heap, inuse/(1<<20))
		return time.Now().After(deadline), nil
	})
	must(b, err)
	return rss, heap
}

// pollUntil calls check every interval until it reports done or an error,
// or timeout passes.
func pollUntil(ctx context.Context, interval, timeout time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := check()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// childPID finds the pid of this process's child whose command is comm.
// localstack.Process does not export its pid; its children are direct
// children of this process, so /proc's parent links find them.
func childPID(b *testing.B, comm string) int {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	must(b, err)
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the process ended meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		s := string(data)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open || s[open+1:closing] != comm {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
		must(b, err)
		return pid
	}
	b.Fatalf("no child process %q", comm)
	return 0
}

// procStatusMiB reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status.
func procStatusMiB(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(b, err)
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			must(b, err)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// scrapeGauge reads an unlabelled sample from a Prometheus text endpoint.
func scrapeGauge(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s at %s", name, url)
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	defer ln.Close()
	return ln.Addr().String()
}
