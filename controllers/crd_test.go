package controllers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// These tests prove the generated CRD schemas against the real apiserver.

func TestAPIServerIsReal(t *testing.T) {
	g := NewWithT(t)
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	v, err := dc.ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("kube-apiserver %s (%s)", v.GitVersion, v.Platform)
	g.Expect(v.GitVersion).To(HavePrefix("v1."), "the apiserver binary must be stamped with its release")
	g.Expect(v.GitVersion).NotTo(ContainSubstring("v0.0.0"))
}

func TestDeviceTwinFreeFormJSONRoundTrips(t *testing.T) {
	ctx := testContext(t)
	g := NewWithT(t)
	const ns = "default"
	tags := `{"location":{"building":{"floor":3,"rooms":["a","b"]},"plant":"Redmond43","region":"US"}}`
	desired := `{"power_level":1,"telemetry":{"enabled":true,"interval":1.5,"sensors":{"a":{"b":{"c":{"d":"deep"}}}}}}`
	dt := &iotv1alpha1.DeviceTwin{
		ObjectMeta: metav1.ObjectMeta{Name: "roundtrip", Namespace: ns},
		Spec: iotv1alpha1.DeviceTwinSpec{
			Tags:    &apiextensionsv1.JSON{Raw: []byte(tags)},
			Desired: &apiextensionsv1.JSON{Raw: []byte(desired)},
		},
	}
	g.Expect(k8sClient.Create(ctx, dt)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, dt) })

	var got iotv1alpha1.DeviceTwin
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dt), &got)).To(Succeed())
	g.Expect(string(got.Spec.Tags.Raw)).To(Equal(tags))
	g.Expect(string(got.Spec.Desired.Raw)).To(Equal(desired))
	g.Expect(got.Spec.Ownership).To(Equal(iotv1alpha1.OwnershipShared), "defaulted by the schema")
	g.Expect(got.Spec.DeletionPolicy).To(Equal(iotv1alpha1.DeletionPolicyRetain), "defaulted by the schema")
}

func TestDeviceTwinValidation(t *testing.T) {
	ctx := testContext(t)
	const ns = "default"

	create := func(name string, mutate func(*unstructured.Unstructured)) error {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": iotv1alpha1.GroupVersion.String(),
			"kind":       "DeviceTwin",
			"metadata":   map[string]any{"name": name, "namespace": ns},
			"spec":       map[string]any{},
		}}
		mutate(u)
		err := k8sClient.Create(ctx, u)
		if err == nil {
			t.Cleanup(func() { _ = k8sClient.Delete(ctx, u) })
		}
		return err
	}
	setSpec := func(path string, v any) func(*unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			if err := unstructured.SetNestedField(u.Object, v, "spec", path); err != nil {
				t.Fatal(err)
			}
		}
	}

	tests := []struct {
		name    string
		mutate  func(*unstructured.Unstructured)
		wantErr string // empty: accepted
	}{
		{"defaults accepted", func(*unstructured.Unstructured) {}, ""},
		{"device id with every allowed special character", setSpec("deviceId", "a-.+%_#*?!(),:=@$'Z9"), ""},
		{"device id of 128 characters", setSpec("deviceId", strings.Repeat("d", 128)), ""},
		{"device id of 129 characters", setSpec("deviceId", strings.Repeat("d", 129)), "spec.deviceId"},
		{"device id with a slash", setSpec("deviceId", "a/b"), "spec.deviceId"},
		{"device id with a space", setSpec("deviceId", "a b"), "spec.deviceId"},
		{"module id with a non-ASCII letter", setSpec("moduleId", "modülé"), "spec.moduleId"},
		{"unknown ownership", setSpec("ownership", "Mine"), `spec.ownership: Unsupported value: "Mine"`},
		{"unknown deletion policy", setSpec("deletionPolicy", "Purge"), `spec.deletionPolicy: Unsupported value: "Purge"`},
		{"tags must be an object", setSpec("tags", "plant"), "spec.tags"},
		{"desired must be an object", setSpec("desired", []any{"a"}), "spec.desired"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := create(fmt.Sprintf("validation-%d", i), tc.mutate)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.wantErr))
		})
	}
}

func TestDeviceTwinIdsAreImmutable(t *testing.T) {
	ctx := testContext(t)

	tests := []struct {
		name    string
		initial iotv1alpha1.DeviceTwinSpec
		update  func(*iotv1alpha1.DeviceTwinSpec)
		wantErr string
	}{
		{"change deviceId", iotv1alpha1.DeviceTwinSpec{DeviceID: "dev-1"}, func(s *iotv1alpha1.DeviceTwinSpec) { s.DeviceID = "dev-2" }, "deviceId is immutable"},
		{"remove deviceId", iotv1alpha1.DeviceTwinSpec{DeviceID: "dev-1"}, func(s *iotv1alpha1.DeviceTwinSpec) { s.DeviceID = "" }, "deviceId is immutable"},
		{"add deviceId", iotv1alpha1.DeviceTwinSpec{}, func(s *iotv1alpha1.DeviceTwinSpec) { s.DeviceID = "dev-3" }, "deviceId is immutable"},
		{"change moduleId", iotv1alpha1.DeviceTwinSpec{DeviceID: "dev-1", ModuleID: "m1"}, func(s *iotv1alpha1.DeviceTwinSpec) { s.ModuleID = "m2" }, "moduleId is immutable"},
		{"change desired keeps ids", iotv1alpha1.DeviceTwinSpec{DeviceID: "dev-1"}, func(s *iotv1alpha1.DeviceTwinSpec) {
			s.Desired = &apiextensionsv1.JSON{Raw: []byte(`{"power_level":2}`)}
		}, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dt := &iotv1alpha1.DeviceTwin{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("immutable-%d", i), Namespace: "default"},
				Spec:       tc.initial,
			}
			g.Expect(k8sClient.Create(ctx, dt)).To(Succeed())
			t.Cleanup(func() { _ = k8sClient.Delete(ctx, dt) })
			tc.update(&dt.Spec)
			err := k8sClient.Update(ctx, dt)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.wantErr))
		})
	}
}

