package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// measureLabel selects the ConfigMaps that -objects creates, and only them.
const measureLabel = partOf + ",app.kubernetes.io/name=informer-measure"

// restartAPIServer, when set, restarts kube-apiserver and returns the new
// process's pid. measure then restarts the server before each run of the
// informers that sync at once, and reads the server's peak memory from
// /proc. Only the benchmark in measure_test.go sets it, for the control
// plane it starts: a demo does not restart a user's API server.
var restartAPIServer func(ctx context.Context) (pid int, err error)

// measure creates n labelled ConfigMaps of 1 KiB of data each, then
// measures, three times each and printing the medians: the initial sync of
// one informer, typed against metadata-only, with the client's live heap;
// and k informers syncing at once, LIST+WATCH against WatchList, JSON
// against protobuf. It deletes the ConfigMaps at the end, Ctrl-C included.
func measure(ctx context.Context, config *rest.Config, ns string, n, k int, stdout io.Writer) (err error) {
	if k < 1 {
		return usagef("-informers %d: want at least 1", k)
	}
	setWatchListClient("") // before client-go's first use of its gates
	// client-go's token bucket allows rest.DefaultQPS requests a second
	// after a burst of rest.DefaultBurst (5 and 10, rest/config.go): n
	// creates would take (n-10)/5 seconds. Lift it for the creates only;
	// the informers measured below use the config as loaded.
	fast := rest.CopyConfig(config)
	fast.QPS, fast.Burst = 1000, 1000
	atDefaults := time.Duration(float64(max(n-rest.DefaultBurst, 0)) / float64(rest.DefaultQPS) * float64(time.Second))
	cs, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	cms := cs.CoreV1().ConfigMaps(ns)
	var created atomic.Int64 // fewer than n after Ctrl-C or an error
	defer func() {
		start := time.Now()
		if derr := deleteMeasured(ctx, cms); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete the ConfigMaps: %w", explain(derr)))
			return
		}
		fmt.Fprintf(stdout, "deleted the %d ConfigMaps with DeleteCollection (labelSelector %s) in %s\n", created.Load(), measureLabel, time.Since(start).Round(time.Millisecond))
	}()

	start := time.Now()
	if err := createConfigMaps(ctx, cms, n, &created); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %d ConfigMaps of 1 KiB in namespace %s in %s (16 workers, client-side rate limit raised to QPS %v, Burst %d; at client-go's defaults, QPS %v and Burst %d, they would take at least %s)\n",
		n, ns, time.Since(start).Round(time.Millisecond), fast.QPS, fast.Burst, rest.DefaultQPS, rest.DefaultBurst, atDefaults.Round(time.Second))

	if err := measureOne(ctx, config, ns, stdout); err != nil {
		return err
	}
	return measureAtOnce(ctx, config, ns, k, stdout)
}

// measureOne prints the initial sync of one informer: the typed one keeps
// whole ConfigMaps, the metadata-only one PartialObjectMetadata (name,
// labels, resourceVersion, managedFields...) and never receives the data.
// Each round runs every kind once, so that a burst of load from elsewhere
// on the machine spreads over the kinds instead of hitting one.
func measureOne(ctx context.Context, config *rest.Config, ns string, stdout io.Writer) error {
	how := "LIST then WATCH, as KUBE_FEATURE_WatchListClient=false asks"
	if clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient) {
		how = "WatchList, client-go's default"
	}
	fmt.Fprintf(stdout, "one informer's initial sync, median of 3 (%s):\n", how)
	kinds := []struct{ informer, encoding string }{{"typed", "json"}, {"typed", "protobuf"}, {"metadata-only", "protobuf"}}
	runs := make([][]oneSync, len(kinds))
	for range 3 {
		for i, kind := range kinds {
			s, err := syncOne(ctx, config, ns, kind.informer, kind.encoding)
			if err != nil {
				return fmt.Errorf("%s informer, %s: %w", kind.informer, kind.encoding, err)
			}
			runs[i] = append(runs[i], s)
		}
	}
	w := tabwriter.NewWriter(stdout, 6, 4, 2, ' ', 0)
	fmt.Fprintln(w, "INFORMER\tENCODING\tOBJECTS\tSYNCED IN\tLIVE HEAP AFTER SYNC")
	for i, kind := range kinds {
		r := runs[i]
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.1f MiB\n", kind.informer, kind.encoding, r[0].objects,
			medianOf(r, func(s oneSync) time.Duration { return s.took }).Round(time.Millisecond),
			mebibytes(medianOf(r, func(s oneSync) uint64 { return s.live })))
	}
	return w.Flush()
}

