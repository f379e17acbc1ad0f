package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
)

// retryWatch is Step 3. A RetryWatcher (client-go tools/watch/retrywatcher.go)
// is a watch.Interface whose channel stays open across the ends of the
// streams under it: it watches again from the last resourceVersion it saw,
// an event's or a BOOKMARK's (it asks for bookmarks and keeps them to
// itself). It refuses to start at "" or "0", and stops at a 410.
//
// expired says whether Step 2's watch from resourceVersion "1" got its 410:
// on a very young cluster that still holds "1", a RetryWatcher from there
// would just watch, so the demo skips that part.
func retryWatch(ctx context.Context, out io.Writer, configMaps typedcorev1.ConfigMapInterface, objs *objects, cm *corev1.ConfigMap, listRV string, expired bool, timeout int64) error {
	// The RetryWatcher calls WatchWithContext with only ResourceVersion
	// and AllowWatchBookmarks set; the ListWatch adds the rest: the
	// selector, and a short timeoutSeconds only so that a stream ends
	// while you watch (a program leaves it out). calls tells the demo
	// which resourceVersion each WATCH starts from.
	calls := make(chan string, 16)
	lw := &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = selector
			opts.TimeoutSeconds = &timeout
			select {
			case calls <- opts.ResourceVersion:
			default:
			}
			return configMaps.Watch(ctx, opts)
		},
	}
	// "" and "0" mean "the current state first, as ADDED events, then the
	// changes", not a point in the history: a RetryWatcher that watched
	// again with them would deliver every object again, and "0" may even
	// start from an older state than the last stream saw.
	for _, rv := range []string{"", "0"} {
		rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
		if err == nil {
			rw.Stop()
		}
		fmt.Fprintf(out, "  NewRetryWatcherWithContext(ctx, %q, lw): %v\n", rv, err)
	}

	rw, err := watchtools.NewRetryWatcherWithContext(ctx, listRV, lw)
	if err != nil {
		return fmt.Errorf("start a RetryWatcher: %w", err)
	}
	defer func() { rw.Stop(); <-rw.Done() }()
	streamLimit := time.Duration(timeout)*time.Second + 30*time.Second
	rv, err := nextCall(ctx, calls, streamLimit)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  RetryWatcher from the LIST's resourceVersion: WATCH #1 resourceVersion=%q timeoutSeconds=%d\n", rv, timeout)
	if cm, err = objs.updateConfigMap(ctx, out, cm); err != nil {
		return err
	}
	if _, err := expect(ctx, out, rw, watch.Modified, cm.Name); err != nil {
		return err
	}
	// The server ends the stream after timeoutSeconds; the RetryWatcher
	// watches again at once (at most once a second), and its channel,
	// which is what the reader holds, never closes.
	if rv, err = nextCall(ctx, calls, streamLimit); err != nil {
		return err
	}
	fmt.Fprintf(out, "  the server ended the stream; the RetryWatcher watched again from the last resourceVersion it saw (an event's or a BOOKMARK's): WATCH #2 resourceVersion=%q\n", rv)
	fmt.Fprintln(out, "  its ResultChan, which the reader holds, stayed open")
	if err := objs.deleteConfigMap(ctx, out, cm.Name); err != nil {
		return err
	}
	if _, err := expect(ctx, out, rw, watch.Deleted, cm.Name); err != nil {
		return err
	}

	// A 410 it cannot cure: it passes the ERROR event on, closes its
	// channel and stops. It never lists.
	fmt.Fprintln(out, "  RetryWatcher from resourceVersion \"1\", as after a long outage:")
	if !expired {
		fmt.Fprintln(out, "  skipped: this server still holds resourceVersion 1 (a very young cluster), so there is no 410 to show")
		return nil
	}
	gone, err := watchtools.NewRetryWatcherWithContext(ctx, "1", lw)
	if err != nil {
		return fmt.Errorf("start a RetryWatcher: %w", err)
	}
	defer func() { gone.Stop(); <-gone.Done() }()
	if err := untilClosed(ctx, out, gone, streamLimit); err != nil {
		return err
	}
	<-gone.Done()
	fmt.Fprintln(out, "  then its ResultChan closed and Done() too: recovering (a LIST, then a new RetryWatcher) is the caller's job")
	return nil
}

// nextCall waits for the next WATCH the RetryWatcher makes.
func nextCall(ctx context.Context, calls <-chan string, limit time.Duration) (string, error) {
	select {
	case rv := <-calls:
		return rv, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(limit):
		return "", fmt.Errorf("the RetryWatcher made no WATCH within %s", limit)
	}
}

