package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/watch"
	appsv1apply "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"client-go-demo/internal/demotest"
)

// These tests run the demo against the local control plane (see
// internal/demotest) and check what it did there, from watches of their
// own, not only what it printed.

func TestClientsetDemo(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	h := record(t, cs, ns)

	var out demotest.Output
	if err := run(context.Background(), []string{"-n", ns}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, re := range []string{
		`(?m)^Step 1: build the clientset with kubernetes.NewForConfig$`,
		`clientset.AppsV1\(\).Deployments\("` + ns + `"\) -> group apps, version v1, resource deployments`,
		`-> https://\S+/apis/apps/v1/namespaces/` + ns + `/deployments\n`,
		`(?m)^Step 2: create the nginx Deployment, then get it back$`,
		`created demo-clientset-\w{5}: resourceVersion \d+, generation 1, uid [0-9a-f-]{36}\n`,
		`(?m)^Step 3: list Deployments by label`,
		`  1 deployment\(s\) with label app.kubernetes.io/part-of=client-go-demo, list resourceVersion \d+\n`,
		`  pods with app.kubernetes.io/instance=demo-clientset-\w{5},run=nginx: 3 running\n`,
		`(?m)^Step 4: an update from a stale read gets 409 Conflict`,
		`update with resourceVersion \d+: Operation cannot be fulfilled on deployments.apps "demo-clientset-\w{5}": the object has been modified`,
		`  scaled to 1 replica \(attempts: [1-4]\)\n`, // more than 1 if the controller wrote in between
		`  pods with app.kubernetes.io/instance=demo-clientset-\w{5},run=nginx: 1 running\n`,
		`(?m)^Step 5: server-side apply`,
		`  managedFields after Create: demo-clientset \(Update\)\n`,
		`  image-updater without Force: Apply failed with 1 conflict: conflict with "demo-clientset" using apps/v1: .spec.template.spec.containers\[name="nginx"\].image\n`,
		`  image-updater with Force: image now nginx:1.19.10\n`,
		`  managedFields: demo-clientset \(Update\); image-updater \(Apply\); kube-controller-manager \(Update, status\)\n`,
		`  ExtractDeployment\(image-updater\): {"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"demo-clientset-\w{5}","namespace":"` + ns + `"},"spec":{"template":{"spec":{"containers":\[{"name":"nginx","image":"nginx:1.19.10"}\]}}}}\n`,
		`  image-updater applies it with nginx:1.20.2, no Force needed: image now nginx:1.20.2\n`,
		`(?m)^Step 6: delete with Foreground propagation`,
		`  pods with app.kubernetes.io/instance=demo-clientset-\w{5},run=nginx: none left\n  deployment demo-clientset-\w{5} is gone\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks %s\noutput:\n%s", re, got)
		}
	}

	// The watches see the last events a little after run returns.
	demotest.WaitFor(t, time.Minute, "the Deployment's and every Pod's DELETED event", h.allDeleted)
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deployments
	first := d[0]
	c := first.Spec.Template.Spec.Containers[0]
	if *first.Spec.Replicas != 3 || c.Name != "nginx" || c.Image != "nginx:1.17.1" || c.Ports[0].Name != "nginx-port" ||
		c.Ports[0].ContainerPort != 80 || first.Spec.Selector.MatchLabels["run"] != "nginx" || first.Labels[partOfKey] != partOfValue {
		t.Fatalf("the first Deployment is not the notes' nginx: %+v", first)
	}

	// Step 4: the stale update was refused because the controller had
	// written since the demo's read, and the scale came after that.
	m := regexp.MustCompile(`update with resourceVersion (\d+): Operation cannot be fulfilled`).FindStringSubmatch(got)
	scaled := slices.IndexFunc(d, func(d *appsv1.Deployment) bool { return *d.Spec.Replicas == 1 })
	switch {
	case m == nil || scaled < 1:
		t.Errorf("no stale update printed (%v) or the server never saw replicas 1 (%d)", m, scaled)
	case !slices.ContainsFunc(d[:scaled], func(d *appsv1.Deployment) bool { return d.ResourceVersion == m[1] }):
		t.Errorf("the stale resourceVersion %s is no version the server had before the scale", m[1])
	case newer(t, d[scaled-1].ResourceVersion, m[1]) <= 0:
		t.Errorf("nothing wrote the Deployment between the read at %s and the scale: the Conflict was not earned", m[1])
	case d[scaled].Generation != 2:
		t.Errorf("replicas 1 came with generation %d, want 2 (one spec change since the create)", d[scaled].Generation)
	}

	// Step 5: the apply without Force left no trace; the forced one moved
	// the image to image-updater, whose next apply changed it again.
	forced := slices.IndexFunc(d, func(d *appsv1.Deployment) bool { return image(d) == "nginx:1.19.10" })
	again := slices.IndexFunc(d, func(d *appsv1.Deployment) bool { return image(d) == "nginx:1.20.2" })
	if forced <= scaled || again <= forced {
		t.Fatalf("versions out of order: replicas 1 at %d, nginx:1.19.10 at %d, nginx:1.20.2 at %d", scaled, forced, again)
	}
	for _, v := range d[:forced] {
		if owned := ownedImage(t, v); owned != "" || image(v) != "nginx:1.17.1" {
			t.Errorf("before the forced apply (resourceVersion %s): image %s, image-updater owns %q", v.ResourceVersion, image(v), owned)
		}
	}
	for i, want := range map[int]string{forced: "nginx:1.19.10", again: "nginx:1.20.2"} {
		if owned := ownedImage(t, d[i]); owned != want {
			t.Errorf("resourceVersion %s: image-updater owns image %q, want %q", d[i].ResourceVersion, owned, want)
		}
	}

	// Step 6: Foreground deletion kept the Deployment, with its finalizer,
	// until its Pods had gone.
	if !slices.ContainsFunc(d[again:], func(d *appsv1.Deployment) bool {
		return d.DeletionTimestamp != nil && slices.Contains(d.Finalizers, metav1.FinalizerDeleteDependents)
	}) {
		t.Error("the server never saw the Deployment with a deletionTimestamp and the foregroundDeletion finalizer")
	}
	if h.podsAtDelete != 0 {
		t.Errorf("%d pods were left when the Deployment went", h.podsAtDelete)
	}
	if h.maxRunning != 3 || !inOrder(h.runningLog, 3, 1, 0) {
		t.Errorf("running pod counts over time %v (at most %d), want 3, later 1, at last 0", h.runningLog, h.maxRunning)
	}
	demotest.NothingLeft(t, cs, ns)
}

// newer compares two resourceVersions of the same resource, which
// apimachinery allows since 1.35 (resourceversion.CompareResourceVersion).
func newer(t *testing.T, a, b string) int {
	n, err := resourceversion.CompareResourceVersion(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

// ownedImage is the image image-updater owns in d, read the library's way.
func ownedImage(t *testing.T, d *appsv1.Deployment) string {
	owned, err := appsv1apply.ExtractDeployment(d, "image-updater")
	if err != nil {
		t.Fatal(err)
	}
	if c := container(owned, "nginx"); c != nil && c.Image != nil {
		return *c.Image
	}
	return ""
}

// inOrder reports whether seq appears in log in this order, not
// necessarily adjacent.
func inOrder(log []int, seq ...int) bool {
	i := 0
	for _, v := range log {
		if i < len(seq) && v == seq[i] {
			i++
		}
	}
	return i == len(seq)
}

// history is what the server did in the namespace, from the test's own
// watches: every version of the Deployment, and the Pods.
type history struct {
	mu           sync.Mutex
	deployments  []*appsv1.Deployment
	deleted      bool // the Deployment's DELETED event came
	podsAtDelete int  // Pods a List found when it came
	pods         map[string]bool
	podsDeleted  map[string]bool
	podVersions  []*corev1.Pod // every version of every Pod, in order
	running      map[string]bool
	maxRunning   int
	runningLog   []int // running Pods after each change of that number
}

func (h *history) allDeleted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deleted && len(h.pods) > 0 && len(h.podsDeleted) == len(h.pods)
}

// record watches Deployments and Pods in ns until the test ends. A
// RetryWatcher resumes after a dropped watch, so no event is missed.
func record(t *testing.T, cs kubernetes.Interface, ns string) *history {
	h := &history{podsAtDelete: -1, pods: map[string]bool{}, podsDeleted: map[string]bool{}, running: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	deployments, pods := cs.AppsV1().Deployments(ns), cs.CoreV1().Pods(ns)
	dlist, err := deployments.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plist, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dw, err := watchtools.NewRetryWatcherWithContext(ctx, dlist.ResourceVersion, &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return deployments.Watch(ctx, o)
	}})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := watchtools.NewRetryWatcherWithContext(ctx, plist.ResourceVersion, &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return pods.Watch(ctx, o)
	}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev := range dw.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			n := -1
			if ev.Type == watch.Deleted {
				// A consistent List after the DELETED event: what was
				// left when the Deployment went.
				if l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "run=nginx"}); err == nil {
					n = len(l.Items)
				}
			}
			h.mu.Lock()
			h.deployments = append(h.deployments, d)
			if ev.Type == watch.Deleted {
				h.deleted, h.podsAtDelete = true, n
			}
			h.mu.Unlock()
		}
	}()
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			h.mu.Lock()
			h.podVersions = append(h.podVersions, p)
			h.pods[p.Name] = true
			if ev.Type == watch.Deleted {
				h.podsDeleted[p.Name] = true
			}
			h.running[p.Name] = ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil
			n := 0
			for _, r := range h.running {
				if r {
					n++
				}
			}
			h.maxRunning = max(h.maxRunning, n)
			if len(h.runningLog) == 0 || h.runningLog[len(h.runningLog)-1] != n {
				h.runningLog = append(h.runningLog, n)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

func TestClientsetErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{name: "missing kubeconfig", args: []string{"-kubeconfig", "/does/not/exist"}, want: "load kubeconfig: stat /does/not/exist: no such file or directory"},
		{name: "missing namespace", args: []string{"-n", "no-such-namespace"}, want: `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`},
		{name: "forbidden", args: []string{"-kubeconfig", nobody, "-n", ns},
			want: `create deployment in namespace "` + ns + `": forbidden by RBAC: deployments.apps is forbidden: User "nobody" cannot create resource "deployments" in API group "apps" in the namespace "` + ns + `"`},
		{name: "unreachable", args: []string{"-kubeconfig", unreachable}, want: "dial tcp 127.0.0.1:1: connect: connection refused"},
		{name: "bad flag", args: []string{"-pod-timeout", "soon"}, want: `invalid value "soon" for flag -pod-timeout`, usage: true},
		{name: "bad pod timeout", args: []string{"-pod-timeout", "0s"}, want: "-pod-timeout 0s: want a positive duration", usage: true},
		{name: "arguments", args: []string{"nginx"}, want: `unexpected arguments ["nginx"]`, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err = %v, want flag.ErrHelp", err)
		}
		for _, f := range []string{"-kubeconfig", "-context", "-namespace", "-pod-timeout", "-show", "-v value"} {
			if !strings.Contains(out.String(), f) {
				t.Errorf("-h does not list %s:\n%s", f, out.String())
			}
		}
	})
	demotest.NamespaceStillThere(t, cs, ns)
	demotest.NothingLeft(t, cs, ns)
}

// A Pod labelled run=nginx that is not the demo's, as `kubectl run nginx`
// leaves behind: the demo's selector does not match it, so the waits do
// not count it and no ReplicaSet of the demo adopts or deletes it.
func TestClientsetLeavesOtherNginxPodsAlone(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	ctx := context.Background()
	bystander, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Labels: map[string]string{"run": "nginx"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.17.1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out demotest.Output
	if err := run(ctx, []string{"-n", ns, "-pod-timeout", "1m"}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, bystander.Name, metav1.GetOptions{})
	switch {
	case err != nil:
		t.Fatalf("the other run=nginx Pod: %v", err)
	case p.UID != bystander.UID || p.DeletionTimestamp != nil || len(p.OwnerReferences) > 0:
		t.Errorf("the other run=nginx Pod was touched: uid %s (was %s), deletionTimestamp %v, owners %v",
			p.UID, bystander.UID, p.DeletionTimestamp, p.OwnerReferences)
	}
	demotest.NothingLeft(t, cs, ns)
}

// Ctrl-C at two points: the deferred delete still removes the Deployment,
// and the garbage collector its ReplicaSet and Pods.
func TestClientsetInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	for _, marker := range []string{"run=nginx: 3 running", "Step 6:"} {
		t.Run(marker, func(t *testing.T) {
			ns := demotest.Namespace(t, cs, "test-clientset")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &demotest.Output{Marker: marker, Cancel: cancel}
			err := run(ctx, []string{"-n", ns}, out)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled\n%s", err, out.String())
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			demotest.NothingLeft(t, cs, ns)
		})
	}
}

// The waits keep polling through errors that pass and stop at once on
// those that will not: faults answers the first requests itself, then
// lets the rest through to the real server.
func TestWaitsPollThroughTransientErrors(t *testing.T) {
	refused := func(*http.Request) (*http.Response, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	deployments := schema.GroupResource{Group: "apps", Resource: "deployments"}
	transient := []func(*http.Request) (*http.Response, error){
		status(apierrors.NewTooManyRequests("slow down", 0)),
		status(apierrors.NewInternalError(errors.New("etcd hiccup"))),
		status(apierrors.NewServerTimeout(deployments, "get", 0)),
		status(apierrors.NewServiceUnavailable("apiserver is shutting down")),
		status(apierrors.NewTimeoutError("request did not complete", 0)),
		refused,
	}

	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	t.Run("pods", func(t *testing.T) {
		f, client := faulty(t, transient...)
		var out bytes.Buffer
		if err := waitForPods(context.Background(), client.CoreV1().Pods(ns), "run=nginx", 0, time.Minute, &out); err != nil {
			t.Fatalf("waitForPods: %v", err)
		}
		if n := f.count(); n != len(transient)+1 {
			t.Errorf("%d requests, want %d: one per fault and one that got through", n, len(transient)+1)
		}
		if out.String() != "  pods with run=nginx: none left\n" {
			t.Errorf("output %q", out.String())
		}
	})
	t.Run("deployment gone", func(t *testing.T) {
		f, client := faulty(t, transient...)
		if err := waitForDeploymentGone(context.Background(), client.AppsV1().Deployments(ns), "no-such-deployment", time.Minute); err != nil {
			t.Fatalf("waitForDeploymentGone: %v", err)
		}
		if n := f.count(); n != len(transient)+1 {
			t.Errorf("%d requests, want %d", n, len(transient)+1)
		}
	})
	for _, tc := range []struct {
		name  string
		fault *apierrors.StatusError
		is    func(error) bool
	}{
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no RBAC")), apierrors.IsForbidden},
		{"unauthorized", apierrors.NewUnauthorized("token expired"), apierrors.IsUnauthorized},
		// A 404 to a LIST: the resource is not served (a CRD removed, say).
		// A namespace that does not exist is no error: the LIST answers 200.
		{"not found", apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, ""), apierrors.IsNotFound},
		{"bad request", apierrors.NewBadRequest("unable to parse requirement"), apierrors.IsBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := faulty(t, status(tc.fault))
			err := waitForPods(context.Background(), client.CoreV1().Pods(ns), "run=nginx", 0, time.Minute, io.Discard)
			if !tc.is(err) {
				t.Fatalf("err = %v, want the injected %s", err, tc.name)
			}
			if n := f.count(); n != 1 {
				t.Errorf("%d requests, want 1: the wait must stop at the first %s", n, tc.name)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// faults is a RoundTripper that answers the first requests with canned
// faults and passes the rest to the real transport.
type faults struct {
	mu       sync.Mutex
	next     []func(*http.Request) (*http.Response, error)
	requests int
	rt       http.RoundTripper
}

func faulty(t *testing.T, next ...func(*http.Request) (*http.Response, error)) (*faults, *kubernetes.Clientset) {
	f := &faults{next: next}
	config := demotest.Config(t)
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper { f.rt = rt; return f })
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return f, client
}

func (f *faults) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.requests++
	var fault func(*http.Request) (*http.Response, error)
	if len(f.next) > 0 {
		fault, f.next = f.next[0], f.next[1:]
	}
	f.mu.Unlock()
	if fault != nil {
		return fault(req)
	}
	return f.rt.RoundTrip(req)
}

func (f *faults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// status answers with err's Status as the API server would, without a
// Retry-After header (with one, client-go would retry by itself).
func status(err *apierrors.StatusError) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		s := err.ErrStatus
		s.Kind, s.APIVersion = "Status", "v1"
		body, jerr := json.Marshal(s)
		if jerr != nil {
			return nil, jerr
		}
		return &http.Response{
			StatusCode: int(s.Code),
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Request:    req,
		}, nil
	}
}

// What the README says about the server, checked on the server: moving
// from client-side to server-side apply needs no Force for the manager
// named kubectl (apimachinery
// pkg/util/managedfields/internal/lastappliedmanager.go), while any other
// manager meets the conflict that Step 5 shows.
func TestClientSideToServerSideApply(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	ctx := context.Background()
	deployments := cs.AppsV1().Deployments(ns)

	// What kubectl apply (client-side) leaves: the object, written by the
	// kubectl-client-side-apply manager with an Update, and the
	// last-applied-configuration annotation.
	d := nginxDeployment()
	d.GenerateName, d.Name = "", "csa"
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	lastApplied, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(lastApplied)}
	if _, err := deployments.Create(ctx, d, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deployments.Delete(context.Background(), d.Name, metav1.DeleteOptions{}) })

	_, err = deployments.Apply(ctx, imageApply(d.Name, ns, "nginx:1.19.10"), metav1.ApplyOptions{FieldManager: "image-updater"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("apply as image-updater without Force: err = %v, want a Conflict", err)
	}
	applied, err := deployments.Apply(ctx, imageApply(d.Name, ns, "nginx:1.19.10"), metav1.ApplyOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatalf("apply as kubectl without Force: %v", err)
	}
	if image(applied) != "nginx:1.19.10" {
		t.Errorf("image %s after the apply as kubectl", image(applied))
	}
	owned, err := appsv1apply.ExtractDeployment(applied, "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	if c := container(owned, "nginx"); c == nil || c.Image == nil || *c.Image != "nginx:1.19.10" {
		t.Errorf("kubectl does not own the image it applied: %+v", owned)
	}
}

// The server's default fieldValidation is Warn: an unknown field is
// dropped and answered with a Warning header; Strict makes it an error
// (apiserver pkg/endpoints/handlers/rest.go, fieldValidation). A typed
// client cannot send one, so the raw body goes through its RESTClient.
func TestUnknownFieldIsAWarningUnlessStrict(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	config := demotest.Config(t)
	var warnings warningRecorder
	config.WarningHandlerWithContext = &warnings
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"typo-","labels":{"` + partOfKey + `":"` + partOfValue + `"}},"date":{"a":"b"}}`
	post := func(validation string) (*corev1.ConfigMap, error) {
		req := client.CoreV1().RESTClient().Post().Namespace(ns).Resource("configmaps").Body([]byte(body))
		if validation != "" {
			req = req.Param("fieldValidation", validation)
		}
		var cm corev1.ConfigMap
		return &cm, req.Do(context.Background()).Into(&cm)
	}

	cm, err := post("")
	if err != nil {
		t.Fatalf("create with a typo, default fieldValidation: %v", err)
	}
	if len(cm.Data) != 0 {
		t.Errorf("stored data %v, want the unknown field dropped", cm.Data)
	}
	if got := warnings.String(); !strings.Contains(got, `unknown field "date"`) {
		t.Errorf("warnings %q, want one about the unknown field", got)
	}
	_, err = post("Strict")
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "date"`) {
		t.Errorf("create with a typo, fieldValidation=Strict: err = %v, want 400 naming the field", err)
	}
	// An apply body is typed against the schema to be merged, so an unknown
	// field fails it whatever fieldValidation says
	// (pkg/util/managedfields/internal/structuredmerge.go).
	err = client.CoreV1().RESTClient().Patch(types.ApplyPatchType).Namespace(ns).Resource("configmaps").Name("typo").
		Param("fieldManager", "test").Param("fieldValidation", "Ignore").
		Body([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"typo"},"date":{"a":"b"}}`)).Do(context.Background()).Error()
	if err == nil || !strings.Contains(err.Error(), ".date: field not declared in schema") {
		t.Errorf("apply with a typo, fieldValidation=Ignore: err = %v, want field not declared in schema", err)
	}
	if err := client.CoreV1().ConfigMaps(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: partOf}); err != nil {
		t.Fatal(err)
	}
}

type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, message)
}

func (w *warningRecorder) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.warnings, "; ")
}
