package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// measure creates n labelled ConfigMaps, then fills a fresh Reflector's
// store, LIST+WATCH versus WatchList, each in JSON and in protobuf, three
// times each, and reports the medians of the time to the first full sync,
// of the heap the sync allocated, and of the live heap the filled store
// keeps. It deletes the ConfigMaps with one DeleteCollection at the end.
func measure(ctx context.Context, config *rest.Config, ns string, n int, stdout io.Writer) (err error) {
	// client-go's token bucket allows rest.DefaultQPS requests a second
	// after a burst of rest.DefaultBurst (5 and 10, rest/config.go): n
	// creates would take (n-10)/5 seconds. Lift it for the creates only;
	// the Reflectors measured below use the config as loaded.
	fast := rest.CopyConfig(config)
	fast.QPS, fast.Burst = 1000, 1000
	atDefaults := time.Duration(float64(max(n-rest.DefaultBurst, 0)) / float64(rest.DefaultQPS) * float64(time.Second))
	cs, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	cms := cs.CoreV1().ConfigMaps(ns)
	scaleLabel := partOf + ",app.kubernetes.io/name=reflector-scale"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		start := time.Now()
		derr := cms.DeleteCollection(cctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: scaleLabel})
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("delete the ConfigMaps: %w", explain(derr)))
			return
		}
		fmt.Fprintf(stdout, "deleted the %d ConfigMaps with one DeleteCollection (labelSelector %s) in %s\n", n, scaleLabel, time.Since(start).Round(time.Millisecond))
	}()

	start := time.Now()
	if err := createMany(ctx, cms, n); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %d ConfigMaps in namespace %s in %s (16 workers, client-side rate limit raised to QPS %v, Burst %d; at client-go's defaults, QPS %v and Burst %d, they would take at least %s)\n",
		n, ns, time.Since(start).Round(time.Millisecond), fast.QPS, fast.Burst, rest.DefaultQPS, rest.DefaultBurst, atDefaults.Round(time.Second))

	w := tabwriter.NewWriter(stdout, 6, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PATH\tENCODING\tOBJECTS\tFIRST SYNC\tALLOCATED\tLIVE HEAP AFTER\t(median of 3)")
	for _, path := range []string{"list", "watchlist"} {
		for _, encoding := range []string{"json", "protobuf"} {
			var objects int
			var tooks []time.Duration
			var allocs, lives []uint64
			for range 3 {
				s, err := firstSync(ctx, config, ns, path, encoding)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", path, encoding, err)
				}
				objects, tooks, allocs, lives = s.objects, append(tooks, s.took), append(allocs, s.allocated), append(lives, s.live)
			}
			slices.Sort(tooks)
			slices.Sort(allocs)
			slices.Sort(lives)
			label := map[string]string{"list": "LIST+WATCH", "watchlist": "WatchList"}[path]
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.1f MiB\t%.1f MiB\t\n", label, encoding, objects, tooks[1].Round(time.Millisecond), mib(allocs[1]), mib(lives[1]))
		}
	}
	return w.Flush()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func createMany(ctx context.Context, cms interface {
	Create(context.Context, *corev1.ConfigMap, metav1.CreateOptions) (*corev1.ConfigMap, error)
}, n int) error {
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{
						GenerateName: "demo-reflector-scale-",
						Labels:       map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": "reflector-scale"},
					},
					Data: map[string]string{"index": strconv.Itoa(i), "payload": "a small ConfigMap, like most in a real cluster"},
				}
				if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- fmt.Errorf("create ConfigMap %d: %w", i, explain(err)):
					default:
					}
					return
				}
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

// syncStats is what one first sync cost.
type syncStats struct {
	objects   int
	took      time.Duration
	allocated uint64 // bytes allocated on the heap during the sync, garbage included
	live      uint64 // live heap after the sync and a full GC, above the live heap before
}

// firstSync runs one Reflector until its store is filled. Heap figures come
// from runtime/metrics: /gc/heap/allocs:bytes counts every allocation, and
// /gc/heap/live:bytes, read right after runtime.GC(), is the heap still
// reachable, without the garbage the sync left behind.
func firstSync(ctx context.Context, config *rest.Config, ns, path, encoding string) (syncStats, error) {
	cfg := rest.CopyConfig(config)
	if encoding == "protobuf" {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return syncStats{}, err
	}
	setWatchListMode(path)
	// The same ListerWatcher and store as the demo, printing nowhere.
	store := newVisibleStore(io.Discard, ns)
	lw := newVisibleListWatch(io.Discard, cs, newObjects(cs, "configmaps", ns), ns, store)
	r := cache.NewReflector(lw.listerWatcher(), &corev1.ConfigMap{}, store, 0)
	lw.lastRV = r.LastSyncResourceVersion

	heap := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	runtime.GC()
	metrics.Read(heap)
	allocsBefore, liveBefore := heap[0].Value.Uint64(), heap[1].Value.Uint64()

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); r.RunWithContext(rctx) }()
	var s syncStats
	select {
	case <-store.replaced:
		s.took = time.Since(start)
	case err = <-lw.errs:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(5 * time.Minute):
		err = errors.New("no sync within 5 minutes")
	}
	metrics.Read(heap)
	s.allocated = heap[0].Value.Uint64() - allocsBefore
	cancel()
	<-done
	runtime.GC()
	metrics.Read(heap)
	if live := heap[1].Value.Uint64(); live > liveBefore {
		s.live = live - liveBefore
	}
	s.objects = len(store.List()) // also keeps the store reachable until the GC above
	if err == nil && (path == "list") != (lw.listCount() > 0) {
		err = fmt.Errorf("the Reflector did not take the %s path (%d lists)", path, lw.listCount())
	}
	return s, err
}
