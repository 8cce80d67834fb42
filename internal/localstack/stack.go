package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// Names of the objects the stack creates for the manager, the same as
// config/hub creates in a cluster.
const (
	// SystemNamespace is the manager's namespace.
	SystemNamespace = "twinsync-system"
	// HubSecretName is the default hub Secret: the iothubowner service
	// connection string (key connectionString) and the hub CA (key ca.crt).
	HubSecretName = "twinsync-hub-connection"
)

// startTimeout bounds the start of each process.
const startTimeout = 60 * time.Second

// Options configure Start.
type Options struct {
	// BinDir holds the manager, hub and devicesim binaries (make build).
	BinDir string
	// AssetsDir holds etcd and kube-apiserver (hack/envtest.sh); default
	// $KUBEBUILDER_ASSETS.
	AssetsDir string
	// CRDDir holds the CRD manifests (config/crd/bases).
	CRDDir string
	// RBACDir, when set, holds config/rbac: the manager then runs as its
	// ServiceAccount with those roles instead of as cluster admin, which
	// proves the generated RBAC is enough.
	RBACDir string
	// WorkDir receives the kubeconfig, logs and the device's Secret files.
	// It must exist; the caller removes it.
	WorkDir string
	// Progress receives one line per step; default io.Discard.
	Progress io.Writer
	// ManagerArgs are added to the manager's flags.
	ManagerArgs []string
}

// Stack is a running local control plane, hub and manager.
type Stack struct {
	// Client reads and writes the control plane as cluster admin.
	Client client.Client
	// RESTConfig is the admin configuration Client uses.
	RESTConfig *rest.Config
	// Kubeconfig is the path of an admin kubeconfig for kubectl.
	Kubeconfig string
	// HubHTTPSAddr and HubMQTTAddr are the hub's loopback endpoints.
	HubHTTPSAddr, HubMQTTAddr string
	// HubCA is the hub's CA certificate (PEM).
	HubCA []byte
	// Hub and Manager are the child processes.
	Hub, Manager *Process

	opts    Options
	env     *envtest.Environment
	devices []*Process
}

// Scheme knows the built-in kinds and twinsync's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := iotv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Start starts the control plane, installs the CRDs, starts the hub,
// writes the default hub Secret and starts the manager. On error everything
// already started is stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.AssetsDir == "" {
		opts.AssetsDir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if opts.AssetsDir == "" {
		return nil, errors.New("no etcd and kube-apiserver: set KUBEBUILDER_ASSETS (KUBEBUILDER_ASSETS=$(hack/envtest.sh))")
	}
	for _, bin := range []string{"manager", "hub", "devicesim"} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, bin)); err != nil {
			return nil, fmt.Errorf("%s not built (make build): %w", bin, err)
		}
	}
	s := &Stack{opts: opts}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err := s.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := retryPortClash(func() error { return s.startHub(ctx) }); err != nil {
		return nil, err
	}
	if err := s.writeHubSecret(ctx); err != nil {
		return nil, err
	}
	kubeconfig, err := s.writeManagerKubeconfig(ctx, s.opts.RBACDir)
	if err != nil {
		return nil, err
	}
	if err := retryPortClash(func() error { return s.startManager(ctx, kubeconfig) }); err != nil {
		return nil, err
	}
	return s, nil
}

// portClashAttempts bounds the restarts of a child whose free port was
// taken between freeLoopbackAddr and the child's bind.
const portClashAttempts = 3

// retryPortClash runs start again, up to portClashAttempts times, while it
// fails because an address was already in use (the child's log, which the
// error quotes, says so).
func retryPortClash(start func() error) error {
	var err error
	for range portClashAttempts {
		if err = start(); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
	}
	return err
}

func (s *Stack) step(format string, args ...any) {
	fmt.Fprintf(s.opts.Progress, "==> "+format+"\n", args...)
}

func (s *Stack) startControlPlane(ctx context.Context) error {
	// envtest logs through controller-runtime's global logger; without one
	// it prints a warning with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	s.step("starting etcd and kube-apiserver (%s)", s.opts.AssetsDir)
	s.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{s.opts.CRDDir},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: s.opts.AssetsDir,
	}
	cfg, err := s.env.Start()
	if err != nil {
		s.env = nil
		return fmt.Errorf("start the control plane: %w", err)
	}
	user, err := s.env.AddUser(envtest.User{Name: "twinsync-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return fmt.Errorf("add an admin user: %w", err)
	}
	s.RESTConfig = user.Config()
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	s.Kubeconfig = filepath.Join(s.opts.WorkDir, "kubeconfig")
	if err := os.WriteFile(s.Kubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}
	if s.Client, err = client.New(s.RESTConfig, client.Options{Scheme: Scheme()}); err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if err := s.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", SystemNamespace, err)
	}
	s.step("control plane up at %s; CRDs installed: devicetwins, twinqueries (iot.twinsync.io)", s.RESTConfig.Host)
	return nil
}

