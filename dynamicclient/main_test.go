package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"client-go-demo/internal/demotest"
)

// These tests run the demo against the local control plane (see
// internal/demotest) and check on the server what it did: watch events for
// the Deployment, the CRD and the CronTabs, and Gets after it returned.

const crdName = "crontabs.stable.example.com"

// events collects the events of a watch until it ends.
type events struct {
	mu   sync.Mutex
	list []watch.Event
	done bool
}

func record(w watch.Interface) *events {
	e := &events{}
	go func() {
		for ev := range w.ResultChan() {
			e.mu.Lock()
			e.list = append(e.list, ev)
			e.mu.Unlock()
		}
		e.mu.Lock()
		e.done = true
		e.mu.Unlock()
	}()
	return e
}

func (e *events) get() []watch.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]watch.Event(nil), e.list...)
}

func (e *events) count(typ watch.EventType) int {
	n := 0
	for _, ev := range e.get() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// hookOutput runs hook once, when the output first contains marker, before
// the demo's write returns: the demo waits for it.
type hookOutput struct {
	demotest.Output
	marker string
	hook   func()
	fired  bool
}

func (h *hookOutput) Write(p []byte) (int, error) {
	n, err := h.Output.Write(p)
	if !h.fired && strings.Contains(h.String(), h.marker) {
		h.fired = true
		h.hook()
	}
	return n, err
}

func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	return dynamic.NewForConfigOrDie(demotest.Config(t))
}

// crdGone fails the test if the CRD is still on the server. No poll: the
// demo returns only after a Get has said NotFound.
func crdGone(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	_, err := dyn.Resource(crdGVR).Get(context.Background(), crdName, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("CRD %s: err = %v, want NotFound: the demo returned before it was gone", crdName, err)
	}
}

