package controllers

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/device"
	"github.com/twinsync/twinsync/pkg/hub/hubtest"
	"github.com/twinsync/twinsync/pkg/iothub"
)

// The tutorial's two queries: the device is listed by the plant query at
// once and by the cellular query only after it reports connectivity.
func TestTwinQueryTutorial(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	svc := env.serviceClient()
	deviceCS := env.hub.AddDevice(t, "myDeviceId")
	patch := map[string]any{"tags": map[string]any{"location": map[string]any{"region": "US", "plant": "Redmond43"}}}
	if _, err := svc.UpdateTwin(env.ctx, "myDeviceId", patch, iothub.ETagAny); err != nil {
		t.Fatal(err)
	}
	env.tagDevice(svc, "otherDevice", "Seattle")

	env.create("plant", "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'")
	env.create("cellular", "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity = 'cellular'")

	listing := func(ids ...string) func(*iotv1alpha1.TwinQuery) error {
		return tqAll(tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded),
			func(tq *iotv1alpha1.TwinQuery) error {
				if !slices.Equal(tq.Status.DeviceIDs, ids) || tq.Status.Count != int64(len(ids)) || tq.Status.Truncated {
					return fmt.Errorf("deviceIds %v count %d truncated %v, want %v", tq.Status.DeviceIDs, tq.Status.Count, tq.Status.Truncated, ids)
				}
				if tq.Status.ObservedGeneration != tq.Generation || tq.Status.LastRefreshTime == nil {
					return errors.New("observedGeneration or lastRefreshTime not set")
				}
				return nil
			})
	}
	env.waitFor("plant", listing("myDeviceId"))
	env.waitFor("cellular", listing())

	dev, err := device.Dial(env.ctx, device.Config{ConnectionString: deviceCS, RootCAs: env.hub.CAPool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	if _, err := dev.UpdateReported(env.ctx, map[string]any{"connectivity": "cellular"}); err != nil {
		t.Fatal(err)
	}
	env.waitFor("cellular", listing("myDeviceId"))
	env.waitFor("plant", listing("myDeviceId"))
}

// Projections and aggregates land in rows: GROUP BY with COUNT.
func TestTwinQueryGroupByRows(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	svc := env.serviceClient()
	for i, plant := range []string{"Redmond43", "Redmond43", "Seattle"} {
		env.tagDevice(svc, fmt.Sprintf("dev%d", i), plant)
	}
	env.create("byplant", "SELECT tags.location.plant AS plant, COUNT() AS numberOfDevices FROM devices GROUP BY tags.location.plant")
	env.create("projection", "SELECT deviceId, tags.location.plant FROM devices WHERE tags.location.plant = 'Seattle'")

	wantRows := func(want ...string) func(*iotv1alpha1.TwinQuery) error {
		return func(tq *iotv1alpha1.TwinQuery) error {
			if len(tq.Status.DeviceIDs) != 0 {
				return fmt.Errorf("deviceIds %v on a projection", tq.Status.DeviceIDs)
			}
			var got []map[string]any
			for _, r := range tq.Status.Rows {
				var m map[string]any
				if err := json.Unmarshal(r.Raw, &m); err != nil {
					return err
				}
				got = append(got, m)
			}
			var exp []map[string]any
			for _, w := range want {
				var m map[string]any
				if err := json.Unmarshal([]byte(w), &m); err != nil {
					return err
				}
				exp = append(exp, m)
			}
			if !reflect.DeepEqual(got, exp) || tq.Status.Count != int64(len(want)) {
				return fmt.Errorf("rows %v count %d, want %v", got, tq.Status.Count, exp)
			}
			return nil
		}
	}
	env.waitFor("byplant", wantRows(`{"plant":"Redmond43","numberOfDevices":2}`, `{"plant":"Seattle","numberOfDevices":1}`))
	env.waitFor("projection", wantRows(`{"deviceId":"dev2","plant":"Seattle"}`))
}

// maxResults cuts the ids kept, not the count, and says truncated.
func TestTwinQueryMaxResults(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	svc := env.serviceClient()
	for i := range 5 {
		env.tagDevice(svc, fmt.Sprintf("dev%d", i), "Redmond43")
	}
	env.create("two", "SELECT * FROM devices", func(tq *iotv1alpha1.TwinQuery) { tq.Spec.MaxResults = 2 })
	env.waitFor("two", func(tq *iotv1alpha1.TwinQuery) error {
		if !slices.Equal(tq.Status.DeviceIDs, []string{"dev0", "dev1"}) || tq.Status.Count != 5 || !tq.Status.Truncated {
			return fmt.Errorf("deviceIds %v count %d truncated %v", tq.Status.DeviceIDs, tq.Status.Count, tq.Status.Truncated)
		}
		return nil
	})
}

// Module twins are listed as deviceId/moduleId in the hub's order.
func TestTwinQueryModuleTwins(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	svc := env.serviceClient()
	for _, id := range []string{"dev0/edgeAgent", "dev0/sensor", "dev1/sensor"} {
		dev, mod, _ := strings.Cut(id, "/")
		if _, err := svc.GetDevice(env.ctx, dev); errors.Is(err, iothub.ErrNotFound) {
			env.tagDevice(svc, dev, "Redmond43")
		}
		if _, err := svc.CreateModule(env.ctx, &iothub.Device{DeviceID: dev, ModuleID: mod}); err != nil {
			t.Fatal(err)
		}
	}
	env.create("modules", "SELECT * FROM devices.modules")
	env.create("sensors", "SELECT * FROM devices.modules WHERE moduleId = 'sensor'")
	for name, want := range map[string][]string{
		"modules": {"dev0/edgeAgent", "dev0/sensor", "dev1/sensor"},
		"sensors": {"dev0/sensor", "dev1/sensor"},
	} {
		env.waitFor(name, func(tq *iotv1alpha1.TwinQuery) error {
			if !slices.Equal(tq.Status.DeviceIDs, want) || tq.Status.Count != int64(len(want)) {
				return fmt.Errorf("deviceIds %v count %d, want %v", tq.Status.DeviceIDs, tq.Status.Count, want)
			}
			return nil
		})
	}
}

// An invalid query is refused with its position before any hub call; a
// fixed query then runs.
func TestTwinQueryInvalidQuery(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	env.create("bad", "SELECT * FROM devices WHERE tags.location.plant =")
	tq := env.waitFor("bad", tqAll(
		tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionFalse, iotv1alpha1.ReasonInvalidQuery),
		tqCondition(iotv1alpha1.ConditionStalled, metav1.ConditionTrue, iotv1alpha1.ReasonInvalidQuery)))
	if msg := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionReady).Message; !strings.Contains(msg, "line 1, column") {
		t.Errorf("Ready message %q does not give the position", msg)
	}
	if n := env.transport.queries.Load(); n != 0 {
		t.Fatalf("the hub saw %d queries for an invalid query", n)
	}
	env.waitUntil("a QueryFailed event", func() bool {
		var events eventsv1.EventList
		if err := k8sClient.List(env.ctx, &events, client.InNamespace(env.ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Regarding.Name == "bad" && e.Reason == tqEventQueryFailed && e.Type == "Warning" && strings.Contains(e.Note, "line 1, column") {
				return true
			}
		}
		return false
	})

	tq.Spec.Query = "SELECT * FROM devices"
	if err := k8sClient.Update(env.ctx, tq); err != nil {
		t.Fatal(err)
	}
	env.waitFor("bad", tqAll(tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded),
		func(tq *iotv1alpha1.TwinQuery) error {
			if meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionStalled) != nil {
				return errors.New("still Stalled")
			}
			return nil
		}))
}

