package main

import (
	"context"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// requestTimeout bounds a single request that must not hang: the first
// contact with the server, and each attempt of a poll. The rest.Config has
// no Timeout, because that would cut watches too (see load in cli.go).
// Connection refused fails at once anyway; a server that drops packets
// would otherwise keep us for client-go's 30 s dial timeout.
const requestTimeout = 10 * time.Second

// serverVersion asks for /version, bounded by requestTimeout.
func serverVersion(ctx context.Context, disco *discovery.DiscoveryClient) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, err := disco.ServerVersionWithContext(ctx)
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// transient reports whether err may go away by itself, so a wait should
// try again: the server is busy, restarting or slow (429, 5xx, timeouts),
// or the connection failed. Forbidden, Invalid, NotFound and the like stay.
func transient(err error) bool {
	switch {
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return true
	}
	return utilnet.IsTimeout(err) || utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) ||
		utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err)
}

// poll calls cond every 200 ms, each call bounded by requestTimeout, until
// it returns true, timeout passes or ctx ends. A transient error is
// remembered and polling goes on; any other error ends the wait. Five
// requests a second is client-go's default client-side limit (rest.DefaultQPS):
// polling faster would only queue in the client's rate limiter.
func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		done, err := cond(ctx)
		if err != nil && transient(err) {
			last = err
			return false, nil
		}
		return done, err
	})
	if wait.Interrupted(err) && last != nil {
		return fmt.Errorf("%w (last error: %w)", err, last)
	}
	return err
}

// deleteAndWait deletes one object and waits until a Get says NotFound:
// finalizers keep an object for a while after the Delete (a CRD's removes
// its custom objects first). It runs deferred, so it uses cleanupContext:
// a Ctrl-C that cancelled ctx must not stop the cleanup.
func deleteAndWait(ctx context.Context, stdout io.Writer, r dynamic.ResourceInterface, kind, name string) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	err := retry.OnError(retry.DefaultBackoff, transient, func() error {
		return r.Delete(ctx, name, metav1.DeleteOptions{})
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, explain(err))
	}
	deadline, _ := ctx.Deadline() // cleanupContext has one
	err = poll(ctx, time.Until(deadline), func(ctx context.Context) (bool, error) {
		_, err := r.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("wait until %s %s is gone: %w", kind, name, explain(err))
	}
	fmt.Fprintf(stdout, "  %s %s is gone\n", kind, name)
	return nil
}
