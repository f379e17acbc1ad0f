package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"client-go-demo/internal/demotest"
)

// These tests run the demo against the local control plane (see
// internal/demotest) and check what it did on the server, not only what it
// printed.

func TestRestclientDemo(t *testing.T) {
	cs := demotest.Client(t)
	k8sVersion, _ := demotest.K8sVersion(t)
	ns := demotest.Namespace(t, cs, "test-restclient")
	pods := recordPods(t, cs, ns)
	deploys := recordDeployments(t, cs, ns)

	out := &demotest.Output{}
	if err := run(context.Background(), []string{"-n", ns}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	got := out.String()
	for _, want := range []string{
		"Step 1: decide the resource and its path",
		"Step 2: load the kubeconfig as kubectl does",
		"  server " + demotest.Config(t).Host + ", namespace " + ns + "\n",
		"Step 3: set up the config",
		`APIPath /api, GroupVersion v1, ContentType "" (empty means JSON), QPS 5, Burst 10, UserAgent client-go-demo-restclient`,
		"Step 4: create the clients",
		`"gitVersion": "` + k8sVersion + `"`,
		"Step 5: call the API",
		"image registry.k8s.io/pause:3.10\n",
		"  page 1: 2 pods, continue token present: true\n  ",
		"  page 2: 2 pods, continue token present: true\n  ",
		"  page 3: 1 pods, continue token present: false\n  listed 5 pods in all\n",
		"  label demo-step=patched, resourceVersion now ",
		"Cleanup: delete everything this demo created\n",
		"  deleted 4 pods with one DeleteCollection\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// The URLs printed are the ones client-go sent, with the real host, and
	// every curl line carries what it needs to run (TestCurlLinesRun runs
	// them).
	host := regexp.QuoteMeta(demotest.Config(t).Host)
	run := `demo-restclient-\w{5}`
	sel := `labelSelector=app.kubernetes.io%2Finstance%3D` + run
	for _, re := range []string{
		`(?m)^    GET ` + host + `/version\?timeout=30s$`,
		`(?m)^    POST ` + host + `/api/v1/namespaces/` + ns + `/pods\?timeout=30s$`,
		`(?m)^    curl -X POST -H 'Content-Type: application/json' -d '\{"kind":"Pod","apiVersion":"v1","metadata":\{"generateName":"demo-restclient-",.*'http://127.0.0.1:8001/api/v1/namespaces/` + ns + `/pods\?timeout=30s'$`,
		`(?m)^    GET ` + host + `/api/v1/namespaces/` + ns + `/pods\?` + sel + `&limit=2&timeout=30s$`,
		`(?m)^    GET ` + host + `/api/v1/namespaces/` + ns + `/pods\?continue=[^&]+&` + sel + `&limit=2&timeout=30s$`,
		`(?m)^    curl -X PATCH -H 'Content-Type: application/merge-patch\+json' -d '\{"metadata":\{"labels":\{"demo-step":"patched"\}\}\}' 'http://127.0.0.1:8001/api/v1/namespaces/` + ns + `/pods/` + run + `\?timeout=30s'$`,
		`(?m)^    DELETE ` + host + `/api/v1/namespaces/` + ns + `/pods/` + run + `\?timeout=30s$`,
		`(?m)^    curl -H 'Accept: application/vnd.kubernetes.protobuf,application/json' 'http://127.0.0.1:8001/api/v1/namespaces/` + ns + `/pods\?` + sel + `&timeout=30s'$`,
		`(?m)^    POST ` + host + `/apis/apps/v1/namespaces/` + ns + `/deployments\?timeout=30s$`,
		`(?m)^    DELETE ` + host + `/api/v1/namespaces/` + ns + `/pods\?` + sel + `$`,
		`(?m)^    DELETE ` + host + `/apis/apps/v1/namespaces/` + ns + `/deployments/` + run + `$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks a line matching %s", re)
		}
	}
	if regexp.MustCompile(`(-d|--data\S*) @`).MatchString(got) {
		t.Error("a curl line reads its body from a file (-d @...) that does not exist")
	}

	// Protobuf must be smaller than JSON for the same list.
	size := func(contentType string) int {
		m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(contentType) + ` +(\d+) bytes$`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("no size line for %s", contentType)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	jsonBytes, protoBytes := size("application/json"), size("application/vnd.kubernetes.protobuf")
	if protoBytes <= 0 || protoBytes >= jsonBytes {
		t.Errorf("protobuf %d bytes, JSON %d bytes: want protobuf smaller", protoBytes, jsonBytes)
	}

	// On the server: five Pods were created, the patch reached the first,
	// the Deployment was created, and everything was deleted again.
	first := regexp.MustCompile(`created pod (` + run + `) `).FindStringSubmatch(got)
	deploy := regexp.MustCompile(`created deployment (` + run + `)\n`).FindStringSubmatch(got)
	if first == nil || deploy == nil {
		t.Fatalf("no 'created pod' or 'created deployment' line in\n%s", got)
	}
	demotest.WaitFor(t, 30*time.Second, "5 Pods added, the first one patched, all 5 deleted", func() bool {
		added, deleted, patched := pods.names(watch.Added), pods.names(watch.Deleted), false
		for _, ev := range pods.all() {
			p, ok := ev.Object.(*corev1.Pod) // an ERROR event carries a *metav1.Status
			patched = patched || ok && ev.Type == watch.Modified && p.Name == first[1] && p.Labels["demo-step"] == "patched"
		}
		return len(added) == 5 && added[first[1]] && patched && len(deleted) == 5 && sameKeys(added, deleted)
	})
	demotest.WaitFor(t, 30*time.Second, "the Deployment added and deleted", func() bool {
		return deploys.names(watch.Added)[deploy[1]] && deploys.names(watch.Deleted)[deploy[1]]
	})
	// The Deployment's ReplicaSet carries the label too: the garbage
	// collector must have removed it.
	demotest.NothingLeft(t, cs, ns)
}

// TestCurlLinesRun runs the demo's curl lines through a real `kubectl
// proxy`: the create and the patch reach the server with their bodies, and
// the DeleteCollection line removes what they made.
func TestCurlLinesRun(t *testing.T) {
	cs := demotest.Client(t)
	k8sVersion, _ := demotest.K8sVersion(t)
	ns := demotest.Namespace(t, cs, "test-restclient-curl")
	for _, tool := range []string{"curl", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			needTool(t, tool+" is not on PATH")
		}
	}
	proxy := kubectlProxy(t)

	out := &demotest.Output{}
	if err := run(context.Background(), []string{"-n", ns}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	curl := func(prefix string) string {
		for _, l := range strings.Split(out.String(), "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "curl "+prefix) {
				return strings.ReplaceAll(l, "http://127.0.0.1:8001", proxy)
			}
		}
		t.Fatalf("no line starting with curl %s in\n%s", prefix, out)
		return ""
	}
	sh := func(line string) []byte {
		t.Helper()
		b, err := exec.Command("sh", "-c", line+" --silent --show-error --fail").Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return b
	}

	var version struct{ GitVersion string }
	if err := json.Unmarshal(sh(curl("'")), &version); err != nil || version.GitVersion != k8sVersion {
		t.Errorf("curl /version: gitVersion %q, %v", version.GitVersion, err)
	}
	var created corev1.Pod
	if err := json.Unmarshal(sh(curl("-X POST")), &created); err != nil || created.Labels[instanceKey] == "" {
		t.Fatalf("curl POST: %v, labels %v", err, created.Labels)
	}
	// The patch line names the demo's own Pod, deleted by now: aim it at
	// the one curl created.
	patchLine := regexp.MustCompile(`/pods/demo-restclient-\w{5}`).ReplaceAllString(curl("-X PATCH"), "/pods/"+created.Name)
	var patched corev1.Pod
	if err := json.Unmarshal(sh(patchLine), &patched); err != nil || patched.Labels["demo-step"] != "patched" {
		t.Errorf("curl PATCH: %v, labels %v", err, patched.Labels)
	}
	// The demo's DeleteCollection line selects the demo run's label, which
	// the curl-made Pod carries too.
	var deleted corev1.PodList
	if err := json.Unmarshal(sh(curl("-X DELETE 'http://127.0.0.1:8001/api/v1/namespaces/"+ns+"/pods?labelSelector")), &deleted); err != nil || len(deleted.Items) != 1 {
		t.Errorf("curl DELETE collection: %v, deleted %d pods, want 1", err, len(deleted.Items))
	}
	demotest.NothingLeft(t, cs, ns)
}

func TestRestclientErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-restclient-errors")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)

	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create pod in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `create pod in namespace "` + ns + `": forbidden by RBAC: pods is forbidden: User "nobody" cannot create resource "pods" in API group "" in the namespace "` + ns + `"`, false},
		// Connection refused is immediate: the error names it, not a timeout.
		{"unreachable", []string{"-kubeconfig", unreachable, "-timeout", "5s"}, `get /version: Get "https://127.0.0.1:1/version?timeout=5s": dial tcp 127.0.0.1:1: connect: connection refused`, false},
		{"bad flag", []string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag (see -h)", true},
		{"bad pods", []string{"-pods", "0"}, "-pods 0 -timeout 30s: want at least 1 Pod and a positive timeout", true},
		{"bad timeout", []string{"-timeout", "0s"}, "-pods 5 -timeout 0s: want at least 1 Pod and a positive timeout", true},
		{"arguments", []string{"pods"}, `unexpected arguments ["pods"] (see -h)`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &demotest.Output{})
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to end with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("usage error (exit 2) = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	demotest.NothingLeft(t, cs, ns)
}

// Ctrl-C in the middle: the context is cancelled while the Pods exist, and
// the deferred DeleteCollection still deletes them.
func TestRestclientInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-restclient-interrupt")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{Marker: "page 1:", Cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out)
	}
	if !strings.Contains(out.String(), "deleted 5 pods with one DeleteCollection") {
		t.Errorf("the cleanup did not delete the 5 Pods:\n%s", out)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// A closed stdout (go run ./restclient | head): main wraps os.Stdout in
// stdoutWriter, whose first failed write cancels the run; the cleanup runs
// as after Ctrl-C.
func TestRestclientClosedStdoutCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-restclient-epipe")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	pipe := &closingPipe{after: "page 1:"}
	err := run(ctx, []string{"-n", ns}, stdoutWriter{pipe, cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, pipe)
	}
	if cause := context.Cause(ctx); !errors.Is(cause, syscall.EPIPE) {
		t.Errorf("cause = %v, want the write error", cause)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// closingPipe accepts writes until its output contains after, then fails
// every write with EPIPE, as a pipe does once its reader has gone.
type closingPipe struct {
	demotest.Output
	after  string
	closed bool
}

func (p *closingPipe) Write(b []byte) (int, error) {
	if p.closed {
		return 0, syscall.EPIPE
	}
	n, err := p.Output.Write(b)
	p.closed = strings.Contains(p.Output.String(), p.after)
	return n, err
}

// recorder keeps every event of one watch that started before the demo.
type recorder struct {
	mu     sync.Mutex
	events []watch.Event
}

func record(t *testing.T, w watch.Interface, err error) *recorder {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	r := &recorder{}
	go func() {
		for ev := range w.ResultChan() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

func recordPods(t *testing.T, cs kubernetes.Interface, ns string) *recorder {
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	return record(t, w, err)
}

func recordDeployments(t *testing.T, cs kubernetes.Interface, ns string) *recorder {
	list, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.AppsV1().Deployments(ns).Watch(context.Background(), metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	return record(t, w, err)
}

func (r *recorder) all() []watch.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]watch.Event(nil), r.events...)
}

// names returns the names of the objects in events of type typ.
func (r *recorder) names(typ watch.EventType) map[string]bool {
	names := map[string]bool{}
	for _, ev := range r.all() {
		if ev.Type != typ {
			continue
		}
		// An ERROR event carries a *metav1.Status, which has no name.
		if o, ok := ev.Object.(metav1.Object); ok {
			names[o.GetName()] = true
		}
	}
	return names
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// kubectlProxy starts `kubectl proxy` on a free port, as a user would before
// running the curl lines, and returns its base URL. It uses $KUBECTL (the
// kubectl that `make test` builds from the same release), else bin/kubectl,
// else kubectl from $PATH.
func kubectlProxy(t *testing.T) string {
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		if _, err := os.Stat(filepath.Join("..", "bin", "kubectl")); err == nil {
			kubectl = filepath.Join("..", "bin", "kubectl")
		} else if kubectl, err = exec.LookPath("kubectl"); err != nil {
			needTool(t, "no kubectl: run `make kubectl`")
		}
	}
	cmd := exec.Command(kubectl, "proxy", "--port=0", "--kubeconfig", demotest.Kubeconfig(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// kubectl proxy prints "Starting to serve on 127.0.0.1:<port>" once it
	// listens.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "Starting to serve on ")
	if err != nil || !ok {
		t.Fatalf("kubectl proxy said %q: %v", line, err)
	}
	return "http://" + addr
}

// needTool fails under `make test` and skips otherwise.
func needTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("DEMO_TEST_REQUIRE_CLUSTER") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