// A hub answering 429 makes the query Throttled with the hub's message; it
// recovers once the hub's bucket refills.
func TestTwinQueryHubThrottling(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{
		hubOptions: []hubtest.Option{hubtest.Throttled("S1", 1)},
		retry:      iothub.NoRetry,
	})
	// Drain the hub's query bucket from another client.
	drain := env.serviceClient(iothub.WithRetry(iothub.NoRetry))
	for i := 0; ; i++ {
		_, err := drain.Query("SELECT * FROM devices").NextPage(env.ctx)
		if errors.Is(err, iothub.ErrThrottled) {
			break
		}
		if err != nil || i > 100 {
			t.Fatalf("draining the hub's query budget: %v after %d queries", err, i)
		}
	}
	env.create("throttled", "SELECT * FROM devices")
	tq := env.waitFor("throttled", tqAll(
		tqCondition(iotv1alpha1.ConditionThrottled, metav1.ConditionTrue, iotv1alpha1.ReasonThrottled),
		tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionFalse, iotv1alpha1.ReasonThrottled)))
	if msg := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionThrottled).Message; !strings.Contains(msg, "Throttl") {
		t.Errorf("Throttled message %q does not carry the hub's error", msg)
	}
	env.waitFor("throttled", tqAll(tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded),
		func(tq *iotv1alpha1.TwinQuery) error {
			if meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionThrottled) != nil {
				return errors.New("still Throttled")
			}
			return nil
		}))
}

