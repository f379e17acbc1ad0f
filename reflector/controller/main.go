// Command controller is the smallest correct controller: every Deployment
// labelled client-go-demo/expose=true gets a Service of the same name, owned
// by it. Informers fill caches and queue keys, workers take keys from a
// rate-limited workqueue and reconcile, Events record what was done, and
// with -leader-elect only the copy holding a Lease works.
// controller.go holds the controller, script.go the demo's own changes,
// leader.go leader election, scale.go the measurements, cli.go main().
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const demoName = "controller"

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parseArgs(args, stdout) // the flags, below run
	if err != nil {
		return err
	}
	config, ns, err := o.kube.load()
	if err != nil {
		return err
	}
	if o.qps > 0 {
		config.QPS = float32(o.qps)
	}
	if o.burst > 0 {
		config.Burst = o.burst
	}
	// client-go and the controller log through the context's logger
	// (klog.FromContext); the demo prints what matters on stdout, so the
	// log goes to stderr only with -v=1 or more. A real controller keeps it.
	if !klog.V(1).Enabled() {
		ctx = klog.NewContext(ctx, logr.Discard())
	}
	switch {
	case o.scale > 0:
		return measureThroughput(ctx, config, ns, o.scale, o.workers, stdout) // scale.go
	case o.failovers > 0:
		return o.election.measureFailover(ctx, config, ns, o.failovers, stdout) // scale.go
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	out := &syncWriter{w: stdout}

	// Step 1: informers for both kinds from one factory (one watch per
	// kind, however many controllers share it); handlers only queue keys.
	fmt.Fprintf(out, "Step 1: one shared informer factory watches Deployments and Services in namespace %s\n", ns)
	// The resync period re-delivers every cached object as an update
	// (same resourceVersion) to the handlers: a key dropped after
	// -max-retries comes back at the latest then. It is not a relist.
	factory := informers.NewSharedInformerFactoryWithOptions(clientset, o.resync, informers.WithNamespace(ns))
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: clientset.EventsV1()})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, fieldManager)
	ctrl, err := newController(ctx, clientset, factory, recorder, o.maxRetries, out)
	if err != nil {
		return err
	}
	ctrl.reportWrite = o.serve
	if o.failFirst > 0 {
		ctrl.beforeWrite = failFirst(o.failFirst)
	}
	informerCtx, stopInformers := context.WithCancelCause(ctx)
	defer func() { stopInformers(nil); factory.Shutdown() }()
	if err := startInformers(informerCtx, clientset, factory, stopInformers); err != nil {
		return err
	}
	fmt.Fprintf(out, "  caches synced: %d Deployments, %d Services; each became an add event, and each Deployment a key in the queue\n",
		len(factory.Apps().V1().Deployments().Informer().GetStore().ListKeys()), len(factory.Core().V1().Services().Informer().GetStore().ListKeys()))

	// Step 2: the queue holds keys, not objects: a worker reads the
	// current object from the cache when it gets to the key.
	fmt.Fprintf(out, "Step 2: a typed rate-limited workqueue of keys (namespace/name), named %q for its metrics\n", queueName)
	queueBasics(out)

	// Step 3: workers, and Events recorded through the API server.
	fmt.Fprintf(out, "Step 3: %d workers reconcile keys from the queue; Events go to the API server (events.k8s.io)\n", o.workers)
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return fmt.Errorf("start recording events: %w", err)
	}
	controllerCtx, stopController := context.WithCancel(ctx)
	controllerDone := make(chan struct{})
	var controllerErr error
	go func() {
		defer close(controllerDone)
		if !o.leaderElect {
			ctrl.Run(controllerCtx, o.workers)
			return
		}
		controllerErr = o.election.lead(controllerCtx, out, clientset, ns, identity(), func(ctx context.Context) { ctrl.Run(ctx, o.workers) })
	}()
	stop := sync.OnceValue(func() error { stopController(); <-controllerDone; return controllerErr })
	defer func() {
		if serr := stop(); serr != nil && !errors.Is(err, serr) {
			err = errors.Join(err, serr)
		}
	}()

	if o.serve {
		fmt.Fprintf(out, "serving until Ctrl-C; try: kubectl -n %s label deployment NAME %s=true\n", ns, exposeLabel)
		select {
		case <-ctx.Done():
		case <-controllerDone:
		}
		if err := stop(); err != nil {
			return err
		}
		fmt.Fprintf(out, "stopped: the queue drained; writes: %d\n", ctrl.writes.Load())
		return nil
	}

	// Steps 4 to 8: the demo changes things as a user would, and shows
	// what the controller and the garbage collector did (script.go).
	s := &script{out: out, cs: clientset, ns: ns, ctrl: ctrl, stopped: controllerDone, why: stop}
	if err := s.run(ctx); err != nil {
		return err
	}

	// Step 9: ShutDownWithDrain: Get keeps handing out the keys still
	// queued (reconciled with the cancelled ctx, so their requests fail at
	// once) until the queue is empty; Run returns when every key is Done.
	if err := stop(); err != nil {
		return err
	}
	fmt.Fprintf(out, "Step 9: stopped: the queue drained (Len %d), the workers returned; the controller made %d writes\n", ctrl.queue.Len(), ctrl.writes.Load())
	return nil
}

// options are the demo's flags.
type options struct {
	kube                *kubeFlags
	workers, maxRetries int
	resync              time.Duration
	failFirst, burst    int
	scale, failovers    int
	qps                 float64
	serve, leaderElect  bool
	election            election
}

