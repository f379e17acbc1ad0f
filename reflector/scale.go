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

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// measure creates n labelled ConfigMaps, then fills a fresh Reflector's
// store, LIST+WATCH versus WatchList, each in JSON and in protobuf, three
// times each, and reports the median time to the first full sync and the
// median peak heap. It deletes the ConfigMaps with one DeleteCollection at
// the end.
func measure(ctx context.Context, config *rest.Config, ns string, n int, stdout io.Writer) (err error) {
	// Creating thousands of objects: lift the client-side rate limit.
	fast := rest.CopyConfig(config)
	fast.QPS, fast.Burst = 1000, 1000
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
	fmt.Fprintf(stdout, "created %d ConfigMaps in namespace %s in %s\n", n, ns, time.Since(start).Round(time.Millisecond))

	w := tabwriter.NewWriter(stdout, 6, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PATH\tENCODING\tOBJECTS\tFIRST SYNC\tPEAK HEAP\t(median of 3)")
	for _, path := range []string{"list", "watchlist"} {
		for _, encoding := range []string{"json", "protobuf"} {
			var objects int
			var tooks []time.Duration
			var peaks []uint64
			for range 3 {
				n, took, peak, err := firstSync(ctx, config, ns, path, encoding)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", path, encoding, err)
				}
				objects, tooks, peaks = n, append(tooks, took), append(peaks, peak)
			}
			slices.Sort(tooks)
			slices.Sort(peaks)
			label := map[string]string{"list": "LIST+WATCH", "watchlist": "WatchList"}[path]
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.1f MiB\t\n", label, encoding, objects, tooks[1].Round(time.Millisecond), float64(peaks[1])/(1<<20))
		}
	}
	return w.Flush()
}

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
						Labels:       map[string]string{"app.kubernetes.io/part-of": "client-go-demo", "app.kubernetes.io/name": "reflector-scale"},
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

// firstSync runs one Reflector until its store is filled and reports how
// long it took and the most live heap seen meanwhile, above what was live
// before it started.
func firstSync(ctx context.Context, config *rest.Config, ns, path, encoding string) (int, time.Duration, uint64, error) {
	cfg := rest.CopyConfig(config)
	if encoding == "protobuf" {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	watchListMode.Store(map[string]int32{"watchlist": 1, "list": 2}[path])
	// The same ListerWatcher and store as the demo, printing nowhere.
	store := newVisibleStore(io.Discard, ns)
	lw := newVisibleListWatch(io.Discard, cs, newObjects(cs, "configmaps", ns), ns, store)
	r := cache.NewReflector(lw.listerWatcher(), &corev1.ConfigMap{}, store, 0)
	lw.lastRV = r.LastSyncResourceVersion

	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[1].Value.Uint64()
	var peak uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[1].Value.Uint64(); v > base && v-base > peak {
				peak = v - base
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()

	rctx, cancel := context.WithCancel(ctx)
	klog.EnableContextualLogging(true) // quiet, as in run
	rctx = klog.NewContext(rctx, logr.Discard())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); r.RunWithContext(rctx) }()
	var took time.Duration
	select {
	case <-store.replaced:
		took = time.Since(start)
	case err = <-lw.errs:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(5 * time.Minute):
		err = errors.New("no sync within 5 minutes")
	}
	close(stopSampling)
	<-sampled
	cancel()
	<-done
	if err == nil && (path == "list") != (lw.listCount() > 0) {
		err = fmt.Errorf("the Reflector did not take the %s path (%d lists)", path, lw.listCount())
	}
	return len(store.List()), took, peak, err
}