// More queries than the hub's budget allows are spread out and say
// Throttled/BudgetShort; they recover when the demand drops.
func TestTwinQueryBudgetShort(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{limits: iothub.MustTierLimits(iothub.S1, 1)})
	skipped := testutil.ToFloat64(twinQuerySkipped)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		env.create(n, "SELECT * FROM devices")
	}
	for _, n := range names {
		// Once all three are registered, each says how the budget is shared.
		env.waitFor(n, tqAll(tqCondition(iotv1alpha1.ConditionThrottled, metav1.ConditionTrue, iotv1alpha1.ReasonBudgetShort),
			func(tq *iotv1alpha1.TwinQuery) error {
				if msg := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionThrottled).Message; !strings.Contains(msg, "3 TwinQueries") {
					return fmt.Errorf("Throttled message %q does not explain the budget of three queries", msg)
				}
				return nil
			}))
	}
	if got := testutil.ToFloat64(twinQuerySkipped); got <= skipped {
		t.Errorf("no refresh was postponed for the budget (skipped counter %v)", got)
	}
	for _, n := range names[1:] {
		if err := k8sClient.Delete(env.ctx, env.get(n)); err != nil {
			t.Fatal(err)
		}
	}
	tq := env.get("a")
	tq.Spec.RefreshInterval = metav1.Duration{Duration: time.Minute}
	if err := k8sClient.Update(env.ctx, tq); err != nil {
		t.Fatal(err)
	}
	env.waitFor("a", tqAll(tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded),
		func(tq *iotv1alpha1.TwinQuery) error {
			if c := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionThrottled); c != nil {
				return fmt.Errorf("still Throttled: %s", c.Message)
			}
			return nil
		}))
	if n := env.transport.throttled.Load(); n != 0 {
		t.Errorf("the hub answered 429 %d times", n)
	}
}

// Refreshes that find the same result write nothing: status writes stay
// flat over several intervals. A requested reconcile is echoed.
func TestTwinQueryUnchangedResultsWriteNothing(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	svc := env.serviceClient()
	env.tagDevice(svc, "dev0", "Redmond43")
	env.create("quiet", "SELECT * FROM devices")
	first := env.waitFor("quiet", tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded))

	writes, queries := env.statusWrites.Load(), env.transport.queries.Load()
	unchanged := testutil.ToFloat64(twinQueryRefreshes.WithLabelValues(tqRefreshUnchanged))
	env.waitUntil("three more refreshes", func() bool { return env.transport.queries.Load() >= queries+3 })
	env.waitUntil("the unchanged refreshes counted", func() bool {
		return testutil.ToFloat64(twinQueryRefreshes.WithLabelValues(tqRefreshUnchanged)) >= unchanged+3
	})
	if got := env.statusWrites.Load(); got != writes {
		t.Errorf("%d status writes over three unchanged refreshes", got-writes)
	}
	if now := env.get("quiet"); now.ResourceVersion != first.ResourceVersion {
		t.Errorf("resourceVersion moved from %s to %s", first.ResourceVersion, now.ResourceVersion)
	}

	// A change is written at once, with a new lastRefreshTime.
	env.tagDevice(svc, "dev1", "Redmond43")
	env.waitFor("quiet", func(tq *iotv1alpha1.TwinQuery) error {
		if tq.Status.Count != 2 || !tq.Status.LastRefreshTime.After(first.Status.LastRefreshTime.Time) {
			return fmt.Errorf("count %d lastRefreshTime %v", tq.Status.Count, tq.Status.LastRefreshTime)
		}
		return nil
	})
	if got := env.statusWrites.Load(); got <= writes {
		t.Errorf("the changed result was not counted as a status write (%d before, %d after)", writes, got)
	}

	// A reconcile request is handled and echoed.
	tq := env.get("quiet")
	patch := client.MergeFrom(tq.DeepCopy())
	metav1.SetMetaDataAnnotation(&tq.ObjectMeta, iotv1alpha1.ReconcileRequestAnnotation, "now-1")
	if err := k8sClient.Patch(env.ctx, tq, patch); err != nil {
		t.Fatal(err)
	}
	env.waitFor("quiet", func(tq *iotv1alpha1.TwinQuery) error {
		if tq.Status.LastHandledReconcileAt != "now-1" {
			return fmt.Errorf("lastHandledReconcileAt %q", tq.Status.LastHandledReconcileAt)
		}
		return nil
	})
}