// measureAtOnce prints what k informers syncing at once cost, each with a
// connection of its own, as k programs would: LIST+WATCH against
// WatchList, JSON against protobuf, in rounds as measureOne does.
func measureAtOnce(ctx context.Context, config *rest.Config, ns string, k int, stdout io.Writer) error {
	defer setWatchListClient("")
	fmt.Fprintf(stdout, "%d informers syncing at once, each on its own connection, median of 3:\n", k)
	type variant struct{ path, encoding string }
	variants := []variant{{"list", "json"}, {"list", "protobuf"}, {"watchlist", "json"}, {"watchlist", "protobuf"}}
	runs := make([][]atOnceStats, len(variants))
	for range 3 {
		for i, v := range variants {
			s, err := syncAtOnce(ctx, config, ns, k, v.path, v.encoding)
			if err != nil {
				return fmt.Errorf("%d informers, %s, %s: %w", k, v.path, v.encoding, err)
			}
			runs[i] = append(runs[i], s)
		}
	}
	w := tabwriter.NewWriter(stdout, 6, 4, 2, ' ', 0)
	header := "PATH\tENCODING\tOBJECTS\tREQUESTS\tALL SYNCED IN"
	if restartAPIServer != nil {
		header += "\tAPISERVER RSS BEFORE\tPEAK RSS\tPEAK - BEFORE"
	}
	fmt.Fprintln(w, header)
	for i, v := range variants {
		r := runs[i]
		label := map[string]string{"list": "LIST+WATCH", "watchlist": "WatchList"}[v.path]
		fmt.Fprintf(w, "%s\t%s\t%dx%d\t%d LIST, %d WatchList\t%s", label, v.encoding, k, r[0].objects, r[0].lists, r[0].watchLists,
			medianOf(r, func(s atOnceStats) time.Duration { return s.took }).Round(time.Millisecond))
		if restartAPIServer != nil {
			fmt.Fprintf(w, "\t%.0f MiB\t%.0f MiB\t%.0f MiB",
				mebibytes(medianOf(r, func(s atOnceStats) uint64 { return s.rssBefore })),
				mebibytes(medianOf(r, func(s atOnceStats) uint64 { return s.peakRSS })),
				mebibytes(medianOf(r, func(s atOnceStats) uint64 { return s.peakRSS - min(s.rssBefore, s.peakRSS) })))
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if restartAPIServer == nil {
		fmt.Fprintln(stdout, "kube-apiserver's memory: not measured; the demo does not restart or inspect the server's process. The benchmark in measure_test.go measures it on a control plane of its own.")
	}
	return nil
}

// createConfigMaps creates n ConfigMaps of 1 KiB of data with 16 workers,
// and counts in created each one whose Create succeeded.
func createConfigMaps(ctx context.Context, cms interface {
	Create(context.Context, *corev1.ConfigMap, metav1.CreateOptions) (*corev1.ConfigMap, error)
}, n int, created *atomic.Int64) error {
	payload := strings.Repeat("x", 1024)
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{
						GenerateName: "demo-informer-",
						Labels:       map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": "informer-measure"},
					},
					Data: map[string]string{"payload": payload},
				}
				if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- fmt.Errorf("create ConfigMap %d: %w", i, explain(err)):
					default:
					}
					return
				}
				created.Add(1)
			}
		})
	}
	var err error
loop:
	for i := range n {
		select {
		case work <- i:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// deleteMeasured deletes the measured ConfigMaps with DeleteCollection,
// again while its calls end by a timeout: the server stops a request at
// its --request-timeout (one minute by default) and cleanupContext gives
// each call 30 seconds, while 100,000 deletes take minutes. Each call
// deletes what is left.
func deleteMeasured(ctx context.Context, cms interface {
	DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error
}) error {
	for attempt := 1; ; attempt++ {
		cctx, cancel := cleanupContext(ctx)
		err := cms.DeleteCollection(cctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: measureLabel})
		cancel()
		timedOut := errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err)
		if err == nil || !timedOut || attempt == 40 {
			return err
		}
	}
}

