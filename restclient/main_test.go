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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-restclient-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

// assertNothingLeft waits for the demo's objects to be gone from ns.
func assertNothingLeft(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	var left []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		left = nil
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: partOf})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			left = append(left, "pod/"+p.Name)
		}
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: partOf})
		if err != nil {
			return false, err
		}
		for _, d := range deps.Items {
			left = append(left, "deployment/"+d.Name)
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("left behind in %s: %v (%v)", ns, left, err)
	}
}

func TestRestclientDemo(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	ctx := context.Background()

	// Record on the server side every Pod and Deployment the demo creates.
	podWatch, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer podWatch.Stop()
	var mu sync.Mutex
	added := map[string]bool{}
	go func() {
		for ev := range podWatch.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				mu.Lock()
				added[p.Name] = true
				mu.Unlock()
			}
		}
	}()

	var out bytes.Buffer
	if err := run(ctx, []string{"-n", ns}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()

	for _, want := range []string{
		"Step 1: decide the resource and its path",
		"/api/v1/namespaces/{namespace}/pods",
		"/apis/apps/v1/namespaces/{namespace}/deployments",
		"Step 2: load the kubeconfig as kubectl does",
		"namespace " + ns,
		"Step 3: set up the config",
		"APIPath /api, GroupVersion v1",
		"Step 4: create the clients",
		`"gitVersion": "v1.37.2"`,
		"Step 5: call the API",
		"page 1: 2 pods, continue token present: true",
		"page 2: 2 pods, continue token present: true",
		"page 3: 1 pods, continue token present: false",
		"listed 5 pods in all",
		"label demo-step=patched",
		"application/json",
		"application/vnd.kubernetes.protobuf",
		"created deployment demo-restclient-",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The URLs printed are the ones client-go sent, with the real host.
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	host := regexp.QuoteMeta(config.Host)
	for _, re := range []string{
		`GET ` + host + `/version`,
		`POST ` + host + `/api/v1/namespaces/` + ns + `/pods\?timeout=30s`,
		`GET ` + host + `/api/v1/namespaces/` + ns + `/pods\?continue=[^&]+&labelSelector=app.kubernetes.io%2Fpart-of%3Dclient-go-demo%2Capp.kubernetes.io%2Fname%3Drestclient&limit=2`,
		`PATCH ` + host + `/api/v1/namespaces/` + ns + `/pods/demo-restclient-\w+`,
		`DELETE ` + host + `/api/v1/namespaces/` + ns + `/pods/demo-restclient-\w+`,
		`POST ` + host + `/apis/apps/v1/namespaces/` + ns + `/deployments`,
		`curl: curl 'http://127.0.0.1:8001/api/v1/namespaces/` + ns + `/pods\?labelSelector=[^&]+&limit=2&timeout=30s'`,
		`curl: curl -H 'Accept: application/vnd.kubernetes.protobuf,application/json' 'http://127.0.0.1:8001/api/v1/namespaces/` + ns + `/pods\?labelSelector=`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks a request matching %s", re)
		}
	}

	// On the server: five Pods existed, and the one we read back is one of them.
	created := regexp.MustCompile(`created pod (demo-restclient-\w+)`).FindStringSubmatch(got)
	if created == nil {
		t.Fatal("no 'created pod' line")
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(added) == 5 && added[created[1]], nil
	})
	if err != nil {
		t.Errorf("server saw pods %v added, want 5 including %s", added, created[1])
	}
	assertNothingLeft(t, cs, ns)
}

func TestRestclientErrors(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	ctx := context.Background()

	// A user with no RBAC grants, by impersonation from the admin kubeconfig.
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
	// A server that does not answer.
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
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create pod in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `forbidden by RBAC: pods is forbidden: User "nobody" cannot create resource "pods" in API group "" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable, "-timeout", "5s"}, "get /version: Get \"https://127.0.0.1:1/version?timeout=5s\": dial tcp 127.0.0.1:1: connect: connection refused", false},
		{"bad flag", []string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag", true},
		{"bad pods", []string{"-pods", "0"}, "-pods 0: want at least 1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := run(ctx, tc.args, &bytes.Buffer{})
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
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	assertNothingLeft(t, cs, ns)
}

// Ctrl-C in the middle: the context is cancelled while Pods exist, and the
// deferred cleanup still deletes them.
func TestRestclientInterruptedCleansUp(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{marker: "page 1:", cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out.buf.String())
	}
	if !strings.Contains(out.buf.String(), "created pod") {
		t.Fatal("cancelled before anything was created; the test proves nothing")
	}
	assertNothingLeft(t, cs, ns)
	_, err = cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		t.Fatal("namespace vanished")
	}
}

// cancelOn cancels a context when the output contains marker, like a user
// pressing Ctrl-C at that point.
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
