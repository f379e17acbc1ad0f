// Command reflector shows cache.Reflector, the engine under every informer
// and controller: first plain (syncConfigMaps), then over a ListerWatcher
// and a store that print each call and change (listwatch.go), so that the
// LIST, WATCH, resourceVersions, bookmarks and recovery are visible.
// objects.go holds the typed calls, scale.go -objects, cli.go main().
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/pager"
	"k8s.io/klog/v2"
)

const demoName = "reflector"

// syncConfigMaps is a Reflector with nothing added: a ListerWatcher, a
// store, the Reflector that fills the store and keeps it current, and a
// wait until it has filled it. It returns the names in the store and the
// resourceVersion they were synced at, and stops the Reflector.
func syncConfigMaps(ctx context.Context, clientset kubernetes.Interface, ns string) ([]string, string, error) {
	// A Reflector retries a failed call for ever, with back-off. A program
	// that would rather stop on an error that retrying cannot cure (403,
	// 404, connection refused) looks at the errors itself, here in the
	// ListerWatcher, and cancels.
	ctx, giveUp := context.WithCancelCause(ctx)
	configMaps := clientset.CoreV1().ConfigMaps(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list, err := configMaps.List(ctx, opts)
			if err != nil {
				giveUpOn(giveUp, "list configmaps", err)
				return nil, err
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := configMaps.Watch(ctx, opts)
			giveUpOn(giveUp, "watch configmaps", err)
			return w, err
		},
	}
	// A thread-safe map keyed by namespace/name.
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	// resyncPeriod 0: no periodic Resync(), which a plain Store ignores
	// anyway. The WatchListClient gate, read here, picks the first call.
	r := cache.NewReflector(lw, &corev1.ConfigMap{}, store, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.RunWithContext(ctx)
	}()
	defer func() { giveUp(nil); <-done }()
	// The Reflector sets LastSyncResourceVersion right after it has
	// replaced the store's content with the first LIST or WatchList.
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return r.LastSyncResourceVersion() != "", nil
	})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, "", cause
		}
		return nil, "", fmt.Errorf("the Reflector did not fill the store within a minute: %w", err)
	}
	var names []string
	for _, obj := range store.List() { // the objects as the Reflector delivered them
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			names = append(names, cm.Name)
		}
	}
	slices.Sort(names)
	return names, r.LastSyncResourceVersion(), nil
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs, kube := newFlagSet()
	resource := fs.String("resource", "configmaps", "what the visible Reflector reflects: configmaps or pods")
	mode := fs.String("mode", "", `how to fill the cache: "list" (LIST then WATCH) or "watchlist" (one streaming WATCH); default: the WatchListClient feature gate`)
	watchOnly := fs.Bool("watch-only", false, "only watch (make changes yourself, e.g. with kubectl edit); stop after -duration or Ctrl-C")
	duration := fs.Duration("duration", 0, "keep watching this long after the demo's changes (with -watch-only: how long to watch; 0 means until Ctrl-C)")
	bookmarkWait := fs.Duration("bookmark-wait", 0, "wait up to this long for a periodic BOOKMARK (the API server sends one about every minute)")
	objects := fs.Int("objects", 0, "instead: create this many ConfigMaps and measure the first sync of each path and encoding")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case *resource != "configmaps" && *resource != "pods":
		return usagef("-resource %q: want configmaps or pods", *resource)
	case *mode != "" && *mode != "list" && *mode != "watchlist":
		return usagef("-mode %q: want list or watchlist", *mode)
	case *objects < 0 || *duration < 0 || *bookmarkWait < 0:
		return usagef("-objects, -duration and -bookmark-wait must not be negative")
	}
	setWatchListMode(*mode) // listwatch.go
	config, ns, err := kube.load()
	if err != nil {
		return err
	}
	// client-go logs through the context's logger (klog.FromContext). The
	// demo prints what the Reflector does on stdout, so client-go's own log
	// lines (such as "Failed to watch ... context canceled" when the demo
	// stops a Reflector whose WATCH is on its way) go to stderr only with
	// -v=1 or more. A controller keeps them.
	if !klog.V(1).Enabled() {
		ctx = klog.NewContext(ctx, logr.Discard())
	}
	if *objects > 0 {
		return measure(ctx, config, ns, *objects, stdout) // scale.go
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}

	// Step 1: the lesson in short; the same Reflector, made visible, follows.
	fmt.Fprintf(stdout, "Step 1: a plain Reflector fills a cache.Store with the ConfigMaps in namespace %s\n", ns)
	plain, rv, err := syncConfigMaps(ctx, clientset, ns)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  synced: %d objects %v, LastSyncResourceVersion %s\n", len(plain), plain, rv)

	// Step 2: a Reflector knows nothing about HTTP: it calls List and Watch
	// with options it chooses. Ours print each call and each store change.
	out := &syncWriter{w: stdout}
	objs := newObjects(clientset, *resource, ns)
	fmt.Fprintf(out, "Step 2: the same Reflector for %s, over a ListerWatcher and a store that print every call and change\n", *resource)
	store := newVisibleStore(out, ns)
	lw := newVisibleListWatch(out, clientset, objs, ns, store)
	r := cache.NewReflector(lw.listerWatcher(), objs.expected, store, 0)
	lw.lastRV = r.LastSyncResourceVersion
	// Not cancelled by Ctrl-C: after -watch-only, the check below needs it.
	rctx, stopReflector := context.WithCancel(context.WithoutCancel(ctx))
	reflectorDone := make(chan struct{})
	go func() {
		defer close(reflectorDone)
		r.RunWithContext(rctx)
	}()
	defer func() { stopReflector(); <-reflectorDone }()
	if err := waitForSync(ctx, store, lw, r); err != nil {
		return err
	}
	path := "LIST then WATCH"
	if lw.listCount() == 0 {
		path = "WatchList (one WATCH with sendInitialEvents=true)"
	}
	initialCalls := lw.listCount() + lw.watchCount()
	fmt.Fprintf(out, "  synced by %s: %d objects, LastSyncResourceVersion %s\n", path, len(store.List()), r.LastSyncResourceVersion())

	if !*watchOnly {
		// Cleanup runs on every way out, Ctrl-C included.
		defer func() {
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if derr := objs.deleteAll(cctx); derr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", explain(derr)))
			}
		}()

		// Step 3: the demo's own writes, so that we know what to expect.
		fmt.Fprintln(out, "Step 3: create, update and delete labelled objects; each change arrives in the store as an event")
		names, rvs, err := makeChanges(ctx, out, objs, store, r)
		if err != nil {
			return err
		}

		// Step 4: the same numbers order the changes and guard each write.
		fmt.Fprintln(out, "Step 4: resourceVersion: ordering and optimistic concurrency")
		fmt.Fprintf(out, "  our writes got resourceVersions %v: %s; LastSyncResourceVersion is now %s\n", rvs, ordered(rvs), r.LastSyncResourceVersion())
		if err := staleUpdate(ctx, out, objs, store, r, names[0]); err != nil {
			return err
		}
	}

	// Step 5: a BOOKMARK moves the client's resourceVersion on when nothing
	// it watches changes, so that a re-watch can start from a recent one.
	fmt.Fprintln(out, "Step 5: bookmarks (allowWatchBookmarks=true on every WATCH)")
	if err := waitForBookmark(ctx, out, lw, r, *bookmarkWait); err != nil {
		return err
	}

	// Step 6: the WatchListClient gate (or -mode) chose the path.
	fmt.Fprintln(out, "Step 6: how the cache was filled")
	fmt.Fprintf(out, "  this run: %s (WatchListClient feature gate: %v)\n", path, clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient))

	if err := keepWatching(ctx, out, *watchOnly, *duration); err != nil {
		return err
	}

	// Step 7: every call after the first sync is a recovery.
	fmt.Fprintln(out, "Step 7: recovery")
	lists, watches, curls := lw.calls()
	fmt.Fprintf(out, "  %d LIST and %d WATCH calls in this run", lists, watches)
	if lists+watches > initialCalls {
		fmt.Fprintln(out, ": a watch ended and the Reflector watched or listed again (see above)")
	} else {
		fmt.Fprintln(out, ": no watch ended (restart kube-apiserver meanwhile to see recovery)")
	}

	// Step 8: the same calls by hand.
	fmt.Fprintln(out, "Step 8: the calls above with curl, after `kubectl proxy` (the -N keeps a watch streaming)")
	for _, c := range curls[:min(len(curls), 2)] {
		fmt.Fprintf(out, "  curl -N '%s'\n", c)
	}

	// Finally, with the Reflector still running (a change between the LIST
	// and the comparison, a Pod's status say, reaches the store a moment
	// later): is the store what the server has? After Ctrl-C with
	// -watch-only, the check still runs.
	n, listRV, err := compareWithServer(context.WithoutCancel(ctx), objs, store)
	stopReflector()
	<-reflectorDone
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Check: the store equals a fresh LIST (resourceVersion %s): %d %s, every resourceVersion the same\n", listRV, n, *resource)
	return nil
}

