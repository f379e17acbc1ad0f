// Command watch shows why a raw Watch is not enough, and what client-go
// offers instead: a raw watch ends when its timeoutSeconds run out and its
// channel just closes (Step 1); resuming it by hand works until the
// resourceVersion is too old, then only a fresh LIST helps (Step 2);
// watchtools.NewRetryWatcherWithContext resumes for you but stops on that
// 410 too (Step 3); watchtools.UntilWithSync waits for a condition without
// the races of list-then-watch (Step 4). wait.go holds Steps 3 and 4,
// events.go the event loops, objects.go the demo's writes and cleanup,
// cli.go main().
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2"
)

const demoName = "watch"

// selector picks the demo's own ConfigMaps: the label every demo object
// carries, and one that says which demo made it.
const selector = partOf + ",app.kubernetes.io/name=" + demoName

// rawWatch is Step 1: one WATCH, three changes, and the stream's end. It
// returns the resourceVersion of the last event, where a resume starts.
func rawWatch(ctx context.Context, out io.Writer, configMaps typedcorev1.ConfigMapInterface, objs *objects, timeout int64) (string, error) {
	// No resourceVersion: the server sends the current state first, as
	// ADDED events, then every change. TimeoutSeconds: the server ends the
	// stream after that long (without it, after a random 30 to 60 minutes).
	fmt.Fprintf(out, "WATCH resourceVersion=\"\" labelSelector=%s timeoutSeconds=%d\n", selector, timeout)
	start := time.Now()
	w, err := configMaps.Watch(ctx, metav1.ListOptions{LabelSelector: selector, TimeoutSeconds: &timeout})
	if err != nil {
		return "", fmt.Errorf("watch configmaps: %w", explain(err))
	}
	defer w.Stop()
	// Each write is followed by its event before the next write.
	cm, err := objs.createConfigMap(ctx, out)
	if err != nil {
		return "", err
	}
	if _, err := expect(ctx, out, w, watch.Added, cm.Name); err != nil {
		return "", err
	}
	if cm, err = objs.updateConfigMap(ctx, out, cm); err != nil {
		return "", err
	}
	if _, err := expect(ctx, out, w, watch.Modified, cm.Name); err != nil {
		return "", err
	}
	if err := objs.deleteConfigMap(ctx, out, cm.Name); err != nil {
		return "", err
	}
	// A resume starts from the resourceVersion of the last event seen.
	lastRV, err := expect(ctx, out, w, watch.Deleted, cm.Name)
	if err != nil {
		return "", err
	}
	// Then nothing: no ERROR event, no error value. The channel closes,
	// exactly as it does when the API server restarts or a connection drops.
	if err := untilClosed(ctx, out, w, time.Duration(timeout)*time.Second+30*time.Second); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "  ResultChan closed %s after the WATCH: no ERROR event, no error; a restart or a dropped connection looks the same\n", time.Since(start).Round(100*time.Millisecond))
	return lastRV, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs, kube := newFlagSet()
	timeout := fs.Duration("timeout", 2*time.Second, "timeoutSeconds of the watches in Steps 1 to 3: the server ends each stream after this long (whole seconds)")
	podWait := fs.Duration("wait", 2*time.Minute, "how long Step 4 waits for its Pod to be Running")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case *timeout < time.Second || *timeout%time.Second != 0:
		return usagef("-timeout %s: want whole seconds, at least 1s", *timeout)
	case *podWait <= 0:
		return usagef("-wait %s: want a positive duration", *podWait)
	}
	seconds := int64(*timeout / time.Second)
	config, ns, err := kube.load()
	if err != nil {
		return err
	}
	// client-go's watch helpers log through the context's logger
	// (klog.FromContext); with -v=1 or more they log to stderr, as a
	// controller would. The demo prints what happens on stdout.
	if !klog.V(1).Enabled() {
		ctx = klog.NewContext(ctx, logr.Discard())
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	configMaps := clientset.CoreV1().ConfigMaps(ns)
	objs := &objects{configMaps: configMaps, pods: clientset.CoreV1().Pods(ns)}
	// Cleanup runs on every way out, Ctrl-C included.
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		if derr := objs.cleanup(cctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", explain(derr)))
		}
	}()

	// Step 1: a raw watch delivers events as they happen, then ends.
	fmt.Fprintf(stdout, "Step 1: a raw Watch on the labelled ConfigMaps in namespace %s ends when its timeoutSeconds run out\n", ns)
	lastRV, err := rawWatch(ctx, stdout, configMaps, objs, seconds)
	if err != nil {
		return err
	}
	// Resume by hand: a second WATCH from the last resourceVersion seen
	// gets everything after it, here a change made while none was open.
	cm, err := objs.createConfigMap(ctx, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "   created %s resourceVersion %s while no watch was open\n", cm.Name, cm.ResourceVersion)
	fmt.Fprintf(stdout, "WATCH resourceVersion=%q timeoutSeconds=%d (by hand, from the last event's resourceVersion)\n", lastRV, seconds)
	w, err := configMaps.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: lastRV, TimeoutSeconds: &seconds})
	if err != nil {
		return fmt.Errorf("watch configmaps from resourceVersion %s: %w", lastRV, explain(err))
	}
	_, err = expect(ctx, stdout, w, watch.Added, cm.Name)
	w.Stop()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "  the change made between the two watches arrived")

	// Step 2: a resume from a resourceVersion the server no longer holds.
	fmt.Fprintln(stdout, "Step 2: a hand-written resume from a resourceVersion the server no longer holds gets 410 Gone")
	listRV, expired, err := tooOld(ctx, stdout, configMaps, seconds)
	if err != nil {
		return err
	}

	// Step 3: RetryWatcher, the resume loop of Step 1 done for you.
	fmt.Fprintln(stdout, "Step 3: watchtools.NewRetryWatcherWithContext resumes after a stream ends, and stops on 410")
	if err := retryWatch(ctx, stdout, configMaps, objs, cm, listRV, expired, seconds); err != nil { // wait.go
		return err
	}

	// Step 4: UntilWithSync, to wait for a state.
	fmt.Fprintln(stdout, "Step 4: watchtools.UntilWithSync waits for a Pod to be Running, without list-then-watch races")
	return untilRunning(ctx, stdout, objs, *podWait) // wait.go
}

