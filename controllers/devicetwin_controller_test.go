package controllers

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/device"
	"github.com/twinsync/twinsync/pkg/hub"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/twin"
)

// The whole tutorial: apply, the device reports over MQTT, the status
// mirrors it and Converged turns True; then a key removed from the spec is
// removed from the hub.
func TestDeviceTwinApplyMirrorConverge(t *testing.T) {
	e := newDTEnv(t)
	deviceCS := e.hub.AddDevice(t, "dev1")
	dt := e.newDT("dev1", `{"location":{"plant":"Redmond43"}}`, `{"power_level":1,"mode":"eco"}`)
	e.g.Expect(k8sClient.Create(e.ctx, dt)).To(Succeed())

	e.eventuallyHub("dev1", func(g Gomega, tw *twin.Twin) {
		g.Expect(canonical(tw.Tags)).To(Equal(`{"location":{"plant":"Redmond43"}}`))
		g.Expect(canonical(tw.Properties.Desired.Values)).To(Equal(`{"mode":"eco","power_level":1}`))
	})
	got := e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded)
	e.g.Expect(got.Status.ManagedTags).To(Equal([]string{"location.plant"}))
	e.g.Expect(got.Status.ManagedDesired).To(ConsistOf("power_level", "mode"))
	e.g.Expect(got.Finalizers).To(BeEmpty(), "Retain needs no finalizer")
	e.waitCondition("dev1", iotv1alpha1.ConditionConverged, metav1.ConditionFalse, iotv1alpha1.ReasonAwaitingDevice)

	dev, err := device.Dial(e.ctx, device.Config{ConnectionString: deviceCS, RootCAs: e.hub.CAPool, IgnoreDesired: true})
	e.g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = dev.Close() })
	_, err = dev.UpdateReported(e.ctx, map[string]any{"power_level": 1.0, "mode": "eco", "connectivity": "cellular"})
	e.g.Expect(err).NotTo(HaveOccurred())

	got = e.waitCondition("dev1", iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded)
	e.g.Expect(string(got.Status.Reported.Raw)).To(ContainSubstring(`"connectivity":"cellular"`))
	e.g.Expect(got.Status.ConnectionState).To(Equal(twin.Connected))
	e.g.Expect(got.Status.ReportedVersion).To(BeNumerically(">=", 2))
	e.g.Expect(got.Status.LastActivityTime).NotTo(BeNil())
	e.g.Expect(condOf(got, iotv1alpha1.ConditionConverged).Status).To(Equal(metav1.ConditionTrue))

	e.update("dev1", func(dt *iotv1alpha1.DeviceTwin) { dt.Spec.Desired = jsonOf(`{"mode":"eco"}`) })
	e.eventuallyHub("dev1", func(g Gomega, tw *twin.Twin) {
		g.Expect(canonical(tw.Properties.Desired.Values)).To(Equal(`{"mode":"eco"}`))
	})
	got = e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")
	e.g.Expect(got.Status.ManagedDesired).To(Equal([]string{"mode"}))
}