// waitForSync waits for the Reflector's first Replace, and ends the demo on
// an error lw reports before it. LastSyncResourceVersion is set just after
// the Replace, and with LIST then WATCH the WATCH follows at once: it waits
// for both, so that the lines printed come out in the same order every
// time.
func waitForSync(ctx context.Context, store *visibleStore, lw *visibleListWatch, r *cache.Reflector) error {
	select {
	case <-store.replaced:
	case err := <-lw.errs:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("the Reflector did not sync within a minute")
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return lw.watchCount() > 0 && r.LastSyncResourceVersion() != "", nil
	})
	if err != nil && ctx.Err() == nil {
		return errors.New("the Reflector filled the store but did not start its WATCH within 30 s")
	}
	return ctx.Err()
}

// waitForBookmark waits up to d for a periodic BOOKMARK, or with d 0 says
// how to see one.
func waitForBookmark(ctx context.Context, out io.Writer, lw *visibleListWatch, r *cache.Reflector, d time.Duration) error {
	if d == 0 {
		fmt.Fprintln(out, "  periodic bookmarks come about once a minute; run with -bookmark-wait 90s to see one")
		return nil
	}
	fmt.Fprintf(out, "  waiting up to %s for a periodic BOOKMARK...\n", d)
	select {
	case rv := <-lw.bookmark:
		// The ListerWatcher sees the BOOKMARK before the Reflector does:
		// wait until the Reflector's resourceVersion has reached it.
		_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			c, err := resourceversion.CompareResourceVersion(r.LastSyncResourceVersion(), rv)
			return err == nil && c >= 0, nil
		})
		fmt.Fprintf(out, "  got a BOOKMARK at resourceVersion %s; LastSyncResourceVersion is now %s\n", rv, r.LastSyncResourceVersion())
	case <-time.After(d):
		fmt.Fprintln(out, "  no periodic BOOKMARK arrived in time")
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// keepWatching lets the Reflector run on for d, or with watchOnly and d 0
// until Ctrl-C, which then ends only the watching, not the demo.
func keepWatching(ctx context.Context, out io.Writer, watchOnly bool, d time.Duration) error {
	if !watchOnly && d == 0 {
		return nil
	}
	timer := make(<-chan time.Time)
	if d > 0 {
		fmt.Fprintf(out, "watching for %s...\n", d)
		timer = time.After(d)
	} else {
		fmt.Fprintln(out, "watching until Ctrl-C...")
	}
	select {
	case <-timer:
	case <-ctx.Done():
		if !watchOnly {
			return ctx.Err()
		}
	}
	return nil
}

