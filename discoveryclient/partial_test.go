package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"client-go-demo/internal/demotest"
)

// TestCRDAppears runs -crd against the shared control plane and checks
// what happened there: the CRD came and went, and the cache and mapper
// answered from before it until the Reset.
func TestCRDAppears(t *testing.T) {
	demotest.Kubeconfig(t)
	crds := dynamic.NewForConfigOrDie(demotest.Config(t)).Resource(crdGVR)
	out := runDemo(t, "-crd")
	demotest.Match(t, out,
		`^Step 1: a memory-cached discovery client and a deferred RESTMapper, before the CRD exists\n  mapper\.RESTMapping\(Widget\): meta\.IsNoMatchError=true, 2 requests\n    no matches for kind "Widget" in version "discovery-demo\.example\.com/v1"\n  cache\.ServerResourcesForGroupVersion: memory\.ErrCacheNotFound, 0 requests$`,
		`^Step 3: ask the same cache and mapper again\n  mapper\.RESTMapping\(Widget\): meta\.IsNoMatchError=true, 0 requests\n.*\n  cache\.ServerResourcesForGroupVersion: memory\.ErrCacheNotFound, 0 requests$`,
		`^Step 4: .*\n  mapper\.RESTMapping\(Widget\): resource "widgets", namespaced true, 2 requests\n  cache\.ServerResourcesForGroupVersion: resources \[widgets\], 0 requests$`,
		`^  mapper\.RESTMapping\(Widget\): resource "widgets", namespaced true, 0 requests\n  after cache\.Invalidate only: resource "widgets", namespaced true, 0 requests\n  after mapper\.Reset: meta\.IsNoMatchError=true, 2 requests$`,
	)
	// On the server: the CRD is gone, and discovery no longer lists it.
	if _, err := crds.Get(context.Background(), widgetCRD, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("CRD %s after the run: err = %v, want NotFound", widgetCRD, err)
	}
	disco := discovery.NewDiscoveryClientForConfigOrDie(demotest.Config(t))
	if _, err := disco.ServerResourcesForGroupVersion(widgetGVK.GroupVersion().String()); !apierrors.IsNotFound(err) {
		t.Errorf("discovery of %s after the run: err = %v, want NotFound", widgetGVK.GroupVersion(), err)
	}
}

// TestCRDAppearsForbidden: a user who may discover (every authenticated
// user may) but not create CRDs gets one Forbidden line, and no CRD.
func TestCRDAppearsForbidden(t *testing.T) {
	demotest.Kubeconfig(t)
	crds := dynamic.NewForConfigOrDie(demotest.Config(t)).Resource(crdGVR)
	user := demotest.ImpersonatingKubeconfig(t, "demo-discoveryclient-nobody", "system:authenticated")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-kubeconfig", user, "-crd"}, &out)
	want := `create CRD widgets.discovery-demo.example.com: forbidden by RBAC: customresourcedefinitions.apiextensions.k8s.io is forbidden: User "demo-discoveryclient-nobody" cannot create resource "customresourcedefinitions"`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line containing %q", err, want)
	}
	if _, err := crds.Get(context.Background(), widgetCRD, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("CRD %s after a Forbidden: err = %v, want NotFound", widgetCRD, err)
	}
}

// TestCRDAppearsCtrlC cancels -crd once the CRD exists, as Ctrl-C does,
// and wants the CRD gone when run returns.
func TestCRDAppearsCtrlC(t *testing.T) {
	demotest.Kubeconfig(t)
	crds := dynamic.NewForConfigOrDie(demotest.Config(t)).Resource(crdGVR)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{Marker: "an uncached DiscoveryClient lists widgets", Cancel: cancel}
	err := run(ctx, []string{"-crd"}, out)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled\n%s", err, out)
	}
	if _, err := crds.Get(context.Background(), widgetCRD, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("CRD %s after Ctrl-C: err = %v, want NotFound", widgetCRD, err)
	}
}