func condOf(dt *iotv1alpha1.DeviceTwin, typ string) metav1.Condition {
	for _, c := range dt.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// Another writer's change to a key the object does not manage survives; a
// change to a managed key is corrected back (the watcher notices it).
func TestDeviceTwinConcurrentWriters(t *testing.T) {
	e := newDTEnv(t)
	e.hub.AddDevice(t, "dev1")
	e.g.Expect(k8sClient.Create(e.ctx, e.newDT("dev1", `{"owner":"ops"}`, `{"power_level":1}`))).To(Succeed())
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")

	tw := e.hubTwin("dev1")
	_, err := e.other.UpdateTwin(e.ctx, "dev1", map[string]any{
		"tags": map[string]any{"site": "b7"}, "properties": map[string]any{"desired": map[string]any{"fan": "on"}},
	}, tw.ETag)
	e.g.Expect(err).NotTo(HaveOccurred())
	tw = e.hubTwin("dev1")
	_, err = e.other.UpdateTwin(e.ctx, "dev1", map[string]any{"properties": map[string]any{"desired": map[string]any{"power_level": 9}}}, tw.ETag)
	e.g.Expect(err).NotTo(HaveOccurred())

	e.eventuallyHub("dev1", func(g Gomega, tw *twin.Twin) {
		g.Expect(canonical(tw.Properties.Desired.Values)).To(Equal(`{"fan":"on","power_level":1}`))
		g.Expect(canonical(tw.Tags)).To(Equal(`{"owner":"ops","site":"b7"}`))
	})
}

// A write that lands between the controller's read and its PATCH makes the
// PATCH fail with 412; the controller re-reads, keeps the other write and
// applies its own.
func TestDeviceTwinPreconditionFailedRetried(t *testing.T) {
	var once sync.Once
	var interfered bool
	var e *dtEnv
	e = newDTEnv(t, func(r *DeviceTwinReconciler) {
		r.beforeUpdate = func(deviceID string) {
			once.Do(func() {
				_, err := e.other.UpdateTwin(context.Background(), deviceID, map[string]any{"tags": map[string]any{"racer": "won"}}, iothub.ETagAny)
				interfered = err == nil
			})
		}
	})
	e.hub.AddDevice(t, "dev1")
	before := testutil.ToFloat64(conflictsRetried)
	e.g.Expect(k8sClient.Create(e.ctx, e.newDT("dev1", `{"owner":"ops"}`, ""))).To(Succeed())
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")
	e.g.Expect(interfered).To(BeTrue())
	e.g.Expect(testutil.ToFloat64(conflictsRetried) - before).To(BeNumerically(">=", 1))
	e.g.Expect(canonical(e.hubTwin("dev1").Tags)).To(Equal(`{"owner":"ops","racer":"won"}`))
}

// Writers that change the twin on every attempt exhaust the retries: the
// object reports Conflict and is retried later with backoff.
func TestDeviceTwinConflictExhausted(t *testing.T) {
	var e *dtEnv
	var mu sync.Mutex
	racing := true
	e = newDTEnv(t, func(r *DeviceTwinReconciler) {
		r.beforeUpdate = func(deviceID string) {
			mu.Lock()
			defer mu.Unlock()
			if racing {
				_, _ = e.other.UpdateTwin(context.Background(), deviceID, map[string]any{"tags": map[string]any{"n": time.Now().String()}}, iothub.ETagAny)
			}
		}
	})
	e.hub.AddDevice(t, "dev1")
	e.g.Expect(k8sClient.Create(e.ctx, e.newDT("dev1", `{"owner":"ops"}`, ""))).To(Succeed())
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionFalse, iotv1alpha1.ReasonConflict)
	mu.Lock()
	racing = false
	mu.Unlock()
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded)
}

// Credentials: a missing Secret, a Secret without the key and a malformed
// connection string give Ready=False with their reason and no hub call; the
// Secret watch picks up the fix.
func TestDeviceTwinCredentials(t *testing.T) {
	tests := []struct {
		name   string
		put    func(e *dtEnv)
		reason string
	}{
		{"missing", func(*dtEnv) {}, iotv1alpha1.ReasonSecretNotFound},
		{"no key", func(e *dtEnv) {
			e.g.Expect(k8sClient.Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "late"},
				Data: map[string][]byte{"other": []byte("x")}})).To(Succeed())
		}, iotv1alpha1.ReasonInvalidSecret},
		{"malformed", func(e *dtEnv) { e.putHubSecret("late", "HostName=;nonsense", e.hub.CACertPEM()) }, iotv1alpha1.ReasonInvalidSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDTEnv(t)
			e.hub.AddDevice(t, "dev1")
			tc.put(e)
			dt := e.newDT("dev1", `{"owner":"ops"}`, "")
			dt.Spec.HubSecretRef = hubRef("late")
			e.g.Expect(k8sClient.Create(e.ctx, dt)).To(Succeed())
			got := e.waitCondition("dev1", iotv1alpha1.ConditionReady, metav1.ConditionFalse, tc.reason)
			e.g.Expect(condOf(got, iotv1alpha1.ConditionReady).Message).NotTo(ContainSubstring("SharedAccessKey="))
			e.g.Expect(e.hubTwin("dev1").Tags).To(BeEmpty())

			e.putHubSecret("late", e.hub.ServiceConnectionString, e.hub.CACertPEM())
			e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")
			e.g.Expect(canonical(e.hubTwin("dev1").Tags)).To(Equal(`{"owner":"ops"}`))
		})
	}
}