// makeChanges creates three objects, updates the first and deletes the
// third. Each "->" line is printed before the request; the store's line
// follows when the event arrives; the confirmation once the store and
// LastSyncResourceVersion have caught up. It returns the names and the
// resourceVersions of the creates and the update.
func makeChanges(ctx context.Context, out io.Writer, objs objects, store *visibleStore, r *cache.Reflector) (names, rvs []string, err error) {
	for i := range 3 {
		fmt.Fprintf(out, "-> create a %s\n", objs.kind)
		before := r.LastSyncResourceVersion()
		obj, err := objs.create(ctx, i)
		if err != nil {
			return nil, nil, fmt.Errorf("create %s in namespace %q: %w", objs.resource, store.ns, explain(err))
		}
		m, _ := meta.Accessor(obj)
		names, rvs = append(names, m.GetName()), append(rvs, m.GetResourceVersion())
		if err := waitForStore(ctx, store, r, m.GetName(), m.GetResourceVersion(), before); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(out, "   created %s; LastSyncResourceVersion %s\n", m.GetName(), r.LastSyncResourceVersion())
	}
	fmt.Fprintf(out, "-> update %s\n", names[0])
	before := r.LastSyncResourceVersion()
	updated, err := objs.update(ctx, names[0])
	if err != nil {
		return nil, nil, fmt.Errorf("update %s: %w", names[0], explain(err))
	}
	m, _ := meta.Accessor(updated)
	rvs = append(rvs, m.GetResourceVersion())
	if err := waitForStore(ctx, store, r, names[0], m.GetResourceVersion(), before); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(out, "   updated; LastSyncResourceVersion %s\n", r.LastSyncResourceVersion())
	fmt.Fprintf(out, "-> delete %s\n", names[2])
	before = r.LastSyncResourceVersion()
	if err := objs.delete(ctx, names[2]); err != nil {
		return nil, nil, fmt.Errorf("delete %s: %w", names[2], explain(err))
	}
	if err := waitForStore(ctx, store, r, names[2], "", before); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(out, "   deleted; LastSyncResourceVersion %s\n", r.LastSyncResourceVersion())
	return names, rvs, nil
}