func parseArgs(args []string, stdout io.Writer) (*options, error) {
	fs, kube := newFlagSet()
	o := &options{kube: kube}
	fs.IntVar(&o.workers, "workers", 2, "worker goroutines that take keys from the queue")
	fs.BoolVar(&o.serve, "serve", false, "make no changes: reconcile the namespace's Deployments until Ctrl-C (label one with kubectl)")
	fs.IntVar(&o.failFirst, "fail-first", 0, "make the controller's first N writes fail with 503, to show the retries and their back-off")
	fs.IntVar(&o.maxRetries, "max-retries", 15, "retries of a failing key before it is dropped (15: 5ms doubling, about 164s of back-off in all)")
	fs.DurationVar(&o.resync, "resync", 10*time.Minute, "how often the informers re-deliver every cached object to the handlers, so a dropped key comes back (0: never)")
	fs.Float64Var(&o.qps, "qps", 0, "client-side rate limit in requests per second (default: client-go's, 5)")
	fs.IntVar(&o.burst, "burst", 0, "client-side burst (default: client-go's, 10)")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "work only while this copy holds the Lease demo-controller")
	fs.DurationVar(&o.election.leaseDuration, "lease-duration", 15*time.Second, "with -leader-elect: the leaseDurationSeconds this copy writes into the Lease while it leads; a standby waits that long (the holder's value, not its own flag) after the last change it saw (kube-controller-manager's default)")
	fs.DurationVar(&o.election.renewDeadline, "renew-deadline", 10*time.Second, "with -leader-elect: how long the leader keeps trying to renew before it gives up; less than -lease-duration")
	fs.DurationVar(&o.election.retryPeriod, "retry-period", 2*time.Second, "with -leader-elect: how often each copy tries to acquire or renew")
	fs.IntVar(&o.scale, "scale", 0, "instead: create N labelled Deployments, then time the controller until all N Services exist")
	fs.IntVar(&o.failovers, "measure-failover", 0, "instead: measure N leader failovers, with and without release, at the -lease-duration given")
	if err := parseFlags(fs, args, stdout); err != nil {
		return nil, err
	}
	switch {
	case o.workers < 1:
		return nil, usagef("-workers %d: want at least 1", o.workers)
	case o.failFirst < 0 || o.maxRetries < 0 || o.resync < 0 || o.scale < 0 || o.failovers < 0 || o.qps < 0 || o.burst < 0:
		return nil, usagef("-fail-first, -max-retries, -resync, -qps, -burst, -scale and -measure-failover must not be negative")
	}
	if o.leaderElect || o.failovers > 0 {
		if err := o.election.validate(); err != nil {
			return nil, usagef("%w", err)
		}
	}
	return o, nil
}

// startInformers starts the factory's informers and waits until their
// caches are filled. An informer retries a failed LIST or WATCH for ever;
// before the first sync, any error that transient() (scale.go) does not
// call transient (403, 401, 404, a bad request, ...) ends the run instead,
// with one line. After the first sync, every error is retried, as a
// controller must survive an API server restart.
func startInformers(ctx context.Context, cs kubernetes.Interface, factory informers.SharedInformerFactory, giveUp context.CancelCauseFunc) error {
	// An informer never gives up, and a WatchList retries "connection
	// refused" inside its Reflector, where the handler below does not hear
	// of it (tools/cache/reflector.go, watchList): one request first tells
	// an unreachable server from a slow one.
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cs.Discovery().ServerVersionWithContext(vctx); err != nil {
		return fmt.Errorf("reach the API server: %w", explain(err))
	}
	for what, inf := range map[string]cache.SharedIndexInformer{
		"deployments": factory.Apps().V1().Deployments().Informer(),
		"services":    factory.Core().V1().Services().Informer(),
	} {
		err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			if !inf.HasSynced() && !transient(err) {
				giveUp(fmt.Errorf("list and watch %s: %w", what, explain(err)))
				return
			}
			cache.DefaultWatchErrorHandler(ctx, r, err)
		})
		if err != nil {
			return fmt.Errorf("set the watch error handler: %w", err)
		}
	}
	factory.StartWithContext(ctx)
	if err := factory.WaitForCacheSyncWithContext(ctx).AsError(); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	return nil
}

// queueBasics shows, on a queue of its own, what the controller's queue
// does with keys: what a key added twice, or during its processing,
// becomes, and the back-off of the default rate limiter.
func queueBasics(out io.Writer) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer q.ShutDown()
	q.Add("ns/a")
	q.Add("ns/a")
	q.Add("ns/a")
	fmt.Fprintf(out, "  Add(\"ns/a\") three times: Len() = %d; a key waiting in the queue is there once\n", q.Len())
	key, _ := q.Get()
	q.Add(key)
	fmt.Fprintf(out, "  Get() gives it to a worker; Add(\"ns/a\") meanwhile: Len() = %d, no other worker can get it\n", q.Len())
	q.Done(key)
	fmt.Fprintf(out, "  Done(\"ns/a\"): Len() = %d, the key comes back once for the change made meanwhile\n", q.Len())
	limiter := workqueue.DefaultTypedControllerRateLimiter[string]()
	var delays []time.Duration
	for range 5 {
		delays = append(delays, limiter.When("ns/a"))
	}
	fmt.Fprintf(out, "  AddRateLimited(key) after each failure waits %v (per key, up to 1000s); Forget(key) starts it over\n", delays)
}

// syncWriter serializes writes: the workers and the demo print at once.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