// A device that does not exist gives DeviceNotFound.
func TestDeviceTwinDeviceNotFound(t *testing.T) {
	e := newDTEnv(t)
	e.g.Expect(k8sClient.Create(e.ctx, e.newDT("ghost", `{"owner":"ops"}`, ""))).To(Succeed())
	e.waitCondition("ghost", iotv1alpha1.ConditionReady, metav1.ConditionFalse, iotv1alpha1.ReasonDeviceNotFound)
}

// Provisioning creates the identity and writes a Secret, owned by the
// DeviceTwin, whose connection string and CA work for an MQTT connection.
func TestDeviceTwinProvisioning(t *testing.T) {
	e := newDTEnv(t)
	dt := e.newDT("newdev", "", `{"power_level":2}`)
	dt.Spec.Provisioning = &iotv1alpha1.Provisioning{CreateIdentity: true, SecretName: "newdev-device"}
	e.g.Expect(k8sClient.Create(e.ctx, dt)).To(Succeed())
	e.waitCondition("newdev", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")

	var secret corev1.Secret
	e.g.Eventually(func() error {
		return k8sClient.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "newdev-device"}, &secret)
	}, dtTimeout).Should(Succeed())
	e.g.Expect(secret.Data).To(HaveKey(DeviceSecretConnectionStringKey))
	e.g.Expect(secret.Data[DeviceSecretCAKey]).To(Equal(e.hub.CACertPEM()))
	e.g.Expect(secret.OwnerReferences).To(HaveLen(1))
	e.g.Expect(secret.OwnerReferences[0].Name).To(Equal("newdev"))

	pool := e.hub.CAPool.Clone()
	e.g.Expect(pool.AppendCertsFromPEM(secret.Data[DeviceSecretCAKey])).To(BeTrue())
	dev, err := device.Dial(e.ctx, device.Config{ConnectionString: string(secret.Data[DeviceSecretConnectionStringKey]), RootCAs: pool})
	e.g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = dev.Close() })
	patch := <-dev.DesiredPatches()
	e.g.Expect(canonical(patch.Properties)).To(Equal(`{"power_level":2}`))
	_, err = dev.UpdateReported(e.ctx, patch.Properties)
	e.g.Expect(err).NotTo(HaveOccurred())
	e.waitCondition("newdev", iotv1alpha1.ConditionConverged, metav1.ConditionTrue, "")
}