// A query returning 10,000 twins keeps status under the byte budget and
// says truncated; count still has every row.
func TestTwinQueryByteBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 10,000 devices")
	}
	env := startTwinQueryEnv(t, tqOptions{})
	const n = 10000
	for i := range n {
		if _, err := env.hub.RegisterDevice(fmt.Sprintf("a-device-with-a-rather-long-name-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	env.create("big", "SELECT * FROM devices", func(tq *iotv1alpha1.TwinQuery) {
		tq.Spec.MaxResults = n
		tq.Spec.RefreshInterval = metav1.Duration{Duration: time.Minute}
	})
	tq := env.waitFor("big", func(tq *iotv1alpha1.TwinQuery) error {
		if tq.Status.Count != n || !tq.Status.Truncated || len(tq.Status.DeviceIDs) == 0 {
			return fmt.Errorf("count %d truncated %v ids %d", tq.Status.Count, tq.Status.Truncated, len(tq.Status.DeviceIDs))
		}
		return nil
	})
	ids, err := json.Marshal(tq.Status.DeviceIDs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) > StatusByteBudget || len(tq.Status.DeviceIDs) >= n {
		t.Errorf("status keeps %d ids in %d bytes, budget %d", len(tq.Status.DeviceIDs), len(ids), StatusByteBudget)
	}
	if len(ids) < StatusByteBudget*9/10 {
		t.Errorf("status keeps only %d bytes of ids, far below the budget of %d", len(ids), StatusByteBudget)
	}
	for i, id := range tq.Status.DeviceIDs {
		if want := fmt.Sprintf("a-device-with-a-rather-long-name-%05d", i); id != want {
			t.Fatalf("deviceIds[%d] = %q, want %q (hub order)", i, id, want)
		}
	}
}

// A missing Secret stalls the query; creating it resumes without any
// change to the TwinQuery.
func TestTwinQuerySecretWatch(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	env.create("later", "SELECT * FROM devices", func(tq *iotv1alpha1.TwinQuery) {
		tq.Spec.HubSecretRef.Name = "created-later"
	})
	tq := env.waitFor("later", tqCondition(iotv1alpha1.ConditionStalled, metav1.ConditionTrue, iotv1alpha1.ReasonSecretNotFound))
	if msg := meta.FindStatusCondition(tq.Status.Conditions, iotv1alpha1.ConditionReady).Message; strings.Contains(msg, "SharedAccessKey") {
		t.Fatalf("condition leaks credentials: %q", msg)
	}
	env.createHubSecret("created-later")
	env.waitFor("later", tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded))
}

// A paused TwinQuery neither refreshes nor writes status; removing the
// annotation picks up the spec change made meanwhile.
func TestTwinQueryPaused(t *testing.T) {
	env := startTwinQueryEnv(t, tqOptions{})
	env.tagDevice(env.serviceClient(), "dev0", "Redmond43")
	env.create("paused", "SELECT * FROM devices")
	tq := env.waitFor("paused", tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded))

	metav1.SetMetaDataAnnotation(&tq.ObjectMeta, iotv1alpha1.PausedAnnotation, "true")
	tq.Spec.Query = "SELECT * FROM devices WHERE tags.location.plant = 'Seattle'"
	if err := k8sClient.Update(env.ctx, tq); err != nil {
		t.Fatal(err)
	}
	// A second query shows the controller at work meanwhile.
	env.create("witness", "SELECT * FROM devices")
	env.waitFor("witness", tqCondition(iotv1alpha1.ConditionReady, metav1.ConditionTrue, iotv1alpha1.ReasonSucceeded))
	queries := env.transport.queries.Load()
	env.waitUntil("three refreshes of the witness", func() bool { return env.transport.queries.Load() >= queries+3 })
	if got := env.get("paused"); got.Status.ObservedGeneration != 1 || got.Status.Count != 1 {
		t.Fatalf("paused query was reconciled: observedGeneration %d count %d", got.Status.ObservedGeneration, got.Status.Count)
	}

	tq = env.get("paused")
	delete(tq.Annotations, iotv1alpha1.PausedAnnotation)
	if err := k8sClient.Update(env.ctx, tq); err != nil {
		t.Fatal(err)
	}
	env.waitFor("paused", func(tq *iotv1alpha1.TwinQuery) error {
		if tq.Status.ObservedGeneration != 2 || tq.Status.Count != 0 || len(tq.Status.DeviceIDs) != 0 {
			return fmt.Errorf("observedGeneration %d count %d", tq.Status.ObservedGeneration, tq.Status.Count)
		}
		return nil
	})
}
