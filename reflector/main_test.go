package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"client-go-demo/internal/demotest"
)

// The demo replaces client-go's feature gates before its first client;
// the tests make clients before they run it, so they do it first.
func TestMain(m *testing.M) {
	setWatchListMode("")
	os.Exit(m.Run())
}

// serverEvents records the server's own account of the labelled
// ConfigMaps in ns: a watch of the test's, independent of the demo.
type serverEvents struct {
	mu     sync.Mutex
	events []watch.Event
}

func watchServer(t *testing.T, cs kubernetes.Interface, ns string) *serverEvents {
	t.Helper()
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: demotest.PartOf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	s := &serverEvents{}
	go func() {
		for ev := range w.ResultChan() {
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
	}()
	return s
}

// count returns how many events of each type arrived so far.
func (s *serverEvents) count() map[watch.EventType]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[watch.EventType]int{}
	for _, ev := range s.events {
		n[ev.Type]++
	}
	return n
}

func (s *serverEvents) list() []watch.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]watch.Event(nil), s.events...)
}

func TestReflectorWatchList(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-reflector")
	server := watchServer(t, cs, ns)

	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-mode", "watchlist"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	demotest.Match(t, got,
		`^Step 1: a plain Reflector fills a cache.Store with the ConfigMaps in namespace `+ns+`$`,
		`^  synced: 1 objects \[kube-root-ca.crt\], LastSyncResourceVersion \d+$`,
		`^Step 2: the same Reflector for configmaps, over a ListerWatcher and a store that print every call and change$`,
		`^WATCH \(WatchList: the initial state streamed as events\) resourceVersion="" resourceVersionMatch=NotOlderThan sendInitialEvents=true allowWatchBookmarks=true timeoutSeconds=\d+$`,
		`^  curl 'http://127.0.0.1:8001/api/v1/namespaces/`+ns+`/configmaps\?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=\d+&watch=true'$`,
		`^  BOOKMARK resourceVersion \d+, annotated k8s.io/initial-events-end: the initial state is complete$`,
		`^  store REPLACE: 1 objects at resourceVersion \d+$`, // kube-root-ca.crt
		`^  synced by WatchList \(one WATCH with sendInitialEvents=true\): 1 objects, LastSyncResourceVersion \d+$`,
		`^  our writes got resourceVersions \[\d+ \d+ \d+ \d+\]: increasing, by resourceversion.CompareResourceVersion; LastSyncResourceVersion is now \d+$`,
		`^  update carrying stale resourceVersion \d+: Operation cannot be fulfilled on configmaps "demo-reflector-\w+": the object has been modified`,
		`^  this run: WatchList .*\(WatchListClient feature gate: true\)$`,
		`^  0 LIST and 1 WATCH calls in this run: no watch ended`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 3 configmaps, every resourceVersion the same$`,
	)
	if strings.Contains(got, "\nLIST") {
		t.Error("WatchList mode made a LIST")
	}

	// The server saw 3 creates, 2 updates, and 3 deletes (one by the demo,
	// two by its cleanup). Wait for all of them before comparing.
	want := map[watch.EventType]int{watch.Added: 3, watch.Modified: 2, watch.Deleted: 3}
	demotest.WaitFor(t, 30*time.Second, "the server's events of the demo's writes", func() bool {
		n := server.count()
		return n[watch.Added] >= 3 && n[watch.Modified] >= 2 && n[watch.Deleted] >= 3
	})
	if n := server.count(); n[watch.Added] != want[watch.Added] || n[watch.Modified] != want[watch.Modified] || n[watch.Deleted] != want[watch.Deleted] {
		t.Errorf("server events %v, want %v", n, want)
	}
	// Every change the demo made reached its store with the resourceVersion
	// the server gave it; the first delete is the demo's, the other two
	// come from the cleanup after the Reflector stopped.
	var writeRVs []string
	deleted := 0
	for _, ev := range server.list() {
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if !ok {
			t.Fatalf("server event %s carries a %T", ev.Type, ev.Object)
		}
		switch ev.Type {
		case watch.Added:
			demotest.Match(t, got, `^  store ADDED   `+cm.Name+` resourceVersion `+cm.ResourceVersion+`$`)
			writeRVs = append(writeRVs, cm.ResourceVersion)
		case watch.Modified:
			demotest.Match(t, got, `^  store UPDATED `+cm.Name+` resourceVersion `+cm.ResourceVersion+`$`)
			writeRVs = append(writeRVs, cm.ResourceVersion)
		case watch.Deleted:
			if deleted++; deleted == 1 {
				demotest.Match(t, got, `^  store DELETED `+cm.Name+` resourceVersion `+cm.ResourceVersion+`$`)
			}
		}
	}
	// The README says the resourceVersions of one resource may be
	// compared with resourceversion.CompareResourceVersion and that the
	// server's increase in the order of the writes: check both, on the
	// server's own events.
	for i := 1; i < len(writeRVs); i++ {
		if c, err := resourceversion.CompareResourceVersion(writeRVs[i-1], writeRVs[i]); err != nil || c >= 0 {
			t.Errorf("server resourceVersions %v: %s then %s compare %d, %v; want increasing", writeRVs, writeRVs[i-1], writeRVs[i], c, err)
		}
	}
	// The demo printed the same four, in the same order (the second update
	// is Step 4's, not in the list).
	if m := regexp.MustCompile(`resourceVersions \[(\d+ \d+ \d+ \d+)\]`).FindStringSubmatch(got); m == nil || len(writeRVs) < 4 || m[1] != strings.Join(writeRVs[:4], " ") {
		t.Errorf("the demo printed resourceVersions %v, the server's events say %v", m, writeRVs)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

func TestReflectorListThenWatch(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-reflector")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-mode", "list"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	demotest.Match(t, got,
		`^LIST resourceVersion="0" limit=500$`,
		`^  -> 1 items, list resourceVersion (\d+), continue token present: false$`,
		`^WATCH resourceVersion="\d+" allowWatchBookmarks=true timeoutSeconds=\d+$`,
		`^  synced by LIST then WATCH: 1 objects`,
		`\(WatchListClient feature gate: false\)$`,
		`^  1 LIST and 1 WATCH calls in this run: no watch ended`,
		`^  curl -N 'http://127.0.0.1:8001/api/v1/namespaces/`+ns+`/configmaps\?limit=500&resourceVersion=0'$`,
		`^  curl -N 'http://127.0.0.1:8001/api/v1/namespaces/`+ns+`/configmaps\?allowWatchBookmarks=true&resourceVersion=\d+&timeoutSeconds=\d+&watch=true'$`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 3 configmaps`,
	)
	// The WATCH starts at the LIST's resourceVersion: nothing in between is missed.
	listRV := regexp.MustCompile(`list resourceVersion (\d+)`).FindStringSubmatch(got)
	if listRV == nil || !strings.Contains(got, `WATCH resourceVersion="`+listRV[1]+`"`) {
		t.Errorf("the WATCH does not start at the LIST's resourceVersion %v", listRV)
	}
	if strings.Contains(got, "sendInitialEvents") {
		t.Error("list mode made a WatchList request")
	}
	demotest.NothingLeft(t, cs, ns)
}

