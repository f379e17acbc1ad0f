package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

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

func (v *visibleListWatch) listerWatcher() cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			// Count and print under the lock: whoever reads the count
			// afterwards sees the lines already printed.
			v.mu.Lock()
			v.lists++
			what := "LIST"
			if v.lists > 1 || v.watches > 0 {
				what = "LIST (relist: the Reflector starts over)"
			}
			v.printf("%s %s\n", what, listOptions(opts))
			v.printCurl(opts)
			v.mu.Unlock()
			obj, err := v.list(ctx, opts)
			if err != nil {
				v.failed("list", err)
				return nil, err
			}
			items, _ := meta.ExtractList(obj)
			listMeta, _ := meta.ListAccessor(obj)
			v.printf("  -> %d items, list resourceVersion %s, continue token present: %v\n",
				len(items), listMeta.GetResourceVersion(), listMeta.GetContinue() != "")
			return obj, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			v.mu.Lock()
			v.watches++
			what := "WATCH"
			if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
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
			w, err := v.watch(ctx, opts)
			if err != nil {
				v.failed("watch", err)
				return nil, err
			}
			return v.visibleWatch(ctx, w), nil
		},
	}
}

// failed prints an error. Before the first sync it also ends the demo:
// retrying a Forbidden or an unreachable server forever teaches nothing.
func (v *visibleListWatch) failed(call string, err error) {
	v.printf("  -> %s failed: %v\n", call, err)
	if !v.synced() {
		select {
		case v.errs <- fmt.Errorf("%s %s: %w", call, v.resource, explain(err)):
		default:
		}
	}
}

// visibleWatch forwards a watch's events, printing the ones the store never
// sees: bookmarks, errors, and the end of the stream.
func (v *visibleListWatch) visibleWatch(ctx context.Context, w watch.Interface) watch.Interface {
	out := make(chan watch.Event)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for ev := range w.ResultChan() {
			if ctx.Err() != nil { // the Reflector is stopping: what follows is noise
				return
			}
			select {
			case <-done:
				return
			default:
			}
			switch ev.Type {
			case watch.Bookmark:
				m, _ := meta.Accessor(ev.Object)
				if m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
					v.printf("  BOOKMARK resourceVersion %s, annotated %s: the initial state is complete\n", m.GetResourceVersion(), metav1.InitialEventsAnnotationKey)
				} else {
					v.printf("  BOOKMARK resourceVersion %s: no object changed, but the client's resourceVersion moves forward (was %s)\n", m.GetResourceVersion(), v.lastRV())
					select {
					case v.bookmark <- m.GetResourceVersion():
					default:
					}
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					v.printf("  ERROR event: %v (410 Gone: the resourceVersion is too old; the Reflector must relist)\n", err)
				} else {
					v.printf("  ERROR event: %v\n", err)
				}
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
			v.printf("  watch stream ended (server timeout, restart or connection loss); the Reflector will re-watch from resourceVersion %s\n", v.lastRV())
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
// change as it lands.
type visibleStore struct {
	cache.Store
	out      io.Writer
	mu       sync.Mutex
	replaced chan struct{} // closed at the first Replace: the store is synced
	once     sync.Once
	changed  chan struct{} // a tick on every change, for waiting
	ns       string
	seen     map[string]bool // name@resourceVersion of every Add and Update
}

func newVisibleStore(out io.Writer, ns string) *visibleStore {
	return &visibleStore{
		Store:    cache.NewStore(cache.MetaNamespaceKeyFunc),
		out:      out,
		ns:       ns,
		seen:     map[string]bool{},
		replaced: make(chan struct{}),
		changed:  make(chan struct{}, 1),
	}
}

func (s *visibleStore) Add(obj any) error { s.print("ADDED  ", obj); return s.notify(s.Store.Add(obj)) }
func (s *visibleStore) Update(obj any) error {
	s.print("UPDATED", obj)
	return s.notify(s.Store.Update(obj))
}
func (s *visibleStore) Delete(obj any) error {
	s.print("DELETED", obj)
	return s.notify(s.Store.Delete(obj))
}

// Replace is how a List (or a WatchList's initial events) lands: the whole
// content at once, with the resourceVersion it is consistent with.
func (s *visibleStore) Replace(list []any, rv string) error {
	fmt.Fprintf(s.out, "  store REPLACE: %d objects at resourceVersion %s\n", len(list), rv)
	err := s.Store.Replace(list, rv)
	s.once.Do(func() { close(s.replaced) })
	return s.notify(err)
}

func (s *visibleStore) print(what string, obj any) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.seen[m.GetName()+"@"+m.GetResourceVersion()] = true
	s.mu.Unlock()
	fmt.Fprintf(s.out, "  store %s %s resourceVersion %s\n", what, m.GetName(), m.GetResourceVersion())
}

// saw reports whether an event for name at rv has reached the store.
func (s *visibleStore) saw(name, rv string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name+"@"+rv]
}

// key is the store key of an object in the demo's namespace.
func (s *visibleStore) key(name string) string { return s.ns + "/" + name }

func (s *visibleStore) notify(err error) error {
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return err
}

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
