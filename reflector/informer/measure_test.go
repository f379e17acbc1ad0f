package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"client-go-demo/internal/demotest"
)

// measure replaces client-go's feature gates; doing it before any client
// exists keeps client-go from warning that they were already in use.
func init() { setWatchListClient("") }

// quiet is a context whose logger drops client-go's log lines, as the demo
// does without -v (a stopped informer logs "Failed to watch ... canceled").
func quiet() context.Context { return klog.NewContext(context.Background(), logr.Discard()) }

// TestMeasure runs the -objects measurement with 50 ConfigMaps and 2
// informers. It asserts on the table's shape, on the request counts that
// prove each path was taken, and on the server: a watch of the test's own
// sees the 50 ConfigMaps of 1 KiB created and deleted, and nothing is left.
func TestMeasure(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer-measure")
	seen := watchMeasured(t, cs, ns)
	out := &demotest.Output{}
	if err := measure(quiet(), demotest.Config(t), ns, 50, 2, out); err != nil {
		t.Fatalf("measure: %v\n%s", err, out)
	}
	got := out.String()
	demotest.Match(t, got,
		`^created 50 ConfigMaps of 1 KiB in namespace `+ns+` in \S+ \(16 workers, client-side rate limit raised to QPS 1000, Burst 1000;`,
		`^one informer's initial sync, median of 3 \(WatchList, client-go's default\):$`,
		`^INFORMER +ENCODING +OBJECTS +SYNCED IN +LIVE HEAP AFTER SYNC$`,
		`^typed +json +50 +\S+ +\d+\.\d MiB$`,
		`^typed +protobuf +50 +\S+ +\d+\.\d MiB$`,
		`^metadata-only +protobuf +50 +\S+ +\d+\.\d MiB$`,
		`^2 informers syncing at once, each on its own connection, median of 3:$`,
		`^PATH +ENCODING +OBJECTS +REQUESTS +ALL SYNCED IN$`,
		`^LIST\+WATCH +json +2x50 +2 LIST, 0 WatchList +\S+$`,
		`^LIST\+WATCH +protobuf +2x50 +2 LIST, 0 WatchList +\S+$`,
		`^WatchList +json +2x50 +0 LIST, 2 WatchList +\S+$`,
		`^WatchList +protobuf +2x50 +0 LIST, 2 WatchList +\S+$`,
		`^kube-apiserver's memory: not measured;`,
		`^deleted the 50 ConfigMaps with DeleteCollection \(labelSelector `+regexp.QuoteMeta(measureLabel)+`\) in \S+$`,
	)
	demotest.NothingLeft(t, cs, ns)
	demotest.WaitFor(t, 30*time.Second, "the test's watch to see 50 deletions", func() bool { return seen.count(watch.Deleted) == 50 })
	if added, big := seen.count(watch.Added), seen.bigAdded(); added != 50 || big != 50 {
		t.Errorf("the server saw %d ConfigMaps created, %d of them with 1 KiB of data; want 50 and 50", added, big)
	}
}

// TestMeasureCtrlC cancels the measurement once the ConfigMaps exist, as
// Ctrl-C would during the first sync: they must all be deleted.
func TestMeasureCtrlC(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer-measure-cancel")
	seen := watchMeasured(t, cs, ns)
	ctx, cancel := context.WithCancel(quiet())
	defer cancel()
	out := &demotest.Output{Marker: "created 20 ConfigMaps", Cancel: cancel}
	err := measure(ctx, demotest.Config(t), ns, 20, 2, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("measure = %v, want context.Canceled\n%s", err, out)
	}
	demotest.Match(t, out.String(), `^deleted the 20 ConfigMaps with DeleteCollection`)
	demotest.NothingLeft(t, cs, ns)
	if added := seen.count(watch.Added); added != 20 {
		t.Errorf("the server saw %d ConfigMaps created, want 20", added)
	}
	demotest.NamespaceStillThere(t, cs, ns)
}