// oneSync is what one informer's initial sync cost the client.
type oneSync struct {
	objects int
	took    time.Duration
	live    uint64 // live heap after the sync and a full GC, above the live heap before
}

// syncOne starts one informer from a fresh factory and waits until it has
// synced. The heap figure is runtime.MemStats.HeapAlloc right after
// runtime.GC(): the heap still reachable, the informer's cache included
// (the informer is still running), without the garbage of the sync.
func syncOne(ctx context.Context, config *rest.Config, ns, informer, encoding string) (oneSync, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := measureConfig(config, encoding)
	var inf cache.SharedIndexInformer
	var start, shutdown func()
	switch informer {
	case "typed":
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return oneSync{}, fmt.Errorf("create clientset: %w", err)
		}
		factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = measureLabel }))
		inf = factory.Core().V1().ConfigMaps().Informer()
		start, shutdown = func() { factory.StartWithContext(ctx) }, factory.Shutdown
	case "metadata-only":
		mc, err := metadata.NewForConfig(cfg) // always protobuf, as PartialObjectMetadata
		if err != nil {
			return oneSync{}, fmt.Errorf("create metadata client: %w", err)
		}
		// One informer without a factory: run it with the context (and
		// its logger) directly.
		inf = metadatainformer.NewFilteredMetadataInformer(mc, corev1.SchemeGroupVersion.WithResource("configmaps"), ns, 0,
			cache.Indexers{}, func(o *metav1.ListOptions) { o.LabelSelector = measureLabel }).Informer()
		var wg sync.WaitGroup
		start, shutdown = func() { wg.Go(func() { inf.RunWithContext(ctx) }) }, wg.Wait
	}
	// Shutdown waits for the informers' goroutines: cancel first.
	defer shutdown()
	defer cancel()

	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapAlloc
	began := time.Now()
	start()
	if err := waitMeasureSynced(ctx, inf); err != nil {
		return oneSync{}, err
	}
	s := oneSync{took: time.Since(began)}
	runtime.GC()
	runtime.ReadMemStats(&m)
	if m.HeapAlloc > before {
		s.live = m.HeapAlloc - before
	}
	s.objects = len(inf.GetStore().ListKeys())
	return s, nil
}

// atOnceStats is what k informers syncing at once cost.
type atOnceStats struct {
	objects           int // in each informer's cache
	took              time.Duration
	lists, watchLists int64  // requests that filled the caches
	rssBefore         uint64 // kube-apiserver's resident memory before the sync, bytes
	peakRSS           uint64 // its peak resident memory during the sync, bytes
}