func TestDynamicclientDemo(t *testing.T) {
	cs := demotest.Client(t)
	dyn := dynamicClient(t)
	ns := demotest.Namespace(t, cs, "test-dynamicclient")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dw, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deployEvents := record(dw)
	cw, err := dyn.Resource(crdGVR).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + crdName})
	if err != nil {
		t.Fatal(err)
	}
	crdEvents := record(cw)
	// The CronTab resource exists only once the CRD does: the watch starts
	// when the demo says it is Established, and the demo waits for it.
	var crontabEvents *events
	out := &hookOutput{marker: "is Established", hook: func() {
		w, err := dyn.Resource(crontabGVR).Namespace(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			t.Errorf("watch crontabs right after Established: %v", err)
			return
		}
		crontabEvents = record(w)
	}}

	if err := run(context.Background(), []string{"-n", ns}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, re := range []string{
		`(?m)^Step 1: build the client with dynamic.NewForConfig$`,
		`connected to https://\S+, Kubernetes v\d+\.\d+\.\d+\S*, namespace ` + ns + `\n`,
		`(?m)^Step 2: decode the nginx manifest`,
		`apiVersion apps/v1, kind Deployment, metadata.name nginx, spec.replicas 3, status \{\} \(the server ignores status on create\)`,
		`RESTMapper: kind Deployment in apps/v1 -> resource "deployments", scope namespace`,
		`(?m)^Step 3: create, get and list`,
		`created demo-dynamicclient-\w{5}, resourceVersion \d+`,
		`listed 1 deployment\(s\) with app.kubernetes.io/part-of=client-go-demo, kind DeploymentList`,
		`SetNestedField spec.replicas=1, resourceVersion \d+`,
		`typed: appsv1.Deployment demo-dynamicclient-\w{5}, replicas 1, image nginx:1.17.1; back to a map with 5 top-level keys`,
		`(?m)^Step 4: server-side apply`,
		`applied image nginx:1.19.10 as demo-dynamicclient with Force`,
		`our managedFields entries: demo-dynamicclient \(Apply\); demo-dynamicclient \(Update\)\n`,
		`(?m)^Step 5: create a CustomResourceDefinition`,
		`CRD crontabs.stable.example.com is Established: /apis/stable.example.com/v1/namespaces/` + ns + `/crontabs is served`,
		`crontab (demo-dynamicclient-\w{5}): cronSpec "\*/5 \* \* \* \*"\n  crontab demo-dynamicclient-\w{5}: cronSpec "0 3 \* \* \*"\n  updated demo-dynamicclient-\w{5}: spec.replicas=5`,
		`an invalid crontab is rejected: CronTab.stable.example.com "demo-dynamicclient-\w{5}" is invalid: spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match`,
		`(?m)^Step 6: clean up.*\n  crontabs with app.kubernetes.io/part-of=client-go-demo deleted\n  CRD crontabs.stable.example.com is gone\n  deployment demo-dynamicclient-\w{5} is gone\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks %s\noutput:\n%s", re, got)
		}
	}
	crdGone(t, dyn)
	demotest.NothingLeft(t, cs, ns)

	// The Deployment: created from the manifest in our namespace, scaled to
	// 1, its image applied, then deleted.
	demotest.WaitFor(t, 30*time.Second, "the Deployment's DELETED event", func() bool { return deployEvents.count(watch.Deleted) == 1 })
	var fromManifest, scaled, applied bool
	for _, ev := range deployEvents.get() {
		d, ok := ev.Object.(*appsv1.Deployment)
		if !ok || len(d.Spec.Template.Spec.Containers) != 1 || d.Spec.Replicas == nil {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if ev.Type == watch.Added {
			fromManifest = *d.Spec.Replicas == 3 && c.Image == "nginx:1.17.1" && len(c.Ports) == 1 && c.Ports[0].Name == "nginx-port" &&
				d.Spec.Selector.MatchLabels["run"] == "nginx" && d.Labels["app.kubernetes.io/part-of"] == "client-go-demo" &&
				strings.HasPrefix(d.Name, "demo-dynamicclient-") && d.Namespace == ns
		}
		scaled = scaled || (ev.Type == watch.Modified && *d.Spec.Replicas == 1)
		for _, m := range d.ManagedFields {
			applied = applied || (c.Image == "nginx:1.19.10" && m.Manager == fieldManager && m.Operation == metav1.ManagedFieldsOperationApply)
		}
	}
	if !fromManifest || !scaled || !applied {
		t.Errorf("the server saw: created from the manifest=%v, scaled to 1=%v, image applied=%v", fromManifest, scaled, applied)
	}

	// The CRD: created, Established, deleted.
	demotest.WaitFor(t, 30*time.Second, "the CRD's DELETED event", func() bool { return crdEvents.count(watch.Deleted) == 1 })
	var established bool
	for _, ev := range crdEvents.get() {
		if u, ok := ev.Object.(*unstructured.Unstructured); ok {
			conds, err := crdConditions(u)
			established = established || (err == nil && conditionTrue(conds, "Established"))
		}
	}
	if crdEvents.count(watch.Added) != 1 || !established {
		t.Errorf("CRD events %v: want one ADDED, Established=True in one of them, one DELETED", types(crdEvents.get()))
	}

	// The CronTabs: two created, one set to 5 replicas, both deleted, and
	// the invalid one never stored.
	if crontabEvents == nil {
		t.Fatal("no CronTab watch")
	}
	demotest.WaitFor(t, 30*time.Second, "two CronTab DELETED events", func() bool { return crontabEvents.count(watch.Deleted) == 2 })
	added := map[string]int64{}
	var updated bool
	for _, ev := range crontabEvents.get() {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		spec, _, _ := unstructured.NestedString(u.Object, "spec", "cronSpec")
		replicas, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		switch ev.Type {
		case watch.Added:
			added[spec] = replicas
		case watch.Modified:
			updated = updated || (spec == "*/5 * * * *" && replicas == 5)
		}
	}
	if want := map[string]int64{"*/5 * * * *": 1, "0 3 * * *": 2}; fmt.Sprint(added) != fmt.Sprint(want) || !updated {
		t.Errorf("CronTab events %v: want ADDED %v, a MODIFIED to 5 replicas, 2 DELETED", types(crontabEvents.get()), want)
	}
}

func conditionTrue(conds []metav1.Condition, typ string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func types(evs []watch.Event) []watch.EventType {
	var out []watch.EventType
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func TestDynamicclientErrors(t *testing.T) {
	cs := demotest.Client(t)
	dyn := dynamicClient(t)
	ns := demotest.Namespace(t, cs, "test-dynamicclient")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		// /version and discovery are open to every user; creating is not.
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `forbidden by RBAC: deployments.apps is forbidden: User "nobody" cannot create resource "deployments" in API group "apps" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable}, `reach the API server: Get "https://127.0.0.1:1/version?timeout=32s": dial tcp 127.0.0.1:1: connect: connection refused`, false},
		{"never established", []string{"-n", ns, "-crd-timeout", "1ns"}, "CRD crontabs.stable.example.com did not become Established within 1ns: context deadline exceeded", false},
		{"bad flag", []string{"-crd-timeout"}, "flag needs an argument: -crd-timeout (see -h)", true},
		{"argument", []string{"extra"}, `unexpected arguments ["extra"] (see -h)`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out demotest.Output
			err := run(context.Background(), tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q\noutput:\n%s", err, tc.want, out.String())
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	crdGone(t, dyn)
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// A CRD whose names another CRD holds is never Established: the wait ends
// at once with the server's reason instead of running into -crd-timeout.
func TestDynamicclientNamesRefused(t *testing.T) {
	cs := demotest.Client(t)
	dyn := dynamicClient(t)
	ns := demotest.Namespace(t, cs, "test-dynamicclient")
	crds := dyn.Resource(crdGVR)
	claim := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "ctclaims.stable.example.com"},
		"spec": map[string]any{
			"group": "stable.example.com",
			"scope": "Namespaced",
			"names": map[string]any{"plural": "ctclaims", "kind": "CtClaim", "shortNames": []any{"ct"}},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object"}}}},
		},
	}}
	ctx := context.Background()
	if _, err := crds.Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A CRD holds its names until it is gone, Terminating included: wait,
	// or the next test's CRD would meet the same conflict.
	t.Cleanup(func() {
		if err := crds.Delete(context.Background(), claim.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete CRD %s: %v", claim.GetName(), err)
		}
		demotest.WaitFor(t, time.Minute, "CRD "+claim.GetName()+" to be gone", func() bool {
			_, err := crds.Get(context.Background(), claim.GetName(), metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	})
	if err := waitEstablished(ctx, crds, claim.GetName(), 30*time.Second); err != nil {
		t.Fatalf("the CRD that claims the short name ct: %v", err)
	}

	var out demotest.Output
	err := run(ctx, []string{"-n", ns, "-crd-timeout", "1m"}, &out)
	want := `CRD crontabs.stable.example.com did not become Established within 1m0s: names not accepted: ShortNamesConflict: "ct" is already in use`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s\noutput:\n%s", err, want, out.String())
	}
	crdGone(t, dyn)
	demotest.NothingLeft(t, cs, ns)
}

// Ctrl-C at three points: the deferred deletes remove what exists by then,
// the CRD included, and the demo returns only when it is gone.
func TestDynamicclientInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	dyn := dynamicClient(t)
	for _, marker := range []string{"  created demo-dynamicclient-", "is Established", "  updated demo-dynamicclient-"} {
		t.Run(strings.TrimSpace(marker), func(t *testing.T) {
			ns := demotest.Namespace(t, cs, "test-dynamicclient")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &demotest.Output{Marker: marker, Cancel: cancel}
			err := run(ctx, []string{"-n", ns}, out)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled\noutput:\n%s", err, out.String())
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if !strings.Contains(out.String(), "deployment demo-dynamicclient-") {
				t.Errorf("the output does not say the deployment is gone:\n%s", out.String())
			}
			crdGone(t, dyn)
			demotest.NothingLeft(t, cs, ns)
		})
	}
}