func TestTwinQueryValidation(t *testing.T) {
	ctx := testContext(t)

	tests := []struct {
		name     string
		query    string
		interval string // empty: default
		wantErr  string
	}{
		{"tutorial query", "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'", "", ""},
		{"query of 8192 characters", "SELECT * FROM devices WHERE tags.a = '" + strings.Repeat("x", 8192-39) + "'", "", ""},
		{"empty query", "", "", "spec.query"},
		{"query of 8193 characters", strings.Repeat("x", 8193), "", "spec.query: Too long"},
		{"interval of 3s", "SELECT * FROM devices", "3s", ""},
		{"interval of 2s", "SELECT * FROM devices", "2s", "refreshInterval must be at least 3s"},
		{"interval in milliseconds", "SELECT * FROM devices", "2999ms", "refreshInterval must be at least 3s"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := map[string]any{"query": tc.query}
			if tc.interval != "" {
				spec["refreshInterval"] = tc.interval
			}
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": iotv1alpha1.GroupVersion.String(),
				"kind":       "TwinQuery",
				"metadata":   map[string]any{"name": fmt.Sprintf("query-%d", i), "namespace": "default"},
				"spec":       spec,
			}}
			err := k8sClient.Create(ctx, u)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = k8sClient.Delete(ctx, u) })
				var got iotv1alpha1.TwinQuery
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &got)).To(Succeed())
				g.Expect(got.Spec.Query).To(Equal(tc.query))
				g.Expect(got.Spec.MaxResults).To(BeEquivalentTo(1000), "defaulted by the schema")
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.wantErr))
		})
	}
}

func TestCRDsDeclarePrinterColumnsAndNames(t *testing.T) {
	ctx := testContext(t)

	tests := []struct {
		crd       string
		shortName string
		columns   []string
	}{
		{"devicetwins.iot.twinsync.io", "dt", []string{"Device", "Synced", "Converged", "Connection", "Age"}},
		{"twinqueries.iot.twinsync.io", "tq", []string{"Count", "Ready", "Last Refresh", "Age"}},
	}
	for _, tc := range tests {
		t.Run(tc.crd, func(t *testing.T) {
			g := NewWithT(t)
			var crd apiextensionsv1.CustomResourceDefinition
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: tc.crd}, &crd)).To(Succeed())
			g.Expect(crd.Spec.Names.ShortNames).To(ConsistOf(tc.shortName))
			g.Expect(crd.Spec.Names.Categories).To(ConsistOf("iot"))
			g.Expect(crd.Spec.Versions).To(HaveLen(1))
			v := crd.Spec.Versions[0]
			g.Expect(v.Subresources).NotTo(BeNil())
			g.Expect(v.Subresources.Status).NotTo(BeNil(), "status subresource")
			var names []string
			for _, c := range v.AdditionalPrinterColumns {
				names = append(names, c.Name)
			}
			g.Expect(names).To(Equal(tc.columns))
		})
	}
}

func TestConditionsAreAListMap(t *testing.T) {
	ctx := testContext(t)
	g := NewWithT(t)
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "devicetwins.iot.twinsync.io"}, &crd)).To(Succeed())
	conds := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"].Properties["conditions"]
	g.Expect(conds.XListType).NotTo(BeNil())
	g.Expect(*conds.XListType).To(Equal("map"))
	g.Expect(conds.XListMapKeys).To(Equal([]string{"type"}))

	// A status with two conditions of the same type is refused by the apiserver.
	dt := &iotv1alpha1.DeviceTwin{ObjectMeta: metav1.ObjectMeta{Name: "listmap", Namespace: "default"}}
	g.Expect(k8sClient.Create(ctx, dt)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, dt) })
	now := metav1.Now()
	c := metav1.Condition{Type: iotv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: now}
	dt.Status.Conditions = []metav1.Condition{c, c}
	err := k8sClient.Status().Update(ctx, dt)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "duplicate condition types must be refused, got %v", err)

	// Status JSON goes through the status subresource and comes back intact.
	dt.Status.Conditions = []metav1.Condition{c}
	dt.Status.Reported = &apiextensionsv1.JSON{Raw: []byte(`{"connectivity":"cellular"}`)}
	g.Expect(k8sClient.Status().Update(ctx, dt)).To(Succeed())
	var got iotv1alpha1.DeviceTwin
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dt), &got)).To(Succeed())
	var reported map[string]any
	g.Expect(json.Unmarshal(got.Status.Reported.Raw, &reported)).To(Succeed())
	g.Expect(reported).To(HaveKeyWithValue("connectivity", "cellular"))
}