// Each deletion policy, and the escape hatch for a hub gone for good.
func TestDeviceTwinDeletionPolicies(t *testing.T) {
	tests := []struct {
		policy    iotv1alpha1.DeletionPolicy
		hubGone   bool
		check     func(e *dtEnv)
		skipClean bool
	}{
		{policy: iotv1alpha1.DeletionPolicyRetain, check: func(e *dtEnv) {
			e.g.Expect(canonical(e.hubTwin("dev1").Tags)).To(Equal(`{"owner":"ops","site":"b7"}`))
		}},
		{policy: iotv1alpha1.DeletionPolicyClearManaged, check: func(e *dtEnv) {
			tw := e.hubTwin("dev1")
			e.g.Expect(canonical(tw.Tags)).To(Equal(`{"site":"b7"}`))
			e.g.Expect(tw.Properties.Desired.Values).To(BeEmpty())
		}},
		{policy: iotv1alpha1.DeletionPolicyDeleteDevice, check: func(e *dtEnv) {
			_, err := e.other.GetTwin(e.ctx, "dev1")
			e.g.Expect(err).To(MatchError(iothub.ErrNotFound))
		}},
		{policy: iotv1alpha1.DeletionPolicyClearManaged, hubGone: true, skipClean: true},
	}
	for _, tc := range tests {
		t.Run(string(tc.policy)+map[bool]string{true: "-hub-gone"}[tc.hubGone], func(t *testing.T) {
			e := newDTEnv(t)
			e.hub.AddDevice(t, "dev1")
			dt := e.newDT("dev1", `{"owner":"ops"}`, `{"power_level":1}`)
			dt.Spec.DeletionPolicy = tc.policy
			e.g.Expect(k8sClient.Create(e.ctx, dt)).To(Succeed())
			got := e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")
			if tc.policy != iotv1alpha1.DeletionPolicyRetain {
				e.g.Expect(got.Finalizers).To(ContainElement(DeviceTwinFinalizer))
			}
			tw := e.hubTwin("dev1")
			_, err := e.other.UpdateTwin(e.ctx, "dev1", map[string]any{"tags": map[string]any{"site": "b7"}}, tw.ETag)
			e.g.Expect(err).NotTo(HaveOccurred())
			if tc.hubGone {
				e.putHubSecret("hub", "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=AAAA", e.hub.CACertPEM())
			}

			e.g.Expect(k8sClient.Delete(e.ctx, e.get("dev1"))).To(Succeed())
			if tc.hubGone {
				e.waitCondition("dev1", iotv1alpha1.ConditionReady, metav1.ConditionFalse, iotv1alpha1.ReasonHubUnreachable)
				e.update("dev1", func(dt *iotv1alpha1.DeviceTwin) { dt.Annotations = map[string]string{SkipHubCleanupAnnotation: "true"} })
			}
			e.g.Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "dev1"}, &iotv1alpha1.DeviceTwin{}))
			}, dtTimeout).Should(BeTrue())
			if tc.check != nil {
				tc.check(e)
			}
		})
	}
}

// The pause annotation stops applies; the reconcile-now annotation is
// answered in status.lastHandledReconcileAt.
func TestDeviceTwinPauseAndReconcileNow(t *testing.T) {
	e := newDTEnv(t)
	e.hub.AddDevice(t, "dev1")
	e.g.Expect(k8sClient.Create(e.ctx, e.newDT("dev1", `{"v":"1"}`, ""))).To(Succeed())
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")

	e.update("dev1", func(dt *iotv1alpha1.DeviceTwin) {
		dt.Annotations = map[string]string{iotv1alpha1.PausedAnnotation: "true"}
	})
	e.waitCondition("dev1", iotv1alpha1.ConditionReady, metav1.ConditionUnknown, iotv1alpha1.ReasonPaused)
	e.update("dev1", func(dt *iotv1alpha1.DeviceTwin) { dt.Spec.Tags = jsonOf(`{"v":"2"}`) })
	e.g.Consistently(func() string { return canonical(e.hubTwin("dev1").Tags) }, 2*time.Second, 100*time.Millisecond).Should(Equal(`{"v":"1"}`))

	e.update("dev1", func(dt *iotv1alpha1.DeviceTwin) {
		dt.Annotations = map[string]string{iotv1alpha1.ReconcileRequestAnnotation: "now-1"}
	})
	e.eventuallyHub("dev1", func(g Gomega, tw *twin.Twin) { g.Expect(canonical(tw.Tags)).To(Equal(`{"v":"2"}`)) })
	e.g.Eventually(func() string { return e.get("dev1").Status.LastHandledReconcileAt }, dtTimeout).Should(Equal("now-1"))
}

