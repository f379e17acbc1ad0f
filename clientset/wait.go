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
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// waitForPods waits until exactly want Pods match selector and all of them
// are Running; for want 0, until none is left, terminating ones included.
// It prints the state it waited for, so the output never depends on timing.
// Polling a List is simple and correct; a watch reacts sooner but has to
// handle relists (see the reflector demo).
func waitForPods(ctx context.Context, pods typedcorev1.PodInterface, selector string, want int, timeout time.Duration, w io.Writer) error {
	var have, running int
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		have, running = len(list.Items), 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		return have == want && running == want, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d running pods (%s): have %d, %d running: %w", want, selector, have, running, err)
	}
	if want == 0 {
		fmt.Fprintf(w, "  pods with %s: none left\n", selector)
	} else {
		fmt.Fprintf(w, "  pods with %s: %d running\n", selector, want)
	}
	return nil
}

// waitForReadyReplicas waits until the Deployment's status, which the
// deployment controller writes, says want replicas are ready.
func waitForReadyReplicas(ctx context.Context, deployments typedappsv1.DeploymentInterface, name string, want int32, timeout time.Duration) error {
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == want, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d ready replicas in deployment %s's status: %w", want, name, err)
	}
	return nil
}

// waitForDeploymentGone waits until a Get answers 404 Not Found.
func waitForDeploymentGone(ctx context.Context, deployments typedappsv1.DeploymentInterface, name string, timeout time.Duration) error {
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		_, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("wait for deployment %s to go: %w", name, err)
	}
	return nil
}

// poll calls cond every 250 ms until it reports done, ctx ends or timeout
// passes. A request that failed in a way that may pass (transient) does not
// end the wait: the next poll asks again. Any other error does, at once. On
// a timeout the last transient error is in the message, to say why.
func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		done, err := cond(ctx)
		if err != nil && transient(err) {
			last = err
			return false, nil
		}
		return done, explain(err)
	})
	if err != nil && last != nil && wait.Interrupted(err) {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return err
}

// transient reports whether a failed request may succeed when asked again:
// the server was overloaded (429), timed out, failed inside (500), was
// unavailable (503), or the connection broke or was refused (an API server
// restarting). Forbidden, Unauthorized, BadRequest or NotFound will not
// change by waiting. Our own deadline or Ctrl-C is not transient either: it
// ends the wait. (A LIST in a namespace that does not exist is no error at
// all: the server answers 200 with no items.)
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) ||
		utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err) || utilnet.IsTimeout(err)
}