func (s *Stack) startHub(ctx context.Context) error {
	httpsAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	mqttAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	exportDir := filepath.Join(s.opts.WorkDir, "hub")
	s.Hub, err = startProcess("hub", filepath.Join(s.opts.WorkDir, "hub.log"), nil, nil,
		filepath.Join(s.opts.BinDir, "hub"),
		"--in-memory", "--hostname="+httpsAddr, "--https-addr="+httpsAddr, "--mqtt-addr="+mqttAddr,
		"--export-dir="+exportDir)
	if err != nil {
		return err
	}
	caPath := filepath.Join(exportDir, "ca.pem")
	csPath := filepath.Join(exportDir, "service-connection-string")
	err = s.waitProcess(ctx, s.Hub, "the hub to listen", func(context.Context) (bool, string) {
		if _, err := os.Stat(csPath); err != nil {
			return false, "no connection string exported yet"
		}
		return true, ""
	})
	if err != nil {
		return err
	}
	if s.HubCA, err = os.ReadFile(caPath); err != nil {
		return err
	}
	s.HubHTTPSAddr, s.HubMQTTAddr = httpsAddr, mqttAddr
	s.step("hub up: HTTPS REST on %s, MQTT/TLS on %s (in memory; log %s)", httpsAddr, mqttAddr, s.Hub.LogPath)
	return nil
}

// writeHubSecret creates the manager's default hub Secret from the hub's
// exported connection string and CA.
func (s *Stack) writeHubSecret(ctx context.Context) error {
	cs, err := os.ReadFile(filepath.Join(s.opts.WorkDir, "hub", "service-connection-string"))
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: HubSecretName},
		Data: map[string][]byte{
			"connectionString": []byte(strings.TrimSpace(string(cs))),
			"ca.crt":           s.HubCA,
		},
	}
	if err := s.Client.Create(ctx, secret); err != nil {
		return fmt.Errorf("create Secret %s/%s: %w", SystemNamespace, HubSecretName, err)
	}
	s.step("default hub Secret %s/%s written (keys connectionString, ca.crt)", SystemNamespace, HubSecretName)
	return nil
}

// startManager starts the manager with kubeconfig and waits for /readyz.
func (s *Stack) startManager(ctx context.Context, kubeconfig string) error {
	probeAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	args := append([]string{
		"--default-hub-secret=" + SystemNamespace + "/" + HubSecretName,
		"--default-hub-ca-key=ca.crt",
		"--health-probe-bind-address=" + probeAddr,
		"--metrics-bind-address=0",
		// The embedded hub does not throttle; S3 keeps the client-side
		// budget out of the way of a quick demo.
		"--hub-tier=S3",
	}, s.opts.ManagerArgs...)
	s.Manager, err = startProcess("manager", filepath.Join(s.opts.WorkDir, "manager.log"), nil,
		[]string{"KUBECONFIG=" + kubeconfig, "POD_NAMESPACE=" + SystemNamespace},
		filepath.Join(s.opts.BinDir, "manager"), args...)
	if err != nil {
		return err
	}
	readyz := "http://" + probeAddr + "/readyz"
	err = s.waitProcess(ctx, s.Manager, "the manager to be ready", func(ctx context.Context) (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if err != nil {
		return err
	}
	identity := "cluster admin"
	if s.opts.RBACDir != "" {
		identity = "ServiceAccount " + SystemNamespace + "/" + managerServiceAccount + " with the roles of " + s.opts.RBACDir
	}
	s.step("manager up as %s (default hub %s/%s; log %s)", identity, SystemNamespace, HubSecretName, s.Manager.LogPath)
	return nil
}

// waitProcess polls check until it succeeds, p exits or startTimeout
// passes. An exit fails at once, with the end of the process's log.
func (s *Stack) waitProcess(ctx context.Context, p *Process, what string, check func(context.Context) (bool, string)) error {
	var exitErr error
	err := Poll(ctx, startTimeout, what, func(ctx context.Context) (bool, string) {
		if exited, err := p.Exited(); exited {
			exitErr = fmt.Errorf("%s exited (%v) while waiting for %s; the end of %s:\n%s", p.Name, err, what, p.LogPath, p.LogTail(20))
			return true, ""
		}
		return check(ctx)
	})
	if exitErr != nil {
		return exitErr
	}
	return err
}

// Stop stops the device simulators, the manager, the hub and the control
// plane, in that order, and returns the first error.
func (s *Stack) Stop() error {
	var errs []error
	for _, p := range append(append([]*Process{}, s.devices...), s.Manager, s.Hub) {
		if p != nil {
			if err := p.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
			}
		}
	}
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("control plane: %w", err))
		}
		s.env = nil
	}
	return errors.Join(errs...)
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a
// moment ago. The child binds it right after; a collision in between fails
// the start with a clear error rather than silently.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Poll calls check every 200ms until it reports done, ctx ends or timeout
// passes; the error then says what was awaited and what check last said.
func Poll(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		done, state := check(ctx)
		if done {
			return nil
		}
		if state != "" {
			last = state
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
		case <-tick.C:
		}
	}
}