// transient decides whether a poll goes on; these are the errors a
// server or a network gives.
func TestTransient(t *testing.T) {
	gr := schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewTooManyRequests("slow down", 1), true},
		{apierrors.NewInternalError(errors.New("boom")), true},
		{apierrors.NewServiceUnavailable("restarting"), true},
		{apierrors.NewServerTimeout(gr, "get", 1), true},
		{apierrors.NewTimeoutError("took too long", 1), true},
		{apierrors.NewGenericServerResponse(502, "get", gr, crdName, "bad gateway", 0, true), true},
		{&url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: syscall.ECONNREFUSED}, true},
		{&url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: context.DeadlineExceeded}, true},
		{apierrors.NewForbidden(gr, crdName, errors.New("no")), false},
		{apierrors.NewNotFound(gr, crdName), false},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "CronTab"}, "x", field.ErrorList{field.Required(field.NewPath("spec"), "")}), false},
		{apierrors.NewUnauthorized("who are you"), false},
		{context.Canceled, false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// poll goes on through transient errors and stops at the first other one.
func TestPoll(t *testing.T) {
	calls := 0
	err := poll(context.Background(), time.Minute, func(context.Context) (bool, error) {
		calls++
		if calls < 3 {
			return false, apierrors.NewServiceUnavailable("restarting")
		}
		return true, nil
	})
	if err != nil || calls != 3 {
		t.Errorf("through two 503s: err = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	forbidden := apierrors.NewForbidden(crdGVR.GroupResource(), crdName, errors.New("no"))
	err = poll(context.Background(), time.Minute, func(context.Context) (bool, error) {
		calls++
		return false, forbidden
	})
	if !apierrors.IsForbidden(err) || calls != 1 {
		t.Errorf("on Forbidden: err = %v after %d calls, want Forbidden after 1", err, calls)
	}
}

// crdConditions reads the conditions as the API server writes them,
// lastTransitionTime included, and leaves out what a CRD lacks.
func TestCRDConditions(t *testing.T) {
	crd := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"group": "stable.example.com"},
		"status": map[string]any{"conditions": []any{
			map[string]any{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": "2026-11-01T00:00:00Z"},
			map[string]any{"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted", "lastTransitionTime": "2026-11-01T00:00:01Z"},
		}},
	}}
	got, err := crdConditions(crd)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Type != "NamesAccepted" || got[0].Status != metav1.ConditionTrue || got[1].Reason != "Installing" ||
		got[1].LastTransitionTime.UTC().Format(time.RFC3339) != "2026-11-01T00:00:01Z" {
		t.Errorf("conditions = %+v", got)
	}
	if conditionTrue(got, "Established") {
		t.Error("Established reads as True")
	}
	crd.Object["status"] = map[string]any{"conditions": "not a list"}
	if _, err := crdConditions(crd); err == nil {
		t.Error("no error for conditions that are not a list")
	}
}
