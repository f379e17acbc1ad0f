// Command informer shows the cache that controllers read: a
// SharedInformerFactory, the typed and the classic event handlers (with
// the tombstone a missed delete leaves), the lister, an index of our own,
// resync, the rule never to modify a cached object, and the dynamic and
// metadata-only informers. handlers.go holds the handlers and what they
// report, requests.go the transport that counts HTTP requests, steps.go the
// longer steps, dynamic.go Step 8, cli.go main().
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	informerscorev1 "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

const demoName = "informer"

// selector picks the demo's own ConfigMaps: the informers see nothing else.
const selector = partOf + ",app.kubernetes.io/name=" + demoName

// tierIndex is our own index: ConfigMaps by their data["tier"].
const tierIndex = "tier"

// startInformers is the lesson in short: one factory for the program,
// limited to one namespace and our label; the ConfigMap informer from it,
// with handlers and an index registered before the start; the start; the
// wait until the cache and the handlers have seen the initial state.
func startInformers(ctx context.Context, clientset kubernetes.Interface, ns string, resync time.Duration, events *eventLog, syncTimeout time.Duration) (informerscorev1.TypedConfigMapInformer, func(), error) {
	factory := informers.NewSharedInformerFactoryWithOptions(clientset, resync,
		informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	configMaps := factory.Core().V1().ConfigMaps()
	// TypedInformer and Informer are the same shared informer (one WATCH,
	// one cache); typed handlers get *corev1.ConfigMap, classic ones any.
	typed := configMaps.TypedInformer()
	typedReg, err := typed.AddTypedEventHandler(typedHandler(events))
	if err != nil {
		return nil, nil, fmt.Errorf("add typed handler: %w", err)
	}
	classicReg, err := configMaps.Informer().AddEventHandler(classicHandler(events))
	if err != nil {
		return nil, nil, fmt.Errorf("add classic handler: %w", err)
	}
	err = typed.AddTypedIndexers(informerscorev1.ConfigMapIndexers{
		tierIndex: func(cm *corev1.ConfigMap) ([]string, error) { return []string{cm.Data["tier"]}, nil },
	})
	if err != nil {
		return nil, nil, fmt.Errorf("add index: %w", err)
	}
	// An informer retries a failed LIST or WATCH for ever. Until it has
	// synced, an error that retrying cannot cure (403, 404) ends the demo.
	ctx, giveUp := context.WithCancelCause(ctx)
	err = typed.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if ctx.Err() != nil { // stopping
			return
		}
		cache.DefaultWatchErrorHandler(ctx, r, err) // client-go's log line
		events.watchError(err, typed.HasSynced())
		if !typed.HasSynced() && !transient(err) {
			giveUp(explain(err)) // the Reflector says "failed to list *v1.ConfigMap: ..."
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("set watch error handler: %w", err)
	}
	factory.StartWithContext(ctx)
	stop := func() { giveUp(nil); factory.Shutdown() } // Shutdown waits for the informers to end
	syncCtx, cancel := context.WithTimeoutCause(ctx, syncTimeout, fmt.Errorf("not synced within %s (-sync-timeout)", syncTimeout))
	defer cancel()
	if err := factory.WaitForCacheSyncWithContext(syncCtx).AsError(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("wait for the informers: %w", err) // AsError names the ones not synced
	}
	// The cache is filled; the handlers may still be working through the
	// initial list. A registration is synced once they are through.
	if !cache.WaitFor(syncCtx, "", typedReg.HasSyncedChecker(), classicReg.HasSyncedChecker()) {
		stop()
		return nil, nil, fmt.Errorf("wait for the event handlers: %w", context.Cause(syncCtx))
	}
	return configMaps, stop, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs, kube := newFlagSet()
	resync := fs.Duration("resync", time.Second, "resync period of the factory's informers (0: no resync; else at least 1s)")
	resource := fs.String("resource", "configmaps", "what Step 8's dynamic and metadata-only informers watch, as kubectl names it (configmaps, deploy, crontabs.stable.example.com)")
	watchMode := fs.Bool("watch", false, "after Step 2's initial list, print every event until Ctrl-C (or -duration): change the demo's ConfigMaps with kubectl meanwhile")
	duration := fs.Duration("duration", 0, "with -watch: stop watching after this long (0: at Ctrl-C)")
	syncTimeout := fs.Duration("sync-timeout", 30*time.Second, "give up when an informer has not synced within this long")
	objects := fs.Int("objects", 0, "instead: create this many ConfigMaps (1 KiB each) and measure the initial sync of the typed and the metadata-only informer, and the API server's memory")
	informersN := fs.Int("informers", 10, "with -objects: how many informers sync at once in the API server measurement")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case *resync < 0 || *resync > 0 && *resync < time.Second:
		return usagef("-resync %s: want 0 or at least 1s (client-go raises shorter periods to 1s)", *resync)
	case *duration < 0 || *syncTimeout <= 0:
		return usagef("-duration must not be negative, -sync-timeout must be positive")
	case *objects < 0 || *informersN < 1:
		return usagef("-objects must not be negative, -informers must be at least 1")
	}
	config, ns, err := kube.load()
	if err != nil {
		return err
	}
	// client-go's own log lines go to stderr only with -v=1 or more.
	if !klog.V(1).Enabled() {
		ctx = klog.NewContext(ctx, logr.Discard())
	}
	if *objects > 0 {
		return measure(ctx, config, ns, *objects, *informersN, stdout)
	}
	// Step 8's resource first: a wrong -resource fails before we create anything.
	gvr, namespaced, err := findResource(ctx, config, *resource)
	if err != nil {
		return err
	}
	requests := countRequests(config) // every request of every client made from config from now on
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	out := &syncWriter{w: stdout}

	// Step 1: objects first, so that they arrive in the initial list.
	fmt.Fprintf(out, "Step 1: one SharedInformerFactory for the ConfigMaps in namespace %s labelled %s\n", ns, selector)
	demo := &demoObjects{client: clientset.CoreV1().ConfigMaps(ns), ns: ns}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		if derr := demo.deleteAll(cctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", explain(derr)))
		}
	}()
	if err := demo.createInitial(ctx, out); err != nil {
		return err
	}
	events := newEventLog(out)
	before := requests.count()
	configMaps, stop, err := startInformers(ctx, clientset, ns, *resync, events, *syncTimeout)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintln(out, "  StartWithContext, WaitForCacheSyncWithContext: *v1.ConfigMap synced; both handlers' registrations synced")
	informerRequests := requests.untilWatch(ctx, before)
	fmt.Fprintf(out, "  the informer's requests: %d\n", len(informerRequests))
	for _, r := range informerRequests {
		fmt.Fprintf(out, "    %s\n", r)
	}

	// Step 2: both handlers saw the initial list; then changes arrive as events.
	fmt.Fprintln(out, "Step 2: event handlers: typed (TypedInformer, DeletedObject[T]) and classic (Informer, any), on the same informer")
	if err := events.printInitialList(ctx, 2*len(demo.names)); err != nil {
		return err
	}
	if *watchMode {
		return watchEvents(ctx, out, events, requests, *duration)
	}
	if err := demo.change(ctx, out, events); err != nil {
		return err
	}

	// Step 3: reads from the cache cost no request.
	fmt.Fprintln(out, "Step 3: the lister answers Get and List from the cache")
	if err := compareReads(ctx, out, config, requests, configMaps.Lister(), ns, demo.names[0]); err != nil {
		return err
	}

	// Step 4: the index registered in startInformers.
	fmt.Fprintf(out, "Step 4: an index of our own: AddTypedIndexers(%q: data[\"tier\"]), then ByIndex\n", tierIndex)
	if err := printIndex(out, configMaps.TypedInformer().GetTypedIndexer(), ns); err != nil {
		return err
	}

	// Step 5: resync re-delivers the cache; it asks the server nothing.
	if err := showResync(ctx, out, events, requests, configMaps.Lister().ConfigMaps(ns), *resync); err != nil {
		return err
	}

	// Step 6: objects from the cache are shared: copy before changing.
	fmt.Fprintln(out, "Step 6: never modify an object from the cache: DeepCopy, change the copy, Update")
	if err := updateFromCopy(ctx, out, clientset, configMaps.Lister().ConfigMaps(ns), events, demo.names[0]); err != nil {
		return err
	}

	// Step 7: which calls filled the cache, and what sits between the
	// Reflector and the indexer.
	fmt.Fprintln(out, "Step 7: how the informer filled its cache")
	explainFill(out, informerRequests)

	// Step 8: the same informer for any resource, and without the objects' bodies.
	fmt.Fprintf(out, "Step 8: informers for any resource: dynamicinformer and metadatainformer for %s (%s)\n", gvr.Resource, gvr.GroupVersion())
	if err := compareInformers(ctx, out, config, gvr, namespaced, ns); err != nil {
		return err
	}

	n, rv, err := compareWithServer(ctx, clientset, ns, configMaps.Lister().ConfigMaps(ns))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Check: the lister holds what a fresh LIST returns (resourceVersion %s): %d configmaps, every resourceVersion the same\n", rv, n)
	return nil
}