func TestReflectorPods(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-reflector")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-resource", "pods"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	demotest.Match(t, out.String(),
		`^Step 2: the same Reflector for pods, over`,
		`^-> create a Pod$`,
		`^  store ADDED   demo-reflector-\w+ resourceVersion \d+$`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 2 pods`,
	)
	demotest.NothingLeft(t, cs, ns)
}

// Recovery: kube-apiserver restarts and etcd is compacted while the
// Reflector watches. It must watch or list again, print it, and end with
// the same content as the server, including a ConfigMap made meanwhile.
// Restarting the shared API server would break the other packages' tests,
// so this test starts a control plane of its own from the same binary, on
// other ports, and takes it down after.
func TestReflectorRecovery(t *testing.T) {
	lc := demotest.PrivateCluster(t, 22443)
	kubeconfig := lc.Kubeconfig()
	cs := lc.Client(t)

	// -watch-only runs until its context is cancelled, like Ctrl-C; the
	// test cancels once the Reflector has caught up, however long the
	// restart took on a busy machine.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-kubeconfig", kubeconfig, "-mode", "list", "-watch-only"}, out)
	}()
	demotest.WaitFor(t, 30*time.Second, "the demo to start watching", func() bool {
		return strings.Contains(out.String(), "watching until Ctrl-C")
	})
	lc.Run(t, "restart-apiserver")
	lc.Run(t, "compact")
	cm, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "made-after-restart"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The ConfigMap reaches the store as an event, or in a relist that
	// started after it was created.
	created := len(out.String())
	demotest.WaitFor(t, 2*time.Minute, "made-after-restart in the store", func() bool {
		got := out.String()
		return strings.Contains(got, "store ADDED   made-after-restart resourceVersion "+cm.ResourceVersion) ||
			strings.LastIndex(got, "store REPLACE") > created
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Logf("the output was:\n%s", got)
	demotest.Match(t, got,
		`^  watch stream ended \(its timeout, a server restart or a lost connection\): the Reflector watches again at once from resourceVersion \d+$`,
		`^WATCH \(re-watch from the last resourceVersion\) resourceVersion="\d+"`,
		`^  \d+ LIST and \d+ WATCH calls in this run: a watch ended and the Reflector watched or listed again`,
		`^Check: the store equals a fresh LIST \(resourceVersion \d+\): 2 configmaps`,
	)
	// After a 410 during a watch the Reflector lists again at its last
	// resourceVersion (reflector.go, relistResourceVersion), never at "":
	// that LIST succeeds, as the server answers it from its watch cache.
	// The restart moved etcd's revision on (leases are renewed every few
	// seconds), so the new watch cache starts after the Reflector's
	// resourceVersion: a 410 and a relist must have happened.
	relists := regexp.MustCompile(`(?m)^  ERROR event: .*lists again at its last resourceVersion, (\d+)\)\n(.*\n)*?LIST .*resourceVersion="(\d*)"`).FindAllStringSubmatch(got, -1)
	if len(relists) == 0 {
		t.Error("no 410 ERROR event followed by a LIST")
	}
	for _, m := range relists {
		if m[3] != m[1] {
			t.Errorf("after the 410 the Reflector listed at resourceVersion %q, want its last, %s", m[3], m[1])
		}
	}
	if strings.Contains(got, `LIST (relist: the Reflector starts over) resourceVersion=""`) {
		t.Error(`a relist used resourceVersion="", which the Reflector does only after a LIST failed with 410`)
	}
	// On the server: the two ConfigMaps the Check line counted.
	list, err := cs.CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Errorf("the server has %v ConfigMaps in default (%v), want kube-root-ca.crt and made-after-restart", list, err)
	}
}

func TestReflectorScale(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-reflector")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-objects", "50"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	demotest.Match(t, out.String(),
		`^created 50 ConfigMaps in namespace `+ns+` in [\d.]+m?s \(16 workers, client-side rate limit raised to QPS 1000, Burst 1000; at client-go's defaults, QPS 5 and Burst 10, they would take at least 8s\)$`,
		`^PATH +ENCODING +OBJECTS +FIRST SYNC +ALLOCATED +LIVE HEAP AFTER +\(median of 3\)$`,
		`^LIST\+WATCH +json +51 +[\d.]+m?s +[\d.]+ MiB +[\d.]+ MiB`,
		`^LIST\+WATCH +protobuf +51 `,
		`^WatchList +json +51 `,
		`^WatchList +protobuf +51 `,
		`^deleted the 50 ConfigMaps with one DeleteCollection`,
	)
	demotest.NothingLeft(t, cs, ns)
}

func TestReflectorErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-reflector")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns, "-mode", "list"}, `list configmaps: forbidden by RBAC: configmaps is forbidden: User "nobody" cannot list resource "configmaps" in API group "" in the namespace "` + ns + `"`, false},
		{"forbidden watchlist", []string{"-kubeconfig", nobody, "-n", ns, "-mode", "watchlist"}, `watch configmaps: forbidden by RBAC: configmaps is forbidden: User "nobody" cannot watch resource "configmaps"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable, "-mode", "watchlist"}, "watch configmaps: Get \"https://127.0.0.1:1/api/v1/namespaces/default/configmaps?", false},
		{"unreachable list", []string{"-kubeconfig", unreachable, "-mode", "list"}, "list configmaps: Get \"https://127.0.0.1:1/api/v1/namespaces/default/configmaps?", false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create configmaps in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"bad resource", []string{"-resource", "secrets"}, `-resource "secrets": want configmaps or pods`, true},
		{"bad mode", []string{"-mode", "fast"}, `-mode "fast": want list or watchlist`, true},
		{"bad duration", []string{"-duration", "-1s"}, "must not be negative", true},
		{"extra argument", []string{"configmaps"}, `unexpected arguments ["configmaps"]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{})
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
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// Ctrl-C after the first change: the labelled objects are deleted anyway.
func TestReflectorInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-reflector")
	server := watchServer(t, cs, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{Marker: "created demo-reflector-", Cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out.String())
	}
	// It did create something before the cancel, and deleted it again.
	demotest.WaitFor(t, 30*time.Second, "the server's DELETED event", func() bool {
		n := server.count()
		return n[watch.Added] > 0 && n[watch.Deleted] == n[watch.Added]
	})
	demotest.NothingLeft(t, cs, ns)
}