// TestMeasureCtrlCWhileCreating cancels the measurement while it creates
// 1000 ConfigMaps: it must delete those it created, and say how many.
func TestMeasureCtrlCWhileCreating(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer-measure-cancel")
	seen := watchMeasured(t, cs, ns)
	ctx, cancel := context.WithCancel(quiet())
	defer cancel()
	go func() {
		for seen.count(watch.Added) < 5 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	out := &demotest.Output{}
	err := measure(ctx, demotest.Config(t), ns, 1000, 2, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("measure = %v, want context.Canceled\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^deleted the (\d+) ConfigMaps with DeleteCollection`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no deleted line:\n%s", out)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.WaitFor(t, 30*time.Second, "the test's watch to see every ConfigMap deleted", func() bool {
		return seen.count(watch.Deleted) == seen.count(watch.Added)
	})
	// A create in flight at the cancel may have reached the server and
	// still returned an error to the demo: the server may count a few more.
	deleted, _ := strconv.Atoi(m[1])
	if added := seen.count(watch.Added); deleted > added || added >= 1000 {
		t.Errorf("the demo says it deleted %d ConfigMaps, the server saw %d created; want at most the server's count, and fewer than 1000", deleted, added)
	}
}

// measuredEvents is the server's own account of the measured ConfigMaps
// in a namespace: a watch of the test's, independent of the demo.
type measuredEvents struct {
	mu     sync.Mutex
	events []watch.Event
}

func watchMeasured(t *testing.T, cs kubernetes.Interface, ns string) *measuredEvents {
	t.Helper()
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: measureLabel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	e := &measuredEvents{}
	go func() {
		for ev := range w.ResultChan() {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		}
	}()
	return e
}

func (e *measuredEvents) count(typ watch.EventType) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// bigAdded counts the ConfigMaps created with a payload of 1 KiB.
func (e *measuredEvents) bigAdded() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type == watch.Added && len(cm.Data["payload"]) == 1024 {
			n++
		}
	}
	return n
}

// The benchmark below measures kube-apiserver's memory as well. It starts a
// control plane of its own (hack/localcluster, as `make test` builds it) on
// the ports below, restarts its kube-apiserver before each run of the
// informers that sync at once, and takes it down at the end:
//
//	go test -run '^$' -bench Measure -benchtime 1x -timeout 3h ./reflector/informer \
//	  -args -measure.objects 10000 -measure.informers 10
var (
	measureObjects   = flag.Int("measure.objects", 10000, "BenchmarkMeasure: ConfigMaps to create")
	measureInformers = flag.Int("measure.informers", 10, "BenchmarkMeasure: informers that sync at once")
	measurePort      = flag.Int("measure.port", 24543, "BenchmarkMeasure: kube-apiserver's port; etcd uses the next two")
)

func BenchmarkMeasure(b *testing.B) {
	if os.Getenv("KUBE_CACHE_MUTATION_DETECTOR") == "true" {
		// It keeps a deep copy of every object an informer added in the
		// last 2 to 4 minutes and compares them all every second
		// (tools/cache/mutation_detector.go): the client's heap and CPU
		// would be measured with it.
		b.Fatal("client-go's cache mutation detector is on (KUBE_CACHE_MUTATION_DETECTOR=true, as TestMain sets for the tests): the figures would include its copies; run the benchmark without it")
	}
	lc := demotest.PrivateCluster(b, *measurePort)
	// measure calls it from the benchmark's goroutine, so a failure may
	// end the benchmark there.
	restartAPIServer = func(ctx context.Context) (int, error) {
		lc.Run(b, "restart-apiserver")
		pid, err := os.ReadFile(filepath.Join(lc.Dir(), "kube-apiserver.pid"))
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(pid)))
	}
	b.Cleanup(func() { restartAPIServer = nil })
	config, err := clientcmd.BuildConfigFromFlags("", lc.Kubeconfig())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := measure(quiet(), config, "default", *measureObjects, *measureInformers, os.Stdout); err != nil {
			b.Fatal(err)
		}
	}
}