// ordered says whether each resourceVersion is greater than the one before.
// resourceversion.CompareResourceVersion (apimachinery v0.35 and later)
// compares two resourceVersions the server gave for objects of the same
// resource; it returns an error for anything that is not a positive
// integer, such as an aggregated API server's own format, and then the
// resourceVersions are opaque: equal or not, nothing more.
func ordered(rvs []string) string {
	for i := 1; i < len(rvs); i++ {
		c, err := resourceversion.CompareResourceVersion(rvs[i-1], rvs[i])
		if err != nil {
			return fmt.Sprintf("not comparable (%v)", err)
		}
		if c >= 0 {
			return fmt.Sprintf("NOT increasing: %s then %s", rvs[i-1], rvs[i])
		}
	}
	return "increasing, by resourceversion.CompareResourceVersion"
}

// staleUpdate reads name, updates it, then updates it again from the copy
// read before: the server refuses the stale resourceVersion with a 409.
func staleUpdate(ctx context.Context, out io.Writer, objs objects, store *visibleStore, r *cache.Reflector, name string) error {
	stale, err := objs.get(ctx, name)
	if err != nil {
		return fmt.Errorf("get %s: %w", name, explain(err))
	}
	fmt.Fprintf(out, "-> update %s, then update it again from the copy read before\n", name)
	fresh, err := objs.update(ctx, name)
	if err != nil {
		return fmt.Errorf("update %s: %w", name, explain(err))
	}
	fm, _ := meta.Accessor(fresh)
	if err := waitForStore(ctx, store, r, name, fm.GetResourceVersion(), ""); err != nil {
		return err
	}
	_, err = objs.updateObject(ctx, stale)
	switch {
	case err == nil:
		return errors.New("an update with a stale resourceVersion succeeded")
	case !apierrors.IsConflict(err):
		return fmt.Errorf("update with a stale resourceVersion: %w", explain(err))
	}
	sm, _ := meta.Accessor(stale)
	fmt.Fprintf(out, "  update carrying stale resourceVersion %s: %v\n", sm.GetResourceVersion(), err)
	return nil
}

