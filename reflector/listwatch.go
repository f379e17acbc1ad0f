package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

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

// setWatchListMode makes the Reflectors created from now on fill their
// cache by "list" (LIST then WATCH) or "watchlist" (one streaming WATCH),
// or, for "", as the WatchListClient gate says. NewReflector reads the gate.
func setWatchListMode(mode string) {
	installGates.Do(func() { clientfeatures.ReplaceFeatureGates(gates{clientfeatures.FeatureGates()}) })
	watchListMode.Store(map[string]int32{"": 0, "watchlist": 1, "list": 2}[mode])
}

// visibleListWatch is a cache.ListWatch that prints every call the Reflector
// makes, with the options it chose, the equivalent curl through
// `kubectl proxy`, and what came back. It changes nothing: list and watch
// are the clientset's own calls.
type visibleListWatch struct {
	out      io.Writer
	rest     rest.Interface // builds the URL of each call
	resource string         // configmaps or pods
	ns       string
	mu       sync.Mutex // guards lists, watches and curls
	lists    int        // calls so far, to tell a relist from the first list
	watches  int
	curls    []string    // every curl printed, for the summary
	errs     chan error  // errors before the first sync end the demo
	synced   func() bool // whether the store has been filled once
	list     func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch    func(context.Context, metav1.ListOptions) (watch.Interface, error)
	bookmark chan string   // resourceVersions of bookmarks, for -bookmark-wait
	lastRV   func() string // the Reflector's LastSyncResourceVersion
	// watchList is set at the first WatchList request: the Reflector
	// starts over with a WatchList, not a LIST (its choice is made once,
	// in NewReflector).
	watchList atomic.Bool
}

// newVisibleListWatch prints to out the calls it makes for objs in ns; its
// errors before store's first sync end the demo.
func newVisibleListWatch(out io.Writer, cs kubernetes.Interface, objs objects, ns string, store *visibleStore) *visibleListWatch {
	return &visibleListWatch{
		out: out, rest: cs.CoreV1().RESTClient(), resource: objs.resource, ns: ns,
		errs: make(chan error, 1), synced: store.synced, bookmark: make(chan string, 1),
		list: objs.list, watch: objs.watch,
	}
}

func (v *visibleListWatch) listCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lists
}

func (v *visibleListWatch) watchCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.watches
}

// calls returns the LIST and WATCH calls so far and their curls.
func (v *visibleListWatch) calls() (lists, watches int, curls []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lists, v.watches, slices.Clone(v.curls)
}

func (v *visibleListWatch) listerWatcher() cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			// Count and print under the lock: whoever reads the count
			// afterwards sees the lines already printed.
			v.mu.Lock()
			v.lists++
			what := "LIST"
			switch {
			case v.watchList.Load(): // a Reflector in WatchList mode lists only then
				what = "LIST (fallback: the WatchList failed)"
			case v.lists > 1 || v.watches > 0:
				what = "LIST (relist: the Reflector starts over)"
			}
			v.printf("%s %s\n", what, listOptions(opts))
			v.printCurl(opts)
			v.mu.Unlock()
			obj, err := v.list(ctx, opts)
			if err != nil {
				v.failed("list", err, false)
				return nil, err
			}
			items, _ := meta.ExtractList(obj)
			listMeta, _ := meta.ListAccessor(obj)
			v.printf("  -> %d items, list resourceVersion %s, continue token present: %v\n",
				len(items), listMeta.GetResourceVersion(), listMeta.GetContinue() != "")
			return obj, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			initial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
			if initial {
				v.watchList.Store(true)
			}
			v.mu.Lock()
			v.watches++
			what := "WATCH"
			if initial {
				what = "WATCH (WatchList: the initial state streamed as events)"
			} else if v.watches > 1 {
				what = "WATCH (re-watch from the last resourceVersion)"
			}
			v.printf("%s %s\n", what, listOptions(opts))
			// The clientset's Watch adds watch=true to the same options.
			curlOpts := opts
			curlOpts.Watch = true
			v.printCurl(curlOpts)
			v.mu.Unlock()
			start := time.Now() // the Reflector, too, times a watch from its request
			w, err := v.watch(ctx, opts)
			if err != nil {
				v.failed("watch", err, initial)
				return nil, err
			}
			return v.visibleWatch(ctx, w, start, initial), nil
		},
	}
}

