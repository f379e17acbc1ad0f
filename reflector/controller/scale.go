package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/flowcontrol"
)

// measureThroughput creates n labelled Deployments (replicas 0) with a fast
// client, then starts a controller with the client-side rate limit of
// config (client-go's 5 QPS and burst 10 unless -qps and -burst) and times
// it from the start of its workers until all n Services exist. The
// Deployments are deleted with one DeleteCollection at the end, and the
// garbage collector deletes the Services.
func measureThroughput(ctx context.Context, config *rest.Config, ns string, n, workers int, out io.Writer) (err error) {
	fast := rest.CopyConfig(config)
	fast.QPS, fast.Burst = 1000, 1000
	fastCS, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	deployments := fastCS.AppsV1().Deployments(ns)
	scaleLabel := partOf + ",app.kubernetes.io/name=controller-scale"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		start := time.Now()
		// One DeleteCollection deletes them one by one on the server and
		// may outlast its request timeout (60 s) on a busy machine: then
		// it is sent again for what is left.
		var derr error
		for range 5 {
			if derr = deployments.DeleteCollection(cctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: scaleLabel}); derr == nil {
				break
			}
		}
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("delete the Deployments: %w", explain(derr)))
			return
		}
		// The garbage collector deletes the Services, in the background.
		werr := wait.PollUntilContextCancel(cctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			list, err := fastCS.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: partOf})
			return err == nil && len(list.Items) == 0, nil
		})
		if werr != nil {
			err = errors.Join(err, fmt.Errorf("wait for the garbage collector: %w", werr))
			return
		}
		fmt.Fprintf(out, "deleted the %d Deployments with one DeleteCollection; the garbage collector deleted their Services; %s in all\n", n, time.Since(start).Round(time.Second))
	}()

	start := time.Now()
	if err := createDeployments(ctx, fastCS, ns, n); err != nil {
		return err
	}
	fmt.Fprintf(out, "created %d labelled Deployments (replicas 0) in namespace %s in %s (16 goroutines, QPS 1000)\n", n, ns, time.Since(start).Round(100*time.Millisecond))

	// The controller's client: the rate limit as configured, measured.
	cfg := rest.CopyConfig(config)
	qps, burst := cfg.QPS, cfg.Burst
	if qps == 0 {
		qps = rest.DefaultQPS
	}
	if burst == 0 {
		burst = rest.DefaultBurst
	}
	meter := &throttleMeter{RateLimiter: flowcontrol.NewTokenBucketRateLimiter(qps, burst)}
	cfg.RateLimiter = meter
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	defer broadcaster.Shutdown()
	ctrl, err := newController(ctx, cs, factory, broadcaster.NewRecorder(scheme.Scheme, fieldManager), 5, out)
	if err != nil {
		return err
	}
	informerCtx, stopInformers := context.WithCancelCause(ctx)
	defer func() { stopInformers(nil); factory.Shutdown() }()
	if err := startInformers(informerCtx, cs, factory, stopInformers); err != nil {
		return err
	}
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return fmt.Errorf("start recording events: %w", err)
	}
	requestsBefore, waitedBefore := meter.requests.Load(), meter.waited.Load()
	controllerCtx, stopController := context.WithCancel(ctx)
	done := make(chan struct{})
	start = time.Now()
	go func() { defer close(done); ctrl.Run(controllerCtx, workers) }()
	defer func() { stopController(); <-done }()
	err = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(context.Context) (bool, error) {
		svcs, err := ctrl.services.Services(ns).List(labels.Everything())
		return err == nil && len(svcs) >= n, nil
	})
	took := time.Since(start)
	if err != nil {
		return err
	}
	requests := meter.requests.Load() - requestsBefore
	waited := time.Duration(meter.waited.Load() - waitedBefore)
	fmt.Fprintf(out, "workers %d, client QPS %v burst %d: all %d Services in %s (%.1f per second); %d requests (applies and Events), which waited %s in all in the client-side rate limiter\n",
		workers, qps, burst, n, took.Round(10*time.Millisecond), float64(n)/took.Seconds(), requests, waited.Round(10*time.Millisecond))
	return nil
}

// throttleMeter is client-go's token bucket, measuring how long requests
// wait in it: rest.Request calls Wait before each request.
type throttleMeter struct {
	flowcontrol.RateLimiter
	requests atomic.Int64
	waited   atomic.Int64 // nanoseconds
}

func (m *throttleMeter) Wait(ctx context.Context) error {
	start := time.Now()
	err := m.RateLimiter.Wait(ctx)
	m.waited.Add(int64(time.Since(start)))
	m.requests.Add(1)
	return err
}