// compareWithServer lists the objects with resourceVersion "" (a
// consistent read: in Kubernetes 1.37 the API server serves it, and its
// pages, from its watch cache once that has caught up with etcd's current
// revision) through the library pager, and checks that the store holds
// exactly them, at the same resourceVersions. A mismatch is checked again
// for a few seconds, as the Reflector may be a moment behind.
func compareWithServer(ctx context.Context, objs objects, store *visibleStore) (n int, listRV string, err error) {
	var mismatch error
	perr := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		server := map[string]string{}
		p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			obj, err := objs.list(ctx, opts)
			if err == nil {
				m, _ := meta.ListAccessor(obj)
				listRV = m.GetResourceVersion()
			}
			return obj, err
		})
		err := p.EachListItemWithAlloc(ctx, metav1.ListOptions{ResourceVersion: ""}, func(obj runtime.Object) error {
			m, _ := meta.Accessor(obj)
			server[m.GetName()] = m.GetResourceVersion()
			return nil
		})
		if err != nil {
			if transient(err) {
				mismatch = err
				return false, nil
			}
			mismatch = nil // the error below is the reason, not an old mismatch
			return false, fmt.Errorf("list %s to check the store: %w", objs.resource, explain(err))
		}
		mismatch = differ(server, store)
		return mismatch == nil, nil
	})
	if perr != nil && mismatch != nil {
		return 0, "", fmt.Errorf("store differs from the server: %w", mismatch)
	}
	if perr != nil {
		return 0, "", perr
	}
	return len(store.List()), listRV, nil
}

// differ says how the store's names and resourceVersions differ from the
// server's, or nil.
func differ(server map[string]string, store *visibleStore) error {
	local := map[string]string{}
	for _, obj := range store.List() {
		m, _ := meta.Accessor(obj)
		local[m.GetName()] = m.GetResourceVersion()
	}
	for name, rv := range server {
		if local[name] != rv {
			return fmt.Errorf("%s has resourceVersion %q in the store, %q on the server", name, local[name], rv)
		}
	}
	if len(local) != len(server) {
		return fmt.Errorf("%d objects in the store, %d on the server", len(local), len(server))
	}
	return nil
}

// waitForStore waits until the Reflector has delivered name at
// resourceVersion rv to the store (by an event or a relist; later events
// may have followed, as a Pod's status keeps changing), or, when rv is "",
// until name is gone. Then it waits for LastSyncResourceVersion to move
// past before, which the Reflector sets right after the store call.
func waitForStore(ctx context.Context, store *visibleStore, r *cache.Reflector, name, rv, before string) error {
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, exists, _ := store.GetByKey(store.key(name))
		arrived := rv == "" && !exists || rv != "" && store.saw(name, rv)
		return arrived && r.LastSyncResourceVersion() != before, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s at resourceVersion %q in the store: %w", name, rv, err)
	}
	return nil
}

// transient reports the errors that retrying may cure: the server is busy,
// restarting or slow (5xx, 429, timeouts).
func transient(err error) bool {
	var netErr net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		errors.As(err, &netErr) && netErr.Timeout()
}

// giveUpOn cancels with call's error unless retrying may cure it.
func giveUpOn(giveUp context.CancelCauseFunc, call string, err error) {
	if err != nil && !transient(err) {
		giveUp(fmt.Errorf("%s: %w", call, explain(err)))
	}
}