// TestBrokenAggregatedAPI registers an APIService whose Service has no
// endpoints, on a control plane of the test's own (an APIService is
// cluster-wide and makes every client's discovery partial). It checks what
// client-go returns, that the demo and kubectl carry on with the rest, and
// logs the demo's default run for the README.
func TestBrokenAggregatedAPI(t *testing.T) {
	c := demotest.PrivateCluster(t, 21443)
	config := c.Config(t)
	ctx := context.Background()
	gv := schema.GroupVersion{Group: "broken.discovery-demo.example.com", Version: "v1"}

	// A Service without a selector gets no endpoints: the aggregator has
	// nowhere to send /apis/broken.discovery-demo.example.com/v1.
	cs := kubernetes.NewForConfigOrDie(config)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "broken-backend", Labels: map[string]string{partOfKey: partOfValue}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiServices := dynamic.NewForConfigOrDie(config).Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	name := gv.Version + "." + gv.Group
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{partOfKey: partOfValue}},
		"spec": map[string]any{
			"group": gv.Group, "version": gv.Version,
			"groupPriorityMinimum": int64(1000), "versionPriority": int64(10),
			"service":               map[string]any{"namespace": "default", "name": svc.Name, "port": int64(443)},
			"insecureSkipTLSVerify": true,
		},
	}}
	if _, err := apiServices.Create(ctx, apiService, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The server: the APIService is not Available, and aggregated
	// discovery marks its group/version Stale (kube-aggregator's
	// handler_discovery.go), which client-go turns into a failed group.
	demotest.WaitFor(t, time.Minute, "the APIService to be Available=False", func() bool {
		u, err := apiServices.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		var s struct {
			Status struct {
				Conditions []metav1.Condition `json:"conditions"`
			} `json:"status"`
		}
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s) != nil {
			return false
		}
		c := meta.FindStatusCondition(s.Status.Conditions, "Available")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "EndpointsNotFound"
	})
	disco := discovery.NewDiscoveryClientForConfigOrDie(config)
	var (
		resources []*metav1.APIResourceList
		derr      error
	)
	demotest.WaitFor(t, time.Minute, "discovery to report "+gv.String()+" as failed", func() bool {
		_, resources, derr = disco.ServerGroupsAndResources()
		_, ok := discovery.GroupDiscoveryFailedErrorGroups(derr)
		return ok
	})
	var failed *discovery.ErrGroupDiscoveryFailed
	if !errors.As(derr, &failed) || !discovery.IsGroupDiscoveryFailedError(derr) {
		t.Fatalf("err = %T %v, want *discovery.ErrGroupDiscoveryFailed", derr, derr)
	}
	if len(failed.Groups) != 1 || !errors.As(failed.Groups[gv], new(discovery.StaleGroupVersionError)) {
		t.Errorf("failed groups = %v, want only %s, stale", failed.Groups, gv)
	}
	partial := map[string]bool{}
	for _, l := range resources {
		partial[l.GroupVersion] = true
	}
	if !partial["v1"] || !partial["apps/v1"] || partial[gv.String()] {
		t.Errorf("resources for %d group/versions, want v1 and apps/v1 and not %s", len(resources), gv)
	}

	// The demo's default run carries on: Step 3 names what is missing,
	// Step 4 measures the rest.
	var out bytes.Buffer
	if err := run(ctx, []string{"-kubeconfig", c.Kubeconfig()}, &out); err != nil {
		t.Fatalf("default run: %v\n%s", err, out.String())
	}
	t.Logf("default run against the broken APIService:\n%s", out.String())
	demotest.Match(t, out.String(),
		`^  broken\.discovery-demo\.example\.com +/apis/broken\.discovery-demo\.example\.com *$`,
		`^deployments +deploy +apps/v1 +true +Deployment$`,
		`^  incomplete: broken\.discovery-demo\.example\.com/v1 is missing: stale GroupVersion discovery: broken\.discovery-demo\.example\.com/v1\nStep 4:`,
		// A plain client tries twice (withRetries in discovery_client.go).
		`^  cold, aggregated discovery \(/api, /apis\) +4 requests +\d+ resources +\S+  \(1 group/versions failed\)$`,
		`^  memory cache, first call +2 requests +\d+ resources +\S+  \(1 group/versions failed\)$`,
		// The disk cache leaves a stale version out, without an error.
		`^  disk cache, empty +2 requests +\d+ resources +\S+$`,
	)

	// -api-resources behaves as kubectl api-resources with legacy
	// discovery: the table, then the error.
	out.Reset()
	err := run(ctx, []string{"-kubeconfig", c.Kubeconfig(), "-api-resources"}, &out)
	if !discovery.IsGroupDiscoveryFailedError(err) || !strings.Contains(out.String(), "\npods ") {
		t.Errorf("-api-resources: err = %v, want the table and a partial discovery error:\n%s", err, out.String())
	}
	// The mapper carries on too: the other resources still map.
	if out := runDemo(t, "-kubeconfig", c.Kubeconfig(), "-gvr", "deploy"); !strings.Contains(out, `resource="deployments"`) {
		t.Errorf("-gvr deploy:\n%s", out)
	}

	// kubectl: its disk cache leaves the stale version out, so
	// api-resources succeeds and get works; a request to the broken
	// group/version gets the aggregator's 503.
	k := newKubectl(t, c.Kubeconfig())
	if stdout, stderr, err := k.run("api-resources"); err != nil || !strings.Contains(stdout, "\ndeployments ") || strings.Contains(stdout, gv.Group) {
		t.Errorf("kubectl api-resources: %v\n%s\n%s", err, stdout, stderr)
	}
	if _, stderr, err := k.run("get", "deployments", "-A"); err != nil {
		t.Errorf("kubectl get deployments: %v\n%s", err, stderr)
	}
	_, stderr, err := k.run("get", "--raw", "/apis/"+gv.String())
	if want := "Error from server (ServiceUnavailable): the server is currently unable to handle the request"; err == nil || !strings.Contains(stderr, want) {
		t.Errorf("kubectl get --raw /apis/%s: %v, stderr %q, want %q", gv, err, stderr, want)
	}
}
