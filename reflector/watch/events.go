package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// next returns the next event of w, or nil once its channel has closed. It
// gives up after limit: a demo must not hang on a stream that stays open.
func next(ctx context.Context, w watch.Interface, limit time.Duration) (*watch.Event, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			return nil, nil
		}
		return &ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("no event and no end of the watch within %s", limit)
	}
}

// expect prints the events of w until the one of type typ for name, and
// returns its resourceVersion. An ERROR event or the end of the stream
// before it is an error.
func expect(ctx context.Context, out io.Writer, w watch.Interface, typ watch.EventType, name string) (string, error) {
	for {
		ev, err := next(ctx, w, 30*time.Second)
		if err != nil {
			return "", fmt.Errorf("wait for the %s event of %s: %w", typ, name, err)
		}
		if ev == nil {
			return "", fmt.Errorf("the watch ended before the %s event of %s arrived (a longer -timeout helps on a slow server)", typ, name)
		}
		printEvent(out, *ev)
		if ev.Type == watch.Error {
			return "", fmt.Errorf("watch: %w", explain(apierrors.FromObject(ev.Object)))
		}
		if m, err := meta.Accessor(ev.Object); err == nil && ev.Type == typ && m.GetName() == name {
			return m.GetResourceVersion(), nil
		}
	}
}

// untilClosed prints the events of w, if any come, until its channel
// closes.
func untilClosed(ctx context.Context, out io.Writer, w watch.Interface, limit time.Duration) error {
	for {
		ev, err := next(ctx, w, limit)
		if err != nil {
			return fmt.Errorf("wait for the watch to end: %w", err)
		}
		if ev == nil {
			return nil
		}
		printEvent(out, *ev)
	}
}

// printEvent prints an event as it arrived. An ERROR event carries a
// *metav1.Status, which apierrors.FromObject turns into an error that
// apierrors.IsResourceExpired and friends understand. Its message names
// resourceVersions that change from run to run, so the demo prints the code
// and reason only.
func printEvent(out io.Writer, ev watch.Event) {
	if ev.Type == watch.Error {
		var status metav1.Status
		var statusErr apierrors.APIStatus
		if errors.As(apierrors.FromObject(ev.Object), &statusErr) {
			status = statusErr.Status()
		}
		fmt.Fprintf(out, "  ERROR    a %T, code %d, reason %s: apierrors.IsResourceExpired %v\n",
			ev.Object, status.Code, status.Reason, apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)))
		return
	}
	m, err := meta.Accessor(ev.Object)
	if err != nil {
		fmt.Fprintf(out, "  %-8s a %T\n", ev.Type, ev.Object)
		return
	}
	fmt.Fprintf(out, "  %-8s %s resourceVersion %s\n", ev.Type, m.GetName(), m.GetResourceVersion())
}
