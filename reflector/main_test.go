package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The demo replaces client-go's feature gates before its first client;
// the tests make clients before they run it, so they do it first.
func TestMain(m *testing.M) {
	installGates.Do(func() { clientfeatures.ReplaceFeatureGates(gates{clientfeatures.FeatureGates()}) })
	os.Exit(m.Run())
}

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
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-reflector-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	// kube-controller-manager publishes kube-root-ca.crt into every new
	// namespace; wait for it so that the demo's object counts are stable.
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("kube-root-ca.crt never appeared in %s", ns.Name)
	}
	return ns.Name
}

func assertNothingLeft(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	var n int
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: partOf})
		if err != nil {
			return false, err
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: partOf})
		if err != nil {
			return false, err
		}
		n = len(cms.Items) + len(pods.Items)
		return n == 0, nil
	})
	if err != nil {
		t.Fatalf("%d labelled objects left behind in %s: %v", n, ns, err)
	}
}

func match(t *testing.T, got string, res ...string) {
	t.Helper()
	failed := false
	for _, re := range res {
		if !regexp.MustCompile(`(?m)` + re).MatchString(got) {
			t.Errorf("output lacks %s", re)
			failed = true
		}
	}
	if failed {
		t.Logf("the output was:\n%s", got)
	}
}