// syncAtOnce starts k informers, each from a factory and a connection of
// its own, and waits until all have synced. With restartAPIServer set it
// restarts kube-apiserver first, so that every run starts from a fresh
// process, and reads its memory from /proc/<pid>/status (proc(5)): VmRSS
// before, and VmHWM, the peak resident set, after. Writing "5" to
// /proc/<pid>/clear_refs resets that peak to the current RSS, so the peak
// is the sync's, not the restart's (the watch cache filling from etcd).
func syncAtOnce(ctx context.Context, config *rest.Config, ns string, k int, path, encoding string) (atOnceStats, error) {
	var s atOnceStats
	pid := 0
	if restartAPIServer != nil {
		var err error
		if pid, err = restartAPIServer(ctx); err != nil {
			return s, fmt.Errorf("restart kube-apiserver: %w", err)
		}
	}
	setWatchListClient(path) // NewReflector reads the gate, in the informer's Run

	ctx, cancel := context.WithCancel(ctx)
	var factories []informers.SharedInformerFactory
	defer func() {
		cancel() // Shutdown waits for the informers' goroutines
		for _, f := range factories {
			f.Shutdown()
		}
	}()
	var lists, watchLists atomic.Int64
	infs := make([]cache.SharedIndexInformer, k)
	for i := range infs {
		cfg := measureConfig(config, encoding)
		// client-go shares one connection among clientsets made from
		// equal configs (transport/cache.go, tlsConfigKey); a Dial
		// function of its own makes a transport and connection of its own.
		cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return measureTransport(func(req *http.Request) (*http.Response, error) {
				q := req.URL.Query()
				switch {
				case req.Method == http.MethodGet && q.Get("watch") == "":
					lists.Add(1)
				case q.Get("sendInitialEvents") == "true":
					watchLists.Add(1)
				}
				return rt.RoundTrip(req)
			})
		})
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return s, fmt.Errorf("create clientset: %w", err)
		}
		// The transform empties each ConfigMap the informer decoded before
		// it stores it, so that k full caches do not crowd the server out
		// of this machine's memory: the server still sends, and the client
		// still decodes, every object.
		factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = measureLabel }),
			informers.WithTransform(func(obj any) (any, error) {
				if cm, ok := obj.(*corev1.ConfigMap); ok {
					cm.Data, cm.ManagedFields = nil, nil
				}
				return obj, nil
			}))
		infs[i] = factory.Core().V1().ConfigMaps().Informer()
		factories = append(factories, factory)
	}

	if pid != 0 {
		var err error
		s.rssBefore, err = procStatus(pid, "VmRSS")
		if err == nil {
			err = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
		}
		if err != nil {
			return s, fmt.Errorf("read kube-apiserver's memory: %w", err)
		}
	}
	began := time.Now()
	for _, f := range factories {
		f.StartWithContext(ctx)
	}
	for _, inf := range infs {
		if err := waitMeasureSynced(ctx, inf); err != nil {
			return s, err
		}
	}
	s.took = time.Since(began)
	if pid != 0 {
		var err error
		if s.peakRSS, err = procStatus(pid, "VmHWM"); err != nil {
			return s, fmt.Errorf("read kube-apiserver's memory: %w", err)
		}
	}
	s.lists, s.watchLists = lists.Load(), watchLists.Load()
	for i, inf := range infs {
		if got := len(inf.GetStore().ListKeys()); i == 0 || got < s.objects {
			s.objects = got
		}
	}
	if (path == "list") != (s.lists > 0) || (path == "watchlist") != (s.watchLists > 0) {
		return s, fmt.Errorf("the informers did not take the %s path (%d LIST, %d WatchList requests)", path, s.lists, s.watchLists)
	}
	return s, nil
}

// waitMeasureSynced waits until inf has synced, for at most 10 minutes.
func waitMeasureSynced(ctx context.Context, inf cache.SharedIndexInformer) error {
	ctx, cancel := context.WithTimeoutCause(ctx, 10*time.Minute, errors.New("not synced within 10 minutes"))
	defer cancel()
	if !cache.WaitFor(ctx, "", inf.HasSyncedChecker()) {
		return fmt.Errorf("wait for the informer to sync: %w", context.Cause(ctx))
	}
	return nil
}

// measureConfig returns a copy of config that asks for JSON or protobuf.
func measureConfig(config *rest.Config, encoding string) *rest.Config {
	cfg := rest.CopyConfig(config)
	if encoding == "protobuf" {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	return cfg
}

// procStatus reads a field in kB from /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

type measureTransport func(*http.Request) (*http.Response, error)

func (f measureTransport) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// setWatchListClient makes the informers started from now on fill their
// cache by "list" (LIST then WATCH) or "watchlist" (one streaming WATCH),
// or, for "", as client-go's WatchListClient gate says (on by default
// since v0.35; KUBE_FEATURE_WatchListClient=false turns it off). A
// program that wants its own switch replaces client-go's gates, once.
func setWatchListClient(path string) {
	installMeasureGates.Do(func() {
		clientfeatures.ReplaceFeatureGates(measureGates{clientfeatures.FeatureGates()})
	})
	watchListOverride.Store(map[string]int32{"": 0, "watchlist": 1, "list": 2}[path])
}

var (
	watchListOverride   atomic.Int32 // 0: as the gate says, 1: on, 2: off
	installMeasureGates sync.Once
)

type measureGates struct{ clientfeatures.Gates }

func (g measureGates) Enabled(f clientfeatures.Feature) bool {
	if o := watchListOverride.Load(); f == clientfeatures.WatchListClient && o != 0 {
		return o == 1
	}
	return g.Gates.Enabled(f)
}

// medianOf returns the median of the runs' figure f.
func medianOf[S any, T time.Duration | uint64](runs []S, f func(S) T) T {
	xs := make([]T, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func mebibytes(b uint64) float64 { return float64(b) / (1 << 20) }