// failed prints an error and what the Reflector does next. Before the
// first sync an error that retrying cannot cure also ends the demo:
// retrying a Forbidden or an unreachable server for ever teaches nothing.
func (v *visibleListWatch) failed(call string, err error, initialEvents bool) {
	v.printf("  -> %s failed: %v (%s)\n", call, err, v.next(call == "list", initialEvents, err))
	if !v.synced() && !transient(err) {
		select {
		case v.errs <- fmt.Errorf("%s %s: %w", call, v.resource, explain(err)):
		default:
		}
	}
}

// next says what the Reflector does after err ended a LIST (list), a
// WatchList that has not delivered its initial state yet (initialEvents:
// watchList in tools/cache/reflector.go handles those errors itself), or
// any other WATCH request or stream (watch and ListAndWatchWithContext).
func (v *visibleListWatch) next(list, initialEvents bool, err error) string {
	rvUnavailable := apierrors.IsResourceExpired(err) || apierrors.IsGone(err) ||
		apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge)
	switch {
	case list && rvUnavailable:
		return `that resourceVersion is unavailable: the Reflector lists again at once, with resourceVersion=""`
	case list:
		return "the Reflector starts over after its back-off"
	case utilnet.IsConnectionRefused(err) || apierrors.IsTooManyRequests(err):
		return "connection refused or 429: the Reflector backs off, then watches again from its last resourceVersion"
	case initialEvents && rvUnavailable:
		return `that resourceVersion is unavailable: the Reflector starts the WatchList again at once, with resourceVersion=""`
	case initialEvents:
		return "the Reflector falls back to LIST at once"
	case v.lastRV() == "":
		return "the Reflector starts over after its back-off"
	case v.watchList.Load():
		return "after its back-off the Reflector starts over with a WatchList from its last resourceVersion, " + v.lastRV()
	default:
		return "after its back-off the Reflector lists again at its last resourceVersion, " + v.lastRV()
	}
}

// visibleWatch forwards a watch's events, printing the ones the store never
// sees: bookmarks, errors, and the end of the stream with what the
// Reflector does next (tools/cache/reflector.go, handleAnyWatch and its
// callers). initialEvents: a WatchList, until its initial-events-end
// bookmark.
func (v *visibleListWatch) visibleWatch(ctx context.Context, w watch.Interface, start time.Time, initialEvents bool) watch.Interface {
	out := make(chan watch.Event)
	done := make(chan struct{})
	go func() {
		defer close(out)
		events, sawError := 0, false
		for ev := range w.ResultChan() {
			if ctx.Err() != nil { // the Reflector is stopping: what follows is noise
				return
			}
			select {
			case <-done:
				return
			default:
			}
			events++
			switch ev.Type {
			case watch.Bookmark:
				m, _ := meta.Accessor(ev.Object)
				if m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
					initialEvents = false
					v.printf("  BOOKMARK resourceVersion %s, annotated %s: the initial state is complete\n", m.GetResourceVersion(), metav1.InitialEventsAnnotationKey)
				} else {
					v.printf("  BOOKMARK resourceVersion %s: no object changed, but the client's resourceVersion moves forward (was %s)\n", m.GetResourceVersion(), v.lastRV())
					select {
					case v.bookmark <- m.GetResourceVersion():
					default:
					}
				}
			case watch.Error:
				// An error after the watch began comes as an event in the
				// 200 response, not as an HTTP status.
				sawError = true
				err := apierrors.FromObject(ev.Object)
				why := ""
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					why = "410 Gone inside the 200 watch stream: the resourceVersion is older than the watch cache holds; "
				}
				v.printf("  ERROR event: %v (%s%s)\n", err, why, v.next(false, initialEvents, err))
			}
			select {
			case out <- ev:
			case <-done:
				return
			}
		}
		select {
		case <-done:
		case <-ctx.Done():
		default:
			switch {
			case sawError: // the line above said what follows
			case events == 0 && time.Since(start) < time.Second:
				// cache.VeryShortWatchError
				v.printf("  watch stream ended within a second, without events: the Reflector takes it for an error (%s)\n", v.next(false, initialEvents, errors.New("very short watch")))
			case initialEvents:
				v.printf("  watch stream ended before the initial-events-end bookmark: the Reflector sends the WatchList again at once\n")
			default:
				v.printf("  watch stream ended (its timeout, a server restart or a lost connection): the Reflector watches again at once from resourceVersion %s\n", v.lastRV())
			}
		}
	}()
	return &stoppable{Interface: w, out: out, done: done}
}

type stoppable struct {
	watch.Interface
	out  chan watch.Event
	done chan struct{}
	once sync.Once
}