func TestReflectorWatchList(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	// The server's own record of the changes, from a watch of the test's.
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{LabelSelector: partOf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	var events []string
	go func() {
		for ev := range w.ResultChan() {
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
				mu.Lock()
				events = append(events, string(ev.Type)+" "+cm.Name+" "+cm.ResourceVersion)
				mu.Unlock()
			}
		}
	}()

	var out bytes.Buffer
	if err := run(ctx, []string{"-n", ns, "-mode", "watchlist"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	match(t, got,
		`^Step 1: a ListWatch for configmaps in namespace `+ns,
		`^WATCH \(WatchList: the initial state streamed as events\) resourceVersion="" resourceVersionMatch=NotOlderThan sendInitialEvents=true allowWatchBookmarks=true timeoutSeconds=\d+$`,
		`^  curl 'http://127.0.0.1:8001/api/v1/namespaces/`+ns+`/configmaps\?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=\d+&watch=true'$`,
		`^  BOOKMARK resourceVersion \d+, annotated k8s.io/initial-events-end: the initial state is complete$`,
		`^  store REPLACE: 1 objects at resourceVersion \d+$`, // kube-root-ca.crt
		`^  synced by WatchList \(one WATCH with sendInitialEvents=true\): 1 objects, LastSyncResourceVersion \d+$`,
		`^  this run: WatchList .*\(WatchListClient feature gate: true\)$`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 3 configmaps, every resourceVersion the same$`,
	)
	if strings.Contains(got, "\nLIST") {
		t.Error("WatchList mode made a LIST")
	}

	// Every change the demo made arrived in the store, in order, with the
	// resourceVersion the server gave it.
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var added, modified, deleted int
	for _, e := range events {
		f := strings.Fields(e)
		switch f[0] {
		case "ADDED":
			added++
			match(t, got, `^  store ADDED   `+f[1]+` resourceVersion `+f[2]+`$`)
		case "MODIFIED":
			modified++
			match(t, got, `^  store UPDATED `+f[1]+` resourceVersion `+f[2]+`$`)
		case "DELETED":
			// The first delete is the demo's; the clean-up's two come
			// after the Reflector has stopped.
			if deleted++; deleted == 1 {
				match(t, got, `^  store DELETED `+f[1]+` resourceVersion `+f[2]+`$`)
			}
		}
	}
	if added != 3 || modified != 2 || deleted != 3 {
		t.Errorf("server events %v: want 3 ADDED, 2 MODIFIED, 3 DELETED", events)
	}
	match(t, got,
		`^  our writes got resourceVersions \[\d+ \d+ \d+ \d+\], increasing; LastSyncResourceVersion is now \d+$`,
		`^  update carrying stale resourceVersion \d+: Operation cannot be fulfilled on configmaps "demo-reflector-\w+": the object has been modified`,
	)
	m := regexp.MustCompile(`resourceVersions \[(\d+) (\d+) (\d+) (\d+)\]`).FindStringSubmatch(got)
	for i := 2; m != nil && i < len(m); i++ {
		if len(m[i]) < len(m[i-1]) || len(m[i]) == len(m[i-1]) && m[i] <= m[i-1] {
			t.Errorf("resourceVersions not increasing: %v", m[1:])
		}
	}
	assertNothingLeft(t, client(t), ns)
}

func TestReflectorListThenWatch(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-mode", "list"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	match(t, got,
		`^LIST resourceVersion="0" limit=500$`,
		`^  -> 1 items, list resourceVersion (\d+), continue token present: false$`,
		`^WATCH resourceVersion="\d+" allowWatchBookmarks=true timeoutSeconds=\d+$`,
		`^  synced by LIST then WATCH: 1 objects`,
		`\(WatchListClient feature gate: false\)$`,
		`^  curl -N 'http://127.0.0.1:8001/api/v1/namespaces/`+ns+`/configmaps\?limit=500&resourceVersion=0'$`,
		`^  curl -N 'http://127.0.0.1:8001/api/v1/namespaces/`+ns+`/configmaps\?allowWatchBookmarks=true&resourceVersion=\d+&timeoutSeconds=\d+&watch=true'$`,
		`^Check: the store equals a fresh LIST`,
	)
	// The WATCH starts at the LIST's resourceVersion: nothing in between is missed.
	listRV := regexp.MustCompile(`list resourceVersion (\d+)`).FindStringSubmatch(got)
	if listRV == nil || !strings.Contains(got, `WATCH resourceVersion="`+listRV[1]+`"`) {
		t.Errorf("the WATCH does not start at the LIST's resourceVersion %v", listRV)
	}
	if strings.Contains(got, "sendInitialEvents") {
		t.Error("list mode made a WatchList request")
	}
	assertNothingLeft(t, cs, ns)
}

func TestReflectorPods(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-resource", "pods"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	match(t, out.String(),
		`^Step 1: a ListWatch for pods in namespace `+ns,
		`^-> create a Pod$`,
		`^  store ADDED   demo-reflector-\w+ resourceVersion \d+$`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 2 pods`,
	)
	assertNothingLeft(t, cs, ns)
}

// Recovery: kube-apiserver restarts and etcd is compacted while the
// Reflector watches. It must re-watch or relist, print it, and end with the
// same content as the server, including a ConfigMap made while it was down.
// Restarting the shared API server would break the other packages' tests,
// which go test runs in parallel, so this test starts a control plane of
// its own from the same binary, on other ports.
func TestReflectorRecovery(t *testing.T) {
	lc := os.Getenv("LOCALCLUSTER")
	if lc == "" {
		t.Fatal("LOCALCLUSTER (the hack/localcluster binary) is not set: run the tests with `make test`")
	}
	dir := t.TempDir()
	localcluster := func(cmd string) {
		t.Helper()
		b, err := exec.Command(lc, "-dir", dir, "-apiserver-port", "36443", "-etcd-port", "36444", "-etcd-peer-port", "36445", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("localcluster %s: %v\n%s", cmd, err, b)
		}
	}
	localcluster("up")
	t.Cleanup(func() { localcluster("down") })
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(config)

	// -watch-only runs until its context is cancelled, like Ctrl-C; the
	// test cancels once the Reflector has caught up, however long the
	// restart took on a busy machine.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-kubeconfig", kubeconfig, "-mode", "list", "-watch-only"}, out)
	}()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(out.String(), "watching until Ctrl-C"), nil
	}); err != nil {
		t.Fatalf("the demo never started watching:\n%s", out.String())
	}
	localcluster("restart-apiserver")
	localcluster("compact")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "made-after-restart"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The ConfigMap reaches the store as an event, or in a relist that
	// started after it was created.
	created := len(out.String())
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		got := out.String()
		return strings.Contains(got, "store ADDED   made-after-restart") || strings.LastIndex(got, "store REPLACE") > created, nil
	}); err != nil {
		t.Errorf("made-after-restart never reached the store")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	match(t, got,
		`^  watch stream ended \(server timeout, restart or connection loss\); the Reflector will re-watch from resourceVersion \d+$`,
		`^WATCH \(re-watch from the last resourceVersion\) resourceVersion="\d+"`,
		`^  \d+ LIST and \d+ WATCH calls in this run: the watch broke and the Reflector re-watched or relisted`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 2 configmaps`,
	)
}

func TestReflectorScale(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-objects", "50"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	match(t, out.String(),
		`^created 50 ConfigMaps in namespace `+ns,
		`^PATH +ENCODING +OBJECTS +FIRST SYNC +PEAK HEAP +\(median of 3\)$`,
		`^LIST\+WATCH +json +51 +[\d.]+m?s +[\d.]+ MiB`,
		`^LIST\+WATCH +protobuf +51 `,
		`^WatchList +json +51 `,
		`^WatchList +protobuf +51 `,
		`^deleted the 50 ConfigMaps with one DeleteCollection`,
	)
	assertNothingLeft(t, cs, ns)
}

func TestReflectorErrors(t *testing.T) {
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
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns, "-mode", "list"}, `list configmaps: forbidden by RBAC: configmaps is forbidden: User "nobody" cannot list resource "configmaps" in API group "" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable, "-mode", "watchlist"}, "watch configmaps: Get \"https://127.0.0.1:1/api/v1/namespaces/default/configmaps?", false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create configmaps in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"bad resource", []string{"-resource", "secrets"}, `-resource "secrets": want configmaps or pods`, true},
		{"bad mode", []string{"-mode", "fast"}, `-mode "fast": want list or watchlist`, true},
		{"bad duration", []string{"-duration", "-1s"}, "must not be negative", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
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
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s to fail", d)
			}
		})
	}
	assertNothingLeft(t, cs, ns)
}

// Ctrl-C after the first change: the labelled objects are deleted anyway.
func TestReflectorInterruptedCleansUp(t *testing.T) {
	cs := client(t)
	ns := namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{cancelAt: "created demo-reflector-", cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out.String())
	}
	assertNothingLeft(t, cs, ns)
}

// lockedBuffer is written by the Reflector's goroutine and read by the test;
// it can cancel a context when a marker appears, like a Ctrl-C.
type lockedBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	cancelAt string
	cancel   context.CancelFunc
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.cancel != nil && strings.Contains(b.buf.String(), b.cancelAt) {
		b.cancel()
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ watch.Interface = (*stoppable)(nil)