// A reconcile that finds nothing changed writes nothing: no status patch,
// no twin write.
func TestDeviceTwinUnchangedStatusNotWritten(t *testing.T) {
	e := newDTEnv(t, func(r *DeviceTwinReconciler) { r.WatchInterval = -1 })
	e.hub.AddDevice(t, "dev1")
	e.g.Expect(k8sClient.Create(e.ctx, e.newDT("dev1", `{"owner":"ops"}`, `{"a":{"b":1.0}}`))).To(Succeed())
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, "")
	e.g.Expect(e.writes.Load()).To(BeNumerically(">", 0), "the counter must see the status writes that made the object Synced")
	// Wait for the cache to catch up with the last status write.
	e.g.Eventually(func(g Gomega) {
		res, err := e.rec.Reconcile(e.ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: e.ns, Name: "dev1"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res).To(Equal(ctrl.Result{}))
		before := e.writes.Load()
		_, err = e.rec.Reconcile(e.ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: e.ns, Name: "dev1"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.writes.Load()).To(Equal(before))
	}, dtTimeout).Should(Succeed())

	etag := e.hubTwin("dev1").ETag
	writes := e.writes.Load()
	for range 5 {
		_, err := e.rec.Reconcile(e.ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: e.ns, Name: "dev1"}})
		e.g.Expect(err).NotTo(HaveOccurred())
	}
	e.g.Expect(e.writes.Load()).To(Equal(writes), "status writes")
	e.g.Expect(e.hubTwin("dev1").ETag).To(Equal(etag), "twin writes")
}

// Exclusive ownership removes keys nobody declared.
func TestDeviceTwinExclusiveOwnership(t *testing.T) {
	e := newDTEnv(t)
	e.hub.AddDevice(t, "dev1")
	tw := e.hubTwin("dev1")
	_, err := e.other.UpdateTwin(e.ctx, "dev1", map[string]any{"tags": map[string]any{"stray": 1}}, tw.ETag)
	e.g.Expect(err).NotTo(HaveOccurred())
	dt := e.newDT("dev1", `{"owner":"ops"}`, "")
	dt.Spec.Ownership = iotv1alpha1.OwnershipExclusive
	e.g.Expect(k8sClient.Create(e.ctx, dt)).To(Succeed())
	e.eventuallyHub("dev1", func(g Gomega, tw *twin.Twin) { g.Expect(canonical(tw.Tags)).To(Equal(`{"owner":"ops"}`)) })
}

// A hub that is down gives HubUnreachable; when it comes back on the same
// address the controller's backoff retries and the twin is applied.
func TestDeviceTwinHubDownThenUp(t *testing.T) {
	e := newDTEnv(t)
	httpsAddr, mqttAddr := freeAddr(t), freeAddr(t)
	hubCfg := hub.Config{Hostname: httpsAddr, HTTPSAddr: httpsAddr, MQTTAddr: mqttAddr, DataDir: t.TempDir()}
	first, err := hub.New(hubCfg)
	e.g.Expect(err).NotTo(HaveOccurred())
	_, err = first.RegisterDevice("dev1")
	e.g.Expect(err).NotTo(HaveOccurred())
	cs, err := first.ServiceConnectionString("iothubowner")
	e.g.Expect(err).NotTo(HaveOccurred())
	ca := first.CACertPEM()
	e.g.Expect(first.Close()).To(Succeed())

	e.putHubSecret("flaky", cs, ca)
	dt := e.newDT("dev1", `{"owner":"ops"}`, "")
	dt.Spec.HubSecretRef = hubRef("flaky")
	e.g.Expect(k8sClient.Create(e.ctx, dt)).To(Succeed())
	got := e.waitCondition("dev1", iotv1alpha1.ConditionReady, metav1.ConditionFalse, iotv1alpha1.ReasonHubUnreachable)
	e.g.Expect(condOf(got, iotv1alpha1.ConditionReady).Message).NotTo(ContainSubstring("SharedAccessKey"))

	second, err := hub.New(hubCfg)
	e.g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = second.Close() })
	e.waitCondition("dev1", iotv1alpha1.ConditionSynced, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded)
	c, err := iothub.NewFromConnectionString(cs, iothub.WithRootCAs(second.CACertPool()), iothub.WithLimits(iothub.NoLimits))
	e.g.Expect(err).NotTo(HaveOccurred())
	tw, err := c.GetTwin(e.ctx, "dev1")
	e.g.Expect(err).NotTo(HaveOccurred())
	e.g.Expect(canonical(tw.Tags)).To(Equal(`{"owner":"ops"}`))
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