// tooOld is Step 2. A watch from resourceVersion "1" stands for a resume
// after a long outage: the server answers 410 Gone, as an ERROR event
// inside a 200 response (k8s.io/apiserver@v0.37.2 pkg/storage/cacher,
// Cacher.Watch and watchCacheHistory.GetIntervalLocked). A LIST is the
// only way on; it returns the resourceVersion to watch from, and whether
// the 410 came.
func tooOld(ctx context.Context, out io.Writer, configMaps typedcorev1.ConfigMapInterface, timeout int64) (listRV string, expired bool, err error) {
	fmt.Fprintf(out, "WATCH resourceVersion=\"1\" timeoutSeconds=%d (\"1\" stands for a resourceVersion from before an outage or an API server restart)\n", timeout)
	w, err := configMaps.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: "1", TimeoutSeconds: &timeout})
	if err != nil {
		return "", false, fmt.Errorf("watch configmaps from resourceVersion 1: %w", explain(err))
	}
	ev, err := next(ctx, w, time.Duration(timeout)*time.Second+30*time.Second)
	w.Stop()
	switch {
	case err != nil:
		return "", false, err
	case ev == nil:
		fmt.Fprintln(out, "  the stream ended without an event: this server still holds resourceVersion 1 (a very young cluster)")
	case ev.Type != watch.Error:
		printEvent(out, *ev)
		fmt.Fprintln(out, "  no 410: this server still holds resourceVersion 1 (a very young cluster)")
	default:
		printEvent(out, *ev)
		if expired = apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)); expired {
			fmt.Fprintln(out, "  410 Gone: the server keeps no history that old; no resume can work, only a fresh LIST")
		}
	}
	// resourceVersion "" (the default): the current state, from etcd's
	// current revision, served by the watch cache once it has caught up.
	list, err := configMaps.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "", false, fmt.Errorf("list configmaps: %w", explain(err))
	}
	names := make([]string, 0, len(list.Items))
	for _, cm := range list.Items {
		names = append(names, cm.Name)
	}
	fmt.Fprintf(out, "LIST resourceVersion=\"\": %d labelled ConfigMaps %v at resourceVersion %s\n", len(names), names, list.ResourceVersion)
	fmt.Fprintln(out, "  start over from this list: whatever you held and it lacks was deleted meanwhile (no DELETED event will come); watch from its resourceVersion")
	return list.ResourceVersion, expired, nil
}
