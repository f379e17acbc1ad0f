package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// These tests run the demo against a real API server: the one in $KUBECONFIG,
// which `make test` points at the local control plane from hack/localcluster.
func client(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run the tests with `make test`, which starts a local control plane")
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(config)
}

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-clientset-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

func assertNothingLeft(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	var left []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		left = nil
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, d := range deps.Items {
			left = append(left, "deployment/"+d.Name)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			left = append(left, "pod/"+p.Name)
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("left behind in %s: %v (%v)", ns, left, err)
	}
}

// history records, from a watch of its own, every version of every
// Deployment and the largest number of Running Pods seen at once.
type history struct {
	mu          sync.Mutex
	deployments []*appsv1.Deployment
	running     map[string]bool
	maxRunning  int
	runningLog  []int
}

func watchNamespace(t *testing.T, cs kubernetes.Interface, ns string) *history {
	h := &history{running: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dw, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev := range dw.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				h.mu.Lock()
				h.deployments = append(h.deployments, d)
				h.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			h.mu.Lock()
			h.running[p.Name] = ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning
			n := 0
			for _, r := range h.running {
				if r {
					n++
				}
			}
			if n > h.maxRunning {
				h.maxRunning = n
			}
			if len(h.runningLog) == 0 || h.runningLog[len(h.runningLog)-1] != n {
				h.runningLog = append(h.runningLog, n)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

func TestClientsetDemo(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	h := watchNamespace(t, cs, ns)

	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, re := range []string{
		`Step 1: build the clientset`,
		`clientset.AppsV1\(\).Deployments\("` + ns + `"\) -> group apps, version v1, resource deployments`,
		`/apis/apps/v1/namespaces/` + ns + `/deployments`,
		`Step 2: create the nginx Deployment`,
		`created demo-clientset-\w+: resourceVersion \d+, generation 1, uid [0-9a-f-]{36}`,
		`Step 3: list Deployments by label`,
		`1 deployment\(s\) with label app.kubernetes.io/part-of=client-go-demo`,
		`pods with run=nginx: 3 running`,
		`Step 4: an update from a stale read gets 409 Conflict`,
		`Operation cannot be fulfilled on deployments.apps "demo-clientset-\w+": the object has been modified`,
		`scaled to 1 replica \(attempts: \d\)`, // more than 1 if the controller wrote in between
		`pods with run=nginx: 1 running`,
		`Step 5: server-side apply`,
		`managedFields: demo-clientset \(Update, owns image\)`,
		`image-updater without Force: Apply failed with 1 conflict: conflict with "demo-clientset" using apps/v1: .spec.template.spec.containers\[name="nginx"\].image`,
		`image-updater with Force: image now nginx:1.19.10`,
		`managedFields: demo-clientset \(Update\); image-updater \(Apply, owns image\); kube-controller-manager \(Update\)`,
		`image-updater again, no Force needed: image now nginx:1.20.2`,
		`Step 6: delete with Foreground propagation`,
		`pods with run=nginx: 0 running`,
		`deployment demo-clientset-\w+ and its pods are gone`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks %s", re)
		}
	}

	// What the server saw, step by step.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.maxRunning != 3 {
		t.Errorf("at most %d pods ran at once, want 3", h.maxRunning)
	}
	// 0 -> ... -> 3 running, down to 1, then 0.
	log := h.runningLog
	if len(log) < 3 || log[len(log)-1] != 0 || !containsSeq(log, 3, 1, 0) {
		t.Errorf("running pod counts over time %v, want 3 then 1 then 0", log)
	}
	var sawScaled, saw119, saw120, sawForeground bool
	for _, d := range h.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		if c.Name != "nginx" || c.Ports[0].Name != "nginx-port" || c.Ports[0].ContainerPort != 80 || d.Spec.Selector.MatchLabels["run"] != "nginx" {
			t.Fatalf("deployment is not the notes' nginx: %+v", d.Spec)
		}
		sawScaled = sawScaled || *d.Spec.Replicas == 1
		saw119 = saw119 || c.Image == "nginx:1.19.10"
		if c.Image == "nginx:1.20.2" {
			saw120 = true
			owner := ""
			for _, m := range d.ManagedFields {
				if m.Operation == metav1.ManagedFieldsOperationApply && strings.Contains(m.FieldsV1.GetRawString(), `"f:image"`) {
					owner = m.Manager
				}
			}
			if owner != "image-updater" {
				t.Errorf("image nginx:1.20.2 owned by %q, want image-updater", owner)
			}
		}
		for _, f := range d.Finalizers {
			sawForeground = sawForeground || f == metav1.FinalizerDeleteDependents
		}
	}
	if !sawScaled || !saw119 || !saw120 || !sawForeground {
		t.Errorf("server never saw: scaled=%v image1.19=%v image1.20=%v foregroundDeletion=%v", sawScaled, saw119, saw120, sawForeground)
	}
	if !strings.Contains(h.deployments[0].Spec.Template.Spec.Containers[0].Image, "nginx:1.17.1") {
		t.Errorf("first image %s, want nginx:1.17.1", h.deployments[0].Spec.Template.Spec.Containers[0].Image)
	}
	assertNothingLeft(t, cs, ns)
}

func containsSeq(log []int, seq ...int) bool {
	i := 0
	for _, v := range log {
		if i < len(seq) && v == seq[i] {
			i++
		}
	}
	return i == len(seq)
}

func TestClientsetErrors(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	raw, err := clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range raw.AuthInfos {
		a.Impersonate = "nobody"
	}
	nobody := filepath.Join(t.TempDir(), "nobody.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, nobody); err != nil {
		t.Fatal(err)
	}
	raw, _ = clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	for _, c := range raw.Clusters {
		c.Server = "https://127.0.0.1:1"
	}
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, unreachable); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `forbidden by RBAC: deployments.apps is forbidden: User "nobody" cannot create resource "deployments" in API group "apps" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable}, "dial tcp 127.0.0.1:1: connect: connection refused", false},
		{"bad flag", []string{"-pod-timeout", "soon"}, `invalid value "soon" for flag -pod-timeout`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			var u usageError
			if errors.As(err, &u) != tc.usage {
				t.Errorf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	assertNothingLeft(t, cs, ns)
}

// Ctrl-C while the Pods run: the deferred delete still removes the Deployment.
func TestClientsetInterruptedCleansUp(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{marker: "3 running", cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out.buf.String())
	}
	assertNothingLeft(t, cs, ns)
}

type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}