// A change that reaches the store in a relist, not as an event, counts as
// delivered: waitForStore must not time out on it.
func TestVisibleStoreReplaceRecords(t *testing.T) {
	s := newVisibleStore(&bytes.Buffer{}, "default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default", ResourceVersion: "7"}}
	if err := s.Replace([]any{cm}, "9"); err != nil {
		t.Fatal(err)
	}
	if !s.saw("a", "7") || s.saw("a", "8") {
		t.Errorf("saw(a@7) = %v, saw(a@8) = %v; want true, false", s.saw("a", "7"), s.saw("a", "8"))
	}
	if !s.synced() {
		t.Error("not synced after Replace")
	}
}

// Only well-formed resourceVersions of one resource are compared; others
// stay opaque.
func TestOrdered(t *testing.T) {
	for _, tc := range []struct {
		rvs  []string
		want string
	}{
		{[]string{"9", "10", "11"}, "increasing, by resourceversion.CompareResourceVersion"},
		{[]string{"10", "9"}, "NOT increasing: 10 then 9"},
		{[]string{"10", "0"}, "not comparable (resource version is not well formed: 0)"},
		{[]string{"a1", "a2"}, "not comparable (resource version is not well formed: a1)"},
	} {
		if got := ordered(tc.rvs); got != tc.want {
			t.Errorf("ordered(%v) = %q, want %q", tc.rvs, got, tc.want)
		}
	}
}

// next follows tools/cache/reflector.go (v0.37.2): which call failed,
// whether a WatchList was still streaming its initial state, and the error
// decide between starting over at once, after a back-off, or watching again.
func TestNext(t *testing.T) {
	expired := apierrors.NewResourceExpired("too old resource version: 7 (9)")
	tooLarge := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 504, Reason: metav1.StatusReasonTimeout,
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge}}}}}
	refused := &url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: syscall.ECONNREFUSED}
	tooMany := apierrors.NewTooManyRequests("slow down", 1)
	other := apierrors.NewInternalError(errors.New("boom"))
	const (
		listAtOnce   = `that resourceVersion is unavailable: the Reflector lists again at once, with resourceVersion=""`
		startOver    = "the Reflector starts over after its back-off"
		backOff      = "connection refused or 429: the Reflector backs off, then watches again from its last resourceVersion"
		watchListNow = `that resourceVersion is unavailable: the Reflector starts the WatchList again at once, with resourceVersion=""`
		fallBack     = "the Reflector falls back to LIST at once"
		relist       = "after its back-off the Reflector lists again at its last resourceVersion, 42"
		rewatchList  = "after its back-off the Reflector starts over with a WatchList from its last resourceVersion, 42"
	)
	for _, tc := range []struct {
		list, initialEvents, watchListMode bool
		err                                error
		want                               string
	}{
		{list: true, err: expired, want: listAtOnce},
		{list: true, err: tooLarge, want: listAtOnce},
		{list: true, err: other, want: startOver},
		{err: refused, want: backOff},
		{err: tooMany, want: backOff},
		{initialEvents: true, watchListMode: true, err: tooMany, want: backOff},
		{initialEvents: true, watchListMode: true, err: expired, want: watchListNow},
		{initialEvents: true, watchListMode: true, err: other, want: fallBack},
		{err: expired, want: relist},
		{err: other, want: relist},
		{watchListMode: true, err: expired, want: rewatchList},
	} {
		v := &visibleListWatch{lastRV: func() string { return "42" }}
		v.watchList.Store(tc.watchListMode)
		if got := v.next(tc.list, tc.initialEvents, tc.err); got != tc.want {
			t.Errorf("next(list=%v, initialEvents=%v, %v) with watchList=%v = %q, want %q", tc.list, tc.initialEvents, tc.err, tc.watchListMode, got, tc.want)
		}
	}
}
