// Command reflector makes a cache.Reflector's work visible: the List and the
// Watch it makes, the resourceVersions that tie them together, bookmarks,
// the streaming WatchList, and how it recovers when a watch breaks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"
	"k8s.io/klog/v2"
)

const partOf = "app.kubernetes.io/part-of=client-go-demo"

func main() {
	// Ctrl-C, kill, or a closed pipe (go run ./reflector | head) cancel ctx, and
	// run cleans up before it returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reflector:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// watchListMode overrides client-go's WatchListClient feature gate for the
// -mode flag. client-go reads its gates through clientfeatures; a program
// that wants its own switch replaces them, once, before first use.
var (
	watchListMode atomic.Int32 // 0: follow the gate (KUBE_FEATURE_WatchListClient), 1: on, 2: off
	installGates  sync.Once
)

type gates struct{ clientfeatures.Gates }

func (g gates) Enabled(f clientfeatures.Feature) bool {
	if f == clientfeatures.WatchListClient && watchListMode.Load() != 0 {
		return watchListMode.Load() == 1
	}
	return g.Gates.Enabled(f)
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("reflector", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current context)")
	var namespace string
	fs.StringVar(&namespace, "namespace", "", "namespace (default: the context's namespace)")
	fs.StringVar(&namespace, "n", "", "shorthand for -namespace")
	resource := fs.String("resource", "configmaps", "what to reflect: configmaps or pods")
	mode := fs.String("mode", "", `how to fill the cache: "list" (LIST then WATCH) or "watchlist" (one streaming WATCH); default: the WatchListClient feature gate`)
	watchOnly := fs.Bool("watch-only", false, "only watch (make changes yourself, e.g. with kubectl edit); stop after -duration or Ctrl-C")
	duration := fs.Duration("duration", 0, "keep watching this long after the demo's changes (with -watch-only: how long to watch; 0 means until Ctrl-C)")
	bookmarkWait := fs.Duration("bookmark-wait", 0, "wait up to this long for a periodic BOOKMARK (the API server sends one about every minute)")
	objects := fs.Int("objects", 0, "instead: create this many ConfigMaps and measure the first sync of each path and encoding")
	klog.InitFlags(fs)       // -v=6 logs every request, as kubectl does
	fs.SetOutput(io.Discard) // a bad flag is one line of error; -h prints the flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError{fmt.Errorf("%w (see -h)", err)}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	case *resource != "configmaps" && *resource != "pods":
		return usageError{fmt.Errorf("-resource %q: want configmaps or pods", *resource)}
	case *mode != "" && *mode != "list" && *mode != "watchlist":
		return usageError{fmt.Errorf("-mode %q: want list or watchlist", *mode)}
	case *objects < 0 || *duration < 0 || *bookmarkWait < 0:
		return usageError{errors.New("-objects, -duration and -bookmark-wait must not be negative")}
	}
	installGates.Do(func() { clientfeatures.ReplaceFeatureGates(gates{clientfeatures.FeatureGates()}) })
	watchListMode.Store(map[string]int32{"": 0, "watchlist": 1, "list": 2}[*mode])

	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, then ~/.kube/config
	rules.ExplicitPath = *kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: *kubeContext}
	overrides.Context.Namespace = namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	config, err := loader.ClientConfig() // falls back to the in-cluster config
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no kubeconfig: pass -kubeconfig, set $KUBECONFIG, or create ~/.kube/config")
	}
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return fmt.Errorf("read namespace from kubeconfig: %w", err)
	}
	config.UserAgent = "client-go-demo-reflector"
	if *objects > 0 {
		return measure(ctx, config, ns, *objects, stdout)
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	out := &syncWriter{w: stdout}
	objs := newObjects(clientset, *resource, ns)

	// Step 1: the ListerWatcher. A Reflector knows nothing about HTTP: it
	// calls List and Watch with options it chooses, on whatever
	// ListerWatcher it is given. Ours calls the clientset and prints.
	fmt.Fprintf(out, "Step 1: a ListWatch for %s in namespace %s that prints every call the Reflector makes\n", *resource, ns)
	store := newVisibleStore(out, ns)
	lw := newVisibleListWatch(out, clientset, objs, ns, store)

	// Step 2: the store and the Reflector. NewReflector(lw, expectedType,
	// store, resyncPeriod): a resync period of 0 means no periodic resync,
	// which a plain Store would not use anyway.
	fmt.Fprintln(out, "Step 2: cache.NewReflector(lw, expectedType, store, 0) fills the store, then keeps it current")
	r := cache.NewReflector(lw.listerWatcher(), objs.expected, store, 0)
	lw.lastRV = r.LastSyncResourceVersion
	rctx, stopReflector := context.WithCancel(ctx)
	// The Reflector logs through the context's logger; this demo prints
	// what matters itself, so its logs show only with -v=1 or more.
	// (klog ignores a context's logger unless contextual logging is on.)
	if !klog.V(1).Enabled() {
		klog.EnableContextualLogging(true)
		rctx = klog.NewContext(rctx, logr.Discard())
	}
	reflectorDone := make(chan struct{})
	go func() {
		defer close(reflectorDone)
		r.RunWithContext(rctx)
	}()
	defer func() { stopReflector(); <-reflectorDone }()
	select {
	case <-store.replaced:
	case err := <-lw.errs:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("the Reflector did not sync within a minute")
	}
	// The Reflector records LastSyncResourceVersion just after the Replace,
	// and in LIST-then-WATCH mode the WATCH follows at once; wait for both,
	// so that the lines above come out the same every time.
	for i := 0; i < 50 && (lw.watchCount() == 0 || r.LastSyncResourceVersion() == ""); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	path := "LIST then WATCH"
	if lw.listCount() == 0 {
		path = "WatchList (one WATCH with sendInitialEvents=true)"
	}
	fmt.Fprintf(out, "  synced by %s: %d objects, LastSyncResourceVersion %s\n", path, len(store.List()), r.LastSyncResourceVersion())

	var eventRVs []string
	if !*watchOnly {
		// Cleanup runs on every way out, Ctrl-C included.
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if derr := objs.deleteAll(cctx); derr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
			}
		}()

		// Step 3: changes, made by the demo itself, arrive as events.
		fmt.Fprintln(out, "Step 3: create, update and delete labelled objects; each change arrives in the store as an event")
		// Each line "-> ..." is printed before the request; the store's line
		// follows when the event arrives; then we confirm, after waiting for
		// the store and LastSyncResourceVersion to catch up.
		var names []string
		for i := range 3 {
			fmt.Fprintf(out, "-> create a %s\n", objs.kind)
			before := r.LastSyncResourceVersion()
			obj, err := objs.create(ctx, i)
			if err != nil {
				return fmt.Errorf("create %s in namespace %q: %w", *resource, ns, explain(err))
			}
			m, _ := meta.Accessor(obj)
			names = append(names, m.GetName())
			eventRVs = append(eventRVs, m.GetResourceVersion())
			if err := waitForStore(ctx, store, r, m.GetName(), m.GetResourceVersion(), before); err != nil {
				return err
			}
			fmt.Fprintf(out, "   created %s; LastSyncResourceVersion %s\n", m.GetName(), r.LastSyncResourceVersion())
		}
		fmt.Fprintf(out, "-> update %s\n", names[0])
		before := r.LastSyncResourceVersion()
		updated, err := objs.update(ctx, names[0])
		if err != nil {
			return fmt.Errorf("update %s: %w", names[0], explain(err))
		}
		m, _ := meta.Accessor(updated)
		eventRVs = append(eventRVs, m.GetResourceVersion())
		if err := waitForStore(ctx, store, r, m.GetName(), m.GetResourceVersion(), before); err != nil {
			return err
		}
		fmt.Fprintf(out, "   updated; LastSyncResourceVersion %s\n", r.LastSyncResourceVersion())
		fmt.Fprintf(out, "-> delete %s\n", names[2])
		before = r.LastSyncResourceVersion()
		if err := objs.delete(ctx, names[2]); err != nil {
			return fmt.Errorf("delete %s: %w", names[2], explain(err))
		}
		if err := waitForStore(ctx, store, r, names[2], "", before); err != nil {
			return err
		}
		fmt.Fprintf(out, "   deleted; LastSyncResourceVersion %s\n", r.LastSyncResourceVersion())

		// Step 4: resourceVersions order every change; the same number
		// is the optimistic-concurrency token of a write.
		fmt.Fprintln(out, "Step 4: resourceVersion: ordering and optimistic concurrency")
		fmt.Fprintf(out, "  our writes got resourceVersions %v, increasing; LastSyncResourceVersion is now %s\n", eventRVs, r.LastSyncResourceVersion())
		stale, err := objs.get(ctx, names[0])
		if err != nil {
			return fmt.Errorf("get %s: %w", names[0], explain(err))
		}
		fmt.Fprintf(out, "-> update %s, then update it again from the copy read before\n", names[0])
		fresh, err := objs.update(ctx, names[0])
		if err != nil {
			return fmt.Errorf("update %s: %w", names[0], explain(err))
		}
		fm, _ := meta.Accessor(fresh)
		if err := waitForStore(ctx, store, r, names[0], fm.GetResourceVersion(), ""); err != nil {
			return err
		}
		_, err = objs.updateObject(ctx, stale)
		if err == nil {
			return errors.New("an update with a stale resourceVersion succeeded")
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("update with a stale resourceVersion: %w", explain(err))
		}
		sm, _ := meta.Accessor(stale)
		fmt.Fprintf(out, "  update carrying stale resourceVersion %s: %v\n", sm.GetResourceVersion(), err)
	}

	// Step 5: bookmarks. A BOOKMARK carries only a resourceVersion. The API
	// server sends one about every minute (and shortly before a watch times
	// out) so that a client that saw no change for a long time still holds a
	// recent resourceVersion and can re-watch instead of relisting.
	fmt.Fprintln(out, "Step 5: bookmarks (allowWatchBookmarks=true on every WATCH)")
	if *bookmarkWait > 0 {
		fmt.Fprintf(out, "  waiting up to %s for a periodic BOOKMARK...\n", *bookmarkWait)
		select {
		case rv := <-lw.bookmark:
			fmt.Fprintf(out, "  got a BOOKMARK at resourceVersion %s; LastSyncResourceVersion is now %s\n", rv, r.LastSyncResourceVersion())
		case <-time.After(*bookmarkWait):
			fmt.Fprintln(out, "  no periodic BOOKMARK arrived in time")
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		fmt.Fprintln(out, "  periodic bookmarks come about once a minute; run with -bookmark-wait 90s to see one")
	}

	// Step 6: which of the two ways filled the cache.
	fmt.Fprintln(out, "Step 6: how the cache was filled")
	fmt.Fprintf(out, "  this run: %s (WatchListClient feature gate: %v)\n", path, clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient))

	// Keep watching: -duration, or until Ctrl-C with -watch-only.
	if *watchOnly || *duration > 0 {
		if *duration > 0 {
			fmt.Fprintf(out, "watching for %s...\n", *duration)
		} else {
			fmt.Fprintln(out, "watching until Ctrl-C...")
		}
		wait := make(<-chan time.Time)
		if *duration > 0 {
			wait = time.After(*duration)
		}
		select {
		case <-wait:
		case <-ctx.Done():
			if !*watchOnly {
				return ctx.Err()
			}
		}
	}

	// Step 7: what broke during this run, if anything.
	lw.mu.Lock()
	lists, watches := lw.lists, lw.watches
	curls := lw.curls
	lw.mu.Unlock()
	fmt.Fprintln(out, "Step 7: recovery")
	fmt.Fprintf(out, "  %d LIST and %d WATCH calls in this run", lists, watches)
	if lists+watches > 2 {
		fmt.Fprintln(out, ": the watch broke and the Reflector re-watched or relisted (see above)")
	} else {
		fmt.Fprintln(out, ": no watch broke (restart kube-apiserver meanwhile to see recovery)")
	}

	// Step 8: the same calls with curl, through `kubectl proxy`.
	fmt.Fprintln(out, "Step 8: the calls above with curl, after `kubectl proxy` (the -N keeps a watch streaming)")
	for _, c := range curls[:min(len(curls), 2)] {
		fmt.Fprintf(out, "  curl -N '%s'\n", c)
	}

	// Finally: is the store what the server has? A consistent LIST
	// (resourceVersion "") reads from etcd, paged by the library pager.
	// The Reflector keeps running meanwhile: a change that lands between
	// the LIST and the comparison (a Pod's status, say) reaches the store a
	// moment later, so a mismatch is checked again for a few seconds.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var listRV string
	var n int
	for try := 0; ; try++ {
		listRV, n, err = compareWithServer(cctx, objs, store)
		if err == nil || try == 20 || cctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	stopReflector()
	<-reflectorDone
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Check: the store equals a fresh LIST (resourceVersion %s): %d %s, every resourceVersion the same\n", listRV, n, *resource)
	return nil
}

