package controllers

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// The validating webhook refuses every IoT Hub limit at admission and names
// the path and the limit. It runs against its own control plane with the
// webhook configuration of config/webhook installed, so the package's shared
// control plane (used without the webhook) is not affected.
func TestDeviceTwinWebhook(t *testing.T) {
	g := NewWithT(t)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "config", "webhook")}},
	}
	whCfg, err := env.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })

	wo := &env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(whCfg, ctrl.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir}),
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(SetupDeviceTwinWebhookWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	addr := net.JoinHostPort(wo.LocalServingHost, fmt.Sprint(wo.LocalServingPort))
	g.Eventually(func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			conn.Close()
		}
		return err
	}, dtTimeout, 50*time.Millisecond).Should(Succeed())

	c, err := client.New(whCfg, client.Options{Scheme: scheme.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dtwh-"}}
	g.Expect(c.Create(ctx, ns)).To(Succeed())

	deep := strings.Repeat(`{"a":`, 12) + "1" + strings.Repeat("}", 12)
	tests := []struct {
		name          string
		tags, desired string
		want          []string // substrings of the refusal; none means accepted
	}{
		{name: "valid", tags: `{"location":{"plant":"Redmond43"}}`, desired: `{"power_level":1,"list":[1,2]}`},
		{name: "dot in key", tags: `{"a.b":1}`, want: []string{"spec.tags.a.b", "invalid character '.'"}},
		{name: "dollar in key", desired: `{"$x":1}`, want: []string{"spec.desired.$x", "invalid character '$'"}},
		{name: "space in key", tags: `{"a b":1}`, want: []string{"spec.tags.a b", "invalid character ' '"}},
		{name: "key too long", desired: `{"` + strings.Repeat("k", 1025) + `":1}`, want: []string{"spec.desired", "1024"}},
		{name: "too deep", desired: deep, want: []string{"spec.desired.a.a", "exceeds 10"}},
		{name: "string too long", tags: `{"s":"` + strings.Repeat("x", 4097) + `"}`, want: []string{"spec.tags.s", "maximum length of 4096"}},
		{name: "integer out of range", desired: `{"n":4503599627370496}`, want: []string{"spec.desired.n", "between -4503599627370496 and 4503599627370495"}},
		{name: "tags over 8 KiB", tags: sized(3, 3000), want: []string{"spec.tags", "less than 8192 bytes"}},
		{name: "desired over 32 KiB", desired: sized(9, 4000), want: []string{"spec.desired", "less than 32768 bytes"}},
		{name: "desired at 32 KiB accepted", desired: sized(8, 4000)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dt := &iotv1alpha1.DeviceTwin{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("dev%d", i)}}
			if tc.tags != "" {
				dt.Spec.Tags = jsonOf(tc.tags)
			}
			if tc.desired != "" {
				dt.Spec.Desired = jsonOf(tc.desired)
			}
			err := c.Create(ctx, dt)
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(HaveOccurred())
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}

	// An update is checked too.
	g.Eventually(func() error {
		var dt iotv1alpha1.DeviceTwin
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "dev0"}, &dt); err != nil {
			return err
		}
		dt.Spec.Tags = jsonOf(`{"a.b":1}`)
		return c.Update(ctx, &dt)
	}, dtTimeout).Should(MatchError(ContainSubstring("invalid character '.'")))
}

// sized returns an object of n string members of size bytes each.
func sized(n, size int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":"%s"`, i, strings.Repeat("x", size))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