func createDeployments(ctx context.Context, cs kubernetes.Interface, ns string, n int) error {
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				d := newDeployment()
				// Each its own selector: Deployments whose selectors
				// overlap fight over Pods.
				sel := map[string]string{"app.kubernetes.io/name": "controller-scale", "app.kubernetes.io/instance": "scale-" + strconv.Itoa(i)}
				d.Labels["app.kubernetes.io/name"] = "controller-scale"
				d.Spec.Selector.MatchLabels, d.Spec.Template.Labels = sel, sel
				if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- fmt.Errorf("create deployment %d: %w", i, explain(err)):
					default:
					}
					return
				}
			}
		})
	}
	var err error
loop:
	for i := range n {
		select {
		case work <- i:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// measureFailover runs two electors, a and b, for the Lease
// demo-controller-failover. Once a leads and b waits, it stops a, either
// as Ctrl-C does (ReleaseOnCancel) or as a crash would (no release), and
// times until b leads. rounds times each; it prints each time.
func (e election) measureFailover(ctx context.Context, config *rest.Config, ns string, rounds int, out io.Writer) error {
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	const name = leaseName + "-failover"
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_ = cs.CoordinationV1().Leases(ns).Delete(cctx, name, metav1.DeleteOptions{})
	}()
	fmt.Fprintf(out, "lease duration %s, renew deadline %s, retry period %s\n", e.leaseDuration, e.renewDeadline, e.retryPeriod)
	for _, release := range []bool{true, false} {
		var times []time.Duration
		for range rounds {
			d, err := e.failoverOnce(ctx, cs, ns, name, release)
			if err != nil {
				return err
			}
			times = append(times, d)
		}
		slices.Sort(times)
		how := "leader stopped with release (Ctrl-C)"
		if !release {
			how = "leader stopped without release (a crash)"
		}
		fmt.Fprintf(out, "%-42s the other leads after %v (median %s)\n", how+":", roundAll(times), times[len(times)/2].Round(10*time.Millisecond))
	}
	return nil
}

func roundAll(ds []time.Duration) []time.Duration {
	r := make([]time.Duration, len(ds))
	for i, d := range ds {
		r[i] = d.Round(10 * time.Millisecond)
	}
	return r
}

func (e election) failoverOnce(ctx context.Context, cs kubernetes.Interface, ns, name string, release bool) (time.Duration, error) {
	// A fresh Lease each round: a crashed leader's would make the next
	// round wait.
	cctx, cancel := cleanupContext(ctx)
	err := cs.CoordinationV1().Leases(ns).Delete(cctx, name, metav1.DeleteOptions{})
	cancel()
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("delete lease %s: %w", name, explain(err))
	}
	type candidate struct {
		ctx      context.Context
		stop     context.CancelFunc
		leading  chan time.Time
		sawOther chan struct{}
		done     chan struct{}
	}
	start := func(id string, releaseOnCancel bool) (*candidate, error) {
		c := &candidate{leading: make(chan time.Time, 1), sawOther: make(chan struct{}), done: make(chan struct{})}
		c.ctx, c.stop = context.WithCancel(ctx)
		var once sync.Once
		cfg := e.config(&resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: ns},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
			Labels:     map[string]string{partOfKey: partOfValue},
		}, leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { c.leading <- time.Now() },
			OnStoppedLeading: func() {},
			OnNewLeader: func(holder string) {
				if holder != id {
					once.Do(func() { close(c.sawOther) })
				}
			},
		})
		cfg.ReleaseOnCancel = releaseOnCancel
		le, err := leaderelection.NewLeaderElector(cfg)
		if err != nil {
			return nil, err
		}
		go func() { defer close(c.done); le.Run(c.ctx) }()
		return c, nil
	}
	a, err := start("a", release)
	if err != nil {
		return 0, err
	}
	defer func() { a.stop(); <-a.done }()
	select {
	case <-a.leading:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	b, err := start("b", true)
	if err != nil {
		return 0, err
	}
	defer func() { b.stop(); <-b.done }()
	select {
	case <-b.sawOther:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	stopped := time.Now()
	a.stop()
	<-a.done
	select {
	case t := <-b.leading:
		return t.Sub(stopped), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// transient reports the errors that retrying may cure: the server is busy,
// restarting or slow (5xx, 429, timeouts).
func transient(err error) bool {
	var netErr net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		errors.As(err, &netErr) && netErr.Timeout()
}
