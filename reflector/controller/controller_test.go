package main

// Unit tests of the reconcile function with fake.NewClientset and informers
// over it: how to test a controller without a server. The fake is a map
// with a watch: it has no admission, no garbage collector, and no real
// resourceVersion semantics, so main_test.go, against a real API server,
// is the proof that the controller works.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"

	"client-go-demo/internal/demotest"
)

// fakeController is a controller over a fake clientset whose informers
// have synced. It runs no workers: tests call reconcile or
// processNextWorkItem themselves.
func fakeController(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *events.FakeRecorder) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(cs, 0)
	recorder := events.NewFakeRecorder(10)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := newController(ctx, cs, factory, recorder, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	factory.StartWithContext(ctx)
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	if err := factory.WaitForCacheSyncWithContext(ctx).AsError(); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions() // the informers' list and watch
	return c, cs, recorder
}

func labelled(name string) *appsv1.Deployment {
	d := newDeployment()
	d.GenerateName, d.Name, d.Namespace, d.UID = "", name, "ns", types.UID("uid-"+name)
	return d
}

// writes are the actions that change something.
func writes(cs *fake.Clientset) []string {
	var w []string
	for _, a := range cs.Actions() {
		if v := a.GetVerb(); v != "list" && v != "watch" && v != "get" {
			w = append(w, v+" "+a.GetResource().Resource)
		}
	}
	return w
}

func TestReconcileAppliesService(t *testing.T) {
	c, cs, recorder := fakeController(t, labelled("web"))
	if err := c.reconcile(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(writes(cs), ","); got != "patch services" {
		t.Fatalf("writes = %q, want one apply (patch services)", got)
	}
	if a := cs.Actions()[0].(k8stesting.PatchAction); a.GetPatchType() != "application/apply-patch+yaml" {
		t.Errorf("patch type %s, want server-side apply", a.GetPatchType())
	}
	svc, err := cs.CoreV1().Services("ns").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := metav1.GetControllerOf(svc)
	if ref == nil || ref.UID != "uid-web" || ref.Kind != "Deployment" {
		t.Errorf("controller reference %+v, want Deployment web", ref)
	}
	if got := describePorts(svc); got != "ports http 8080/TCP -> http" {
		t.Errorf("%s", got)
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != "web" || svc.Labels[partOfKey] != partOfValue {
		t.Errorf("selector %v, labels %v", svc.Spec.Selector, svc.Labels)
	}
	// The fake tracks managed fields too (NewClientset, not the older
	// NewSimpleClientset), so the extract-and-compare of reconcile works.
	if got := managers(svc); got != fieldManager+" (Apply)" {
		t.Errorf("managers %s", got)
	}
	if e := <-recorder.Events; !strings.HasPrefix(e, "Normal ServiceCreated created Service web") {
		t.Errorf("event %q", e)
	}
}

// Idempotent: once the cache holds the Service as applied, reconcile makes
// no request.
func TestReconcileIsIdempotent(t *testing.T) {
	c, cs, _ := fakeController(t, labelled("web"))
	if err := c.reconcile(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	waitForCache(t, c, "web", true)
	cs.ClearActions()
	for range 3 {
		if err := c.reconcile(context.Background(), "ns/web"); err != nil {
			t.Fatal(err)
		}
	}
	if w := writes(cs); len(w) != 0 {
		t.Errorf("reconciling an up-to-date Deployment wrote %v", w)
	}
}

func TestReconcileDeletesServiceOfUnlabelledDeployment(t *testing.T) {
	d := labelled("web")
	c, cs, _ := fakeController(t, d)
	if err := c.reconcile(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	waitForCache(t, c, "web", true)
	d = d.DeepCopy()
	delete(d.Labels, exposeLabel)
	if _, err := cs.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unlabelled Deployment in the cache", func() bool {
		cached, err := c.deployments.Deployments("ns").Get("web")
		return err == nil && cached.Labels[exposeLabel] == ""
	})
	cs.ClearActions()
	if err := c.reconcile(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(writes(cs), ","); got != "delete services" {
		t.Errorf("writes = %q, want delete services", got)
	}
}

// A Service of the same name that someone else owns is left alone; the
// key fails, so it is retried, then dropped.
func TestReconcileLeavesForeignServiceAlone(t *testing.T) {
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}}
	c, cs, recorder := fakeController(t, labelled("web"), foreign)
	err := c.reconcile(context.Background(), "ns/web")
	if err == nil || !strings.Contains(err.Error(), "not controlled by deployment web") {
		t.Errorf("err = %v", err)
	}
	if w := writes(cs); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	if e := <-recorder.Events; !strings.HasPrefix(e, "Warning ServiceNotOurs") {
		t.Errorf("event %q", e)
	}
}

// A conflict (or any error) requeues the key with back-off until
// maxRetries; then it is dropped and Forgotten.
func TestProcessNextWorkItemRetriesThenDrops(t *testing.T) {
	c, cs, _ := fakeController(t, labelled("web"))
	cs.PrependReactor("patch", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "services"}, "web", errors.New("the object has been modified"))
	})
	ctx := context.Background()
	c.queue.Add("ns/web") // the informer's add, already processed by the handler, is queued too
	for attempt := range c.maxRetries + 1 {
		if !c.processNextWorkItem(ctx) {
			t.Fatal("queue shut down")
		}
		if attempt < c.maxRetries && c.queue.NumRequeues("ns/web") != attempt+1 {
			t.Fatalf("after attempt %d NumRequeues = %d", attempt, c.queue.NumRequeues("ns/web"))
		}
	}
	select {
	case err := <-c.dropped:
		if !strings.Contains(err.Error(), "gave up after 2 retries") || !strings.Contains(err.Error(), "the object has been modified") {
			t.Errorf("dropped with %v", err)
		}
	default:
		t.Fatal("the key was not dropped")
	}
	if n := c.queue.NumRequeues("ns/web"); n != 0 {
		t.Errorf("NumRequeues after the drop = %d, want 0 (Forget)", n)
	}
}

// What the fake does not do, shown: no garbage collector, no WatchList.
func TestFakeLimits(t *testing.T) {
	c, cs, _ := fakeController(t, labelled("web"))
	if err := c.reconcile(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	if err := cs.AppsV1().Deployments("ns").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("ns").Get(context.Background(), "web", metav1.GetOptions{}); err != nil {
		t.Errorf("the fake has no garbage collector, so the Service should still be there: %v", err)
	}
	// kubernetes/fake/clientset_generated.go; tools/cache/reflector.go
	// then turns WatchList off for informers over it.
	if !cs.IsWatchListSemanticsUnSupported() {
		t.Error("the fake claims WatchList support")
	}
}

func waitForCache(t *testing.T, c *Controller, name string, present bool) {
	t.Helper()
	waitFor(t, "Service "+name+" in the cache", func() bool {
		_, err := c.services.Services("ns").Get(name)
		return (err == nil) == present
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	demotest.WaitFor(t, 10*time.Second, what, cond)
}