func (s *stoppable) ResultChan() <-chan watch.Event { return s.out }
func (s *stoppable) Stop() {
	s.once.Do(func() { close(s.done) })
	s.Interface.Stop()
}

// printCurl prints the call as curl through `kubectl proxy`, which listens on
// 127.0.0.1:8001 and adds the credentials itself. The URL comes from the
// same request builder the clientset uses. The caller holds v.mu.
func (v *visibleListWatch) printCurl(opts metav1.ListOptions) {
	u := v.rest.Get().Namespace(v.ns).Resource(v.resource).VersionedParams(&opts, scheme.ParameterCodec).URL()
	proxied := url.URL{Scheme: "http", Host: "127.0.0.1:8001", Path: u.Path, RawQuery: u.RawQuery}
	v.curls = append(v.curls, proxied.String())
	v.printf("  curl '%s'\n", proxied.String())
}

func (v *visibleListWatch) printf(format string, args ...any) {
	fmt.Fprintf(v.out, format, args...)
}

// listOptions prints the options a Reflector sets, and only those.
func listOptions(o metav1.ListOptions) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	add("resourceVersion", fmt.Sprintf("%q", o.ResourceVersion))
	if o.ResourceVersionMatch != "" {
		add("resourceVersionMatch", string(o.ResourceVersionMatch))
	}
	if o.Limit != 0 {
		add("limit", fmt.Sprint(o.Limit))
	}
	if o.Continue != "" {
		add("continue", "<token>")
	}
	if o.SendInitialEvents != nil {
		add("sendInitialEvents", fmt.Sprint(*o.SendInitialEvents))
	}
	if o.AllowWatchBookmarks {
		add("allowWatchBookmarks", "true")
	}
	if o.TimeoutSeconds != nil {
		add("timeoutSeconds", fmt.Sprint(*o.TimeoutSeconds))
	}
	if o.LabelSelector != "" {
		add("labelSelector", o.LabelSelector)
	}
	return strings.Join(parts, " ")
}

// visibleStore is the Reflector's store: a plain cache.Store that prints each
// change as it lands and remembers which object versions it was given.
type visibleStore struct {
	cache.Store
	out      io.Writer
	ns       string
	replaced chan struct{} // closed at the first Replace: the store is synced
	once     sync.Once
	mu       sync.Mutex
	seen     map[string]bool // name@resourceVersion of every object delivered
}

func newVisibleStore(out io.Writer, ns string) *visibleStore {
	return &visibleStore{
		Store:    cache.NewStore(cache.MetaNamespaceKeyFunc),
		out:      out,
		ns:       ns,
		seen:     map[string]bool{},
		replaced: make(chan struct{}),
	}
}

func (s *visibleStore) Add(obj any) error    { s.print("ADDED  ", obj); return s.Store.Add(obj) }
func (s *visibleStore) Update(obj any) error { s.print("UPDATED", obj); return s.Store.Update(obj) }
func (s *visibleStore) Delete(obj any) error { s.print("DELETED", obj); return s.Store.Delete(obj) }

// Replace is how a LIST (or a WatchList's initial events) lands: the whole
// content at once, with the resourceVersion it is consistent with. A
// change the watch missed (while the API server was down, say) arrives
// here, in a relist, rather than as an event.
func (s *visibleStore) Replace(list []any, rv string) error {
	fmt.Fprintf(s.out, "  store REPLACE: %d objects at resourceVersion %s\n", len(list), rv)
	for _, obj := range list {
		s.record(obj)
	}
	err := s.Store.Replace(list, rv)
	s.once.Do(func() { close(s.replaced) })
	return err
}

func (s *visibleStore) print(what string, obj any) {
	if m := s.record(obj); m != nil {
		fmt.Fprintf(s.out, "  store %s %s resourceVersion %s\n", what, m.GetName(), m.GetResourceVersion())
	}
}

// record remembers that obj, at its resourceVersion, reached the store.
func (s *visibleStore) record(obj any) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	s.seen[m.GetName()+"@"+m.GetResourceVersion()] = true
	s.mu.Unlock()
	return m
}

// saw reports whether name at rv has reached the store, by an event or a
// relist.
func (s *visibleStore) saw(name, rv string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name+"@"+rv]
}

// key is the store key of an object in the demo's namespace.
func (s *visibleStore) key(name string) string { return s.ns + "/" + name }

func (s *visibleStore) synced() bool {
	select {
	case <-s.replaced:
		return true
	default:
		return false
	}
}

// syncWriter serializes the lines of the Reflector's goroutine and ours.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