// untilRunning is Step 4. A Get, then a Watch from the Get's
// resourceVersion, checking the object first, is right but easy to get
// wrong; a Watch alone misses a change made before it started.
// UntilWithSync does it properly: an informer fills a store from lw
// (LIST or WatchList, then WATCH from the same resourceVersion), the
// precondition looks at the store once it has synced, and the conditions
// then see every event the informer delivers: ADDED for what its first
// LIST (or WatchList) found, which the precondition has seen already
// (tools/watch/informerwatcher.go), then every change that follows. Its
// Reflector lists again after a 410 and retries after a dropped
// connection or a restarted API server, so it survives what Step 3's
// RetryWatcher does not.
func untilRunning(ctx context.Context, out io.Writer, objs *objects, wait time.Duration) error {
	pod, err := objs.createPod(ctx, out)
	if err != nil {
		return err
	}
	// The informer's Reflector retries a failed call for ever, and says so
	// only in its log: the ListWatch gives up on an error that retrying
	// cannot cure (401, 403, 404, 400, 422), so that it ends the wait at
	// once, in words. A refused or reset connection is retried, as the
	// Reflector does (tools/cache/reflector.go, isWatchErrorRetriable): an
	// API server that restarts comes back.
	gctx, giveUp := context.WithCancelCause(ctx)
	defer giveUp(nil)
	// One object: a field selector on its name.
	byName := fields.OneTermEqualSelector("metadata.name", pod.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = byName
			list, err := objs.pods.List(ctx, opts)
			giveUpOn(giveUp, "list pods", err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = byName
			w, err := objs.pods.Watch(ctx, opts)
			// A server that rejects a WatchList (sendInitialEvents) as
			// bad or invalid does not support it: the Reflector then
			// lists and watches instead (tools/cache/reflector.go).
			watchList := ptr.Deref(opts.SendInitialEvents, false)
			if !watchList || !apierrors.IsBadRequest(err) && !apierrors.IsInvalid(err) {
				giveUpOn(giveUp, "watch pods", err)
			}
			return w, err
		},
	}
	key, _ := cache.MetaNamespaceKeyFunc(pod)
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(key)
		switch {
		case err != nil:
			return false, err
		case !exists:
			return false, fmt.Errorf("pod %s is gone", pod.Name)
		}
		return running(obj.(*corev1.Pod))
	}
	condition := func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		switch {
		case ev.Type == watch.Deleted:
			return false, fmt.Errorf("pod %s was deleted", pod.Name)
		case !ok:
			return false, fmt.Errorf("unexpected %s event with a %T", ev.Type, ev.Object)
		}
		return running(p)
	}
	fmt.Fprintf(out, "  UntilWithSync: an informer on pods with fieldSelector %s, until status.phase is Running\n", byName)
	wctx, cancel := context.WithTimeout(gctx, wait)
	defer cancel()
	if _, err := watchtools.UntilWithSync(wctx, lw, &corev1.Pod{}, precondition, condition); err != nil {
		switch cause := context.Cause(wctx); {
		case ctx.Err() != nil:
			return ctx.Err()
		case cause != nil && !errors.Is(cause, context.DeadlineExceeded):
			return cause // the ListWatch gave up
		}
		return fmt.Errorf("wait for pod %s to be Running (-wait %s): %w", pod.Name, wait, err)
	}
	fmt.Fprintf(out, "  %s is Running\n", pod.Name)
	return objs.deletePod(ctx, out, pod.Name)
}

// running is the condition: Running is done, a Pod that ended is an error.
func running(pod *corev1.Pod) (bool, error) {
	switch pod.Status.Phase {
	case corev1.PodRunning:
		return true, nil
	case corev1.PodSucceeded, corev1.PodFailed:
		return false, fmt.Errorf("pod %s ended in phase %s", pod.Name, pod.Status.Phase)
	}
	return false, nil
}

// giveUpOn cancels with call's error when retrying cannot cure it: the
// user is not authenticated or not allowed, the namespace is gone, or the
// request itself is wrong. Everything else (a refused or reset connection,
// 5xx, 429, timeouts) the Reflector retries, with backoff, until the wait's
// own deadline.
func giveUpOn(giveUp context.CancelCauseFunc, call string, err error) {
	if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsInvalid(err) {
		giveUp(fmt.Errorf("%s: %w", call, explain(err)))
	}
}