// compareWithServer lists the objects with resourceVersion "" (a
// consistent read from etcd, paged by the library pager) and checks that the
// store holds exactly them, at the same resourceVersions.
func compareWithServer(ctx context.Context, objs objects, store *visibleStore) (string, int, error) {
	serverRVs := map[string]string{}
	var listRV string
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
		serverRVs[m.GetName()] = m.GetResourceVersion()
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("list %s to check the store: %w", objs.resource, explain(err))
	}
	storeRVs := map[string]string{}
	for _, obj := range store.List() {
		m, _ := meta.Accessor(obj)
		storeRVs[m.GetName()] = m.GetResourceVersion()
	}
	for name, rv := range serverRVs {
		if storeRVs[name] != rv {
			return "", 0, fmt.Errorf("store differs from the server: %s has resourceVersion %q in the store, %q on the server", name, storeRVs[name], rv)
		}
	}
	if len(storeRVs) != len(serverRVs) {
		return "", 0, fmt.Errorf("store differs from the server: %d objects in the store, %d on the server", len(storeRVs), len(serverRVs))
	}
	return listRV, len(serverRVs), nil
}

// waitForStore waits until the Reflector has delivered name at
// resourceVersion rv to the store (later events may have followed: a Pod's
// status keeps changing), or, when rv is "", until name is gone. Then it
// waits for LastSyncResourceVersion to move past before, which the Reflector
// sets right after the store call.
func waitForStore(ctx context.Context, store *visibleStore, r *cache.Reflector, name, rv, before string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, exists, _ := store.GetByKey(store.key(name))
		if (rv == "" && !exists || rv != "" && store.saw(name, rv)) && r.LastSyncResourceVersion() != before {
			return nil
		}
		select {
		case <-store.changed:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("wait for %s at resourceVersion %q in the store: %w", name, rv, ctx.Err())
		}
	}
}

// explain turns the API errors a user meets into words.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		// The message names the user, verb, resource and namespace.
		return fmt.Errorf("forbidden by RBAC: %w", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the server did not accept our credentials: %w", err)
	}
	return err
}
