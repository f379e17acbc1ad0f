package main

// Unit tests of the reconcile function with fake.NewClientset and informers
// over it: how to test a controller without a server. The fake is a map
// with a watch: it has no admission, no garbage collector, and no real
// resourceVersion semantics. Its tracker stores objects as given
// (testing/fixture.go): no generation bump, no UID, no defaulting, no
// deletionTimestamp; so the UpdateFunc's generation filter drops a spec edit
// in a fake test unless the test sets generation itself. main_test.go,
// against a real API server, is the proof that the controller works.

import (
	"context"
	"errors"
	"slices"
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
	"k8s.io/client-go/tools/leaderelection/resourcelock"

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
	for _, a := range cs.Actions() { // an informer's late watch may be listed too
		if a, ok := a.(k8stesting.PatchAction); ok && a.GetPatchType() != "application/apply-patch+yaml" {
			t.Errorf("patch type %s, want server-side apply", a.GetPatchType())
		}
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

// A Deployment whose name was taken by a foreign Service gets its own
// Service once the foreign one is deleted, even after its key was dropped:
// the Service's delete event queues the key of the same name.
func TestForeignServiceDeletedQueuesDeployment(t *testing.T) {
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}}
	c, cs, recorder := fakeController(t, labelled("web"), foreign)
	ctx := context.Background()
	for dropped := false; !dropped; {
		c.processNextWorkItem(ctx) // ServiceNotOurs, retried, then dropped
		select {
		case <-c.dropped:
			dropped = true
		default:
		}
	}
	for len(recorder.Events) > 0 {
		<-recorder.Events
	}
	if err := cs.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Service's delete event to queue ns/web", func() bool { return c.queue.Len() > 0 })
	c.processNextWorkItem(ctx)
	svc, err := cs.CoreV1().Services("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no Service after the foreign one was deleted: %v", err)
	}
	if ref := metav1.GetControllerOf(svc); ref == nil || ref.Name != "web" {
		t.Errorf("controller ref = %v", ref)
	}
}

// A Deployment name that is a DNS-1123 subdomain but not a DNS-1035 label
// cannot name a Service: a Warning Event, no write, no retry.
func TestReconcileCannotExposeDottedName(t *testing.T) {
	c, cs, recorder := fakeController(t, labelled("web.v2"))
	if err := c.reconcile(context.Background(), "ns/web.v2"); err != nil {
		t.Errorf("err = %v, want nil (no retry)", err)
	}
	if w := writes(cs); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	if e := <-recorder.Events; !strings.HasPrefix(e, "Warning CannotExpose") || !strings.Contains(e, "DNS-1035 label") {
		t.Errorf("event %q", e)
	}
}

// A resync re-delivers every cached Deployment as an update with the same
// resourceVersion; the UpdateFunc lets it through, so a dropped key comes
// back even if nothing changes.
func TestResyncQueuesDeploymentAgain(t *testing.T) {
	cs := fake.NewClientset(labelled("web"))
	factory := informers.NewSharedInformerFactory(cs, time.Second) // the informer's minimum
	ctx, cancel := context.WithCancel(context.Background())
	c, err := newController(ctx, cs, factory, events.NewFakeRecorder(10), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	factory.StartWithContext(ctx)
	t.Cleanup(func() { cancel(); factory.Shutdown(); c.queue.ShutDown() })
	waitFor(t, "the add event to queue ns/web", func() bool { return c.queue.Len() > 0 })
	key, _ := c.queue.Get()
	c.queue.Forget(key) // as a drop does
	c.queue.Done(key)
	waitFor(t, "the resync to queue ns/web again", func() bool { return c.queue.Len() > 0 })
	if key, _ := c.queue.Get(); key != "ns/web" {
		t.Errorf("queued %q", key)
	}
}

// Before the elector writes a release (an empty holder), the lock stops the
// workers and waits: the elector releases on a lost Lease before it cancels
// OnStartedLeading's context (tools/leaderelection/leaderelection.go).
func TestCheckedLockStopsWorkBeforeRelease(t *testing.T) {
	var calls []string
	lock := &checkedLock{
		Interface: &recordingLock{calls: &calls},
		giveUp:    func(error) {},
		beforeRelease: func(context.Context) {
			calls = append(calls, "stop workers")
		},
	}
	ctx := context.Background()
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"update me", "stop workers", "update "}; !slices.Equal(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
}

// recordingLock records its Updates.
type recordingLock struct {
	resourcelock.Interface
	calls *[]string
}

func (l *recordingLock) Update(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	*l.calls = append(*l.calls, "update "+ler.HolderIdentity)
	return nil
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
