package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	informerscorev1 "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Handlers run on the informer's goroutines, one per handler, and must
// return quickly and never modify what they are given. Ours only describe
// each call and put the line into an eventLog, which the demo prints in a
// fixed order (Step 2) or as it comes (-watch).

// typedHandler gets *corev1.ConfigMap: no type assertions. Its DeleteFunc
// gets a DeletedObject, which says whether the final state is known.
func typedHandler(events *eventLog) informerscorev1.ConfigMapDetailedHandlerFuncs {
	return informerscorev1.ConfigMapDetailedHandlerFuncs{
		AddFunc: func(cm *corev1.ConfigMap, isInInitialList bool) {
			events.add("typed", "AddFunc    %s resourceVersion %s (isInInitialList=%v)", cm.Name, cm.ResourceVersion, isInInitialList)
		},
		UpdateFunc: func(old, cm *corev1.ConfigMap) {
			// A resync calls UpdateFunc with the cached object twice: the
			// same resourceVersion means nothing changed.
			if old.ResourceVersion == cm.ResourceVersion {
				events.resync("typed", cm.Name)
				return
			}
			events.add("typed", "UpdateFunc %s resourceVersion %s, was resourceVersion %s", cm.Name, cm.ResourceVersion, old.ResourceVersion)
		},
		DeleteFunc: func(d informerscorev1.DeletedConfigMap) {
			// GetName works in every case; OptionalObj may be nil.
			if d.FinalStateUnknown == nil {
				events.add("typed", "DeleteFunc %s: OptionalObj at resourceVersion %s, FinalStateUnknown nil (the watch delivered the delete)", d.GetName(), d.OptionalObj.ResourceVersion)
				return
			}
			last := "unknown"
			if d.OptionalObj != nil {
				last = "resourceVersion " + d.OptionalObj.ResourceVersion
			}
			events.add("typed", "DeleteFunc %s: FinalStateUnknown set (key %s): the delete was missed, a relist found the object gone; OptionalObj is the last state seen, %s", d.GetName(), d.GetKey(), last)
		},
	}
}

// classicHandler is the interface{} handler every informer has had: each
// call asserts the type, and DeleteFunc may get a tombstone instead.
func classicHandler(events *eventLog) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				events.add("classic", "AddFunc    %s resourceVersion %s", cm.Name, cm.ResourceVersion)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, ok1 := oldObj.(*corev1.ConfigMap)
			cm, ok2 := newObj.(*corev1.ConfigMap)
			switch {
			case !ok1 || !ok2:
			case old.ResourceVersion == cm.ResourceVersion:
				events.resync("classic", cm.Name)
			default:
				events.add("classic", "UpdateFunc %s resourceVersion %s, was resourceVersion %s", cm.Name, cm.ResourceVersion, old.ResourceVersion)
			}
		},
		DeleteFunc: func(obj any) {
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				events.add("classic", "DeleteFunc *v1.ConfigMap %s resourceVersion %s", o.Name, o.ResourceVersion)
			case cache.DeletedFinalStateUnknown:
				// The informer noticed the delete only in a relist. Obj is
				// the last state it had; the key is all that is certain.
				last := "unknown"
				if cm, ok := o.Obj.(*corev1.ConfigMap); ok {
					last = "resourceVersion " + cm.ResourceVersion
				}
				events.add("classic", "DeleteFunc cache.DeletedFinalStateUnknown key %s, Obj: the last state seen, %s", o.Key, last)
			default:
				events.add("classic", "DeleteFunc unexpected %T", obj)
			}
		},
	}
}

// eventLog collects what the handlers report.
type eventLog struct {
	out     io.Writer
	mu      sync.Mutex
	lines   []handlerLine
	notify  chan struct{}             // signalled at every add
	resyncs map[string]map[string]int // handler -> name -> resync calls
}

type handlerLine struct{ handler, line string }

func newEventLog(out io.Writer) *eventLog {
	return &eventLog{out: out, notify: make(chan struct{}, 1), resyncs: map[string]map[string]int{}}
}

func (l *eventLog) add(handler, format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, handlerLine{handler, fmt.Sprintf(format, args...)})
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *eventLog) resync(handler, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resyncs[handler] == nil {
		l.resyncs[handler] = map[string]int{}
	}
	l.resyncs[handler][name]++
}

// resyncCounts returns a copy of the resync calls so far.
func (l *eventLog) resyncCounts() map[string]map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := map[string]map[string]int{}
	for h, m := range l.resyncs {
		c[h] = map[string]int{}
		for n, v := range m {
			c[h][n] = v
		}
	}
	return c
}

// watchError records a failed LIST or WATCH after the first sync; the
// informer retries it after a back-off.
func (l *eventLog) watchError(err error, synced bool) {
	if synced {
		l.add("informer", "watch error handler: %v (the informer lists or watches again after a back-off)", err)
	}
}

// take waits for n handler lines, then removes and returns them.
func (l *eventLog) take(ctx context.Context, n int) ([]handlerLine, error) {
	timeout := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		if len(l.lines) >= n {
			got := slices.Clone(l.lines[:n])
			l.lines = l.lines[n:]
			l.mu.Unlock()
			return got, nil
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, fmt.Errorf("the handlers reported %d events within 30s, want %d", len(l.lines), n)
		}
	}
}

// print waits for n handler lines and prints them, the typed handler's
// first: the two handlers run concurrently. Each handler's lines keep the
// order in which it was called.
func (l *eventLog) print(ctx context.Context, n int) error {
	return l.printSorted(ctx, n, false)
}

// printInitialList is print for the handlers' calls of the initial list,
// each handler's sorted by name. They come in any order: a WatchList hands
// its result on as temporaryStore.List(), which ranges over a map
// (tools/cache/reflector.go, watchList). Sorting the lines sorts by name:
// they all read "AddFunc    <name> ...".
func (l *eventLog) printInitialList(ctx context.Context, n int) error {
	return l.printSorted(ctx, n, true)
}

func (l *eventLog) printSorted(ctx context.Context, n int, byLine bool) error {
	got, err := l.take(ctx, n)
	if err != nil {
		return err
	}
	slices.SortStableFunc(got, func(a, b handlerLine) int {
		if c := rank(a.handler) - rank(b.handler); c != 0 || !byLine {
			return c
		}
		return strings.Compare(a.line, b.line)
	})
	for _, h := range got {
		fmt.Fprintf(l.out, "  %-7s %s\n", h.handler, h.line)
	}
	return nil
}

func rank(handler string) int { return map[string]int{"typed": 0, "classic": 1}[handler] }

// watchEvents is -watch: print every handler call as it comes, and every
// request the informer makes, until ctx ends (Ctrl-C) or d has passed.
func watchEvents(ctx context.Context, out io.Writer, events *eventLog, requests *requestLog, d time.Duration) error {
	if d > 0 {
		fmt.Fprintf(out, "watching for %s: change the demo's ConfigMaps with kubectl meanwhile\n", d)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	} else {
		fmt.Fprintln(out, "watching until Ctrl-C: change the demo's ConfigMaps with kubectl meanwhile")
	}
	requests.onRequest(func(r *request) { fmt.Fprintf(out, "  request: %s\n", r) })
	defer requests.onRequest(nil)
	for {
		got, err := events.take(ctx, 1)
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintln(out, "stopped watching")
			return nil
		case err != nil: // 30 s without an event: wait on
			continue
		}
		fmt.Fprintf(out, "  %-7s %s\n", got[0].handler, got[0].line)
	}
}

// syncWriter serializes the lines of the informer's goroutines and ours.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
