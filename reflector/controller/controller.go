package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	metav1apply "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/informers"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const (
	// exposeLabel=true on a Deployment asks for a Service.
	exposeLabel = "client-go-demo/expose"
	// fieldManager owns the Service's fields we apply; it also names the
	// Events' reporting controller.
	fieldManager = "client-go-demo-controller"
	// queueName names the workqueue's metrics (workqueue_depth{name=...}),
	// if the program registered a metrics provider (workqueue.SetProvider)
	// before creating the queue: it applies only to queues created after
	// it (util/workqueue/metrics.go).
	queueName = "demo-controller"
)

// Controller keeps one Service per labelled Deployment. It reads only from
// its informers' caches (listers) and writes with the clientset.
type Controller struct {
	clientset   kubernetes.Interface
	deployments appslisters.DeploymentLister
	services    corelisters.ServiceLister
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
	recorder    events.EventRecorder
	maxRetries  int

	out         io.Writer    // retries, drops and (with reportWrites) every write
	reportWrite bool         // -serve: print each write as it happens
	beforeWrite func() error // -fail-first: a write fails when this returns an error
	writes      atomic.Int64 // successful writes, for the demo's checks
	failedAt    sync.Map     // key -> time of its last failure, to show the back-off
	dropped     chan error   // keys given up on, for the scripted run
}

// newController registers the handlers on the factory's informers; the
// caller starts the factory after this, then calls Run.
func newController(ctx context.Context, cs kubernetes.Interface, factory informers.SharedInformerFactory, recorder events.EventRecorder, maxRetries int, out io.Writer) (*Controller, error) {
	deployments := factory.Apps().V1().Deployments()
	services := factory.Core().V1().Services()
	c := &Controller{
		clientset:   cs,
		deployments: deployments.Lister(),
		services:    services.Lister(),
		synced:      []cache.InformerSynced{deployments.Informer().HasSynced, services.Informer().HasSynced},
		// Per key: 5 ms after the first failure, doubling up to 1000 s;
		// overall: 10 retries a second, bursts of 100 (both limits come
		// from DefaultTypedControllerRateLimiter, default_rate_limiters.go).
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: queueName}),
		recorder:   recorder,
		maxRetries: maxRetries,
		out:        out,
		dropped:    make(chan error, 1),
	}
	logger := klog.FromContext(ctx)
	// Each handler gets its own goroutine and an unbounded buffer of
	// notifications (processorListener, shared_informer.go): a slow handler
	// delays only itself, but its buffer grows. These only put keys into
	// the queue. Typed handlers (client-go v0.37) need no type assertions.
	_, err := deployments.TypedInformer().AddTypedEventHandler(appsinformers.DeploymentHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur *appsv1.Deployment) {
			// kube-controller-manager writes a Deployment's status and
			// annotations often; only its spec (generation) and labels
			// matter here. Equal resourceVersions mean a resync (-resync):
			// it lets through a key that was dropped after -max-retries.
			if old.ResourceVersion == cur.ResourceVersion || old.Generation != cur.Generation || !maps.Equal(old.Labels, cur.Labels) {
				c.enqueue(cur)
			}
		},
		// No DeleteFunc: when a Deployment goes, the garbage collector
		// deletes its Service (ownerReference); nothing is left to do.
	}, cache.HandlerOptions{Logger: &logger})
	if err != nil {
		return nil, fmt.Errorf("add deployment handler: %w", err)
	}
	// Any change to a Service (a hand edit, a delete, its ownerReference
	// removed) queues the Deployment of the same name: the names match by
	// design, so no owner lookup is needed, and a Deployment whose name was
	// taken by a foreign Service gets its own once that one is deleted.
	_, err = services.TypedInformer().AddTypedEventHandler(coreinformers.ServiceHandlerFuncs{
		AddFunc:    func(svc *corev1.Service) { c.queue.Add(svc.Namespace + "/" + svc.Name) },
		UpdateFunc: func(_, cur *corev1.Service) { c.queue.Add(cur.Namespace + "/" + cur.Name) },
		DeleteFunc: func(d cache.DeletedObject[*corev1.Service]) {
			// OptionalObj is the last copy the cache had (for a delete
			// found on relist too) and is nil only if the cache never had
			// one; the key works in every case (tools/cache/controller.go).
			c.queue.Add(d.GetKey())
		},
	}, cache.HandlerOptions{Logger: &logger})
	if err != nil {
		return nil, fmt.Errorf("add service handler: %w", err)
	}
	return c, nil
}

// enqueue adds the Deployment's key, "namespace/name". A key already
// waiting in the queue is not added twice.
func (c *Controller) enqueue(d *appsv1.Deployment) {
	key, err := cache.MetaNamespaceKeyFunc(d)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// Run waits for the caches to sync, starts workers goroutines and blocks
// until ctx ends; then it shuts the queue down with ShutDownWithDrain and
// waits for the workers. A worker that read an unsynced cache would delete
// or recreate Services that exist, so Run returns early if ctx ends first.
//
// ShutDownWithDrain does not drop the keys still waiting: Get keeps handing
// them out until the queue is empty, and they are reconciled with the
// cancelled ctx (their requests fail at once and are not retried). It
// waits until every key handed out is Done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrashWithContext(ctx)
	defer c.queue.ShutDown()
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced...) {
		return
	}
	var wg sync.WaitGroup
	for range workers {
		// runWorker returns only once the queue has shut down. A panic in
		// it is not recovered: HandleCrashWithContext logs it and panics
		// again (runtime.ReallyCrash, util/runtime/runtime.go), so the
		// process exits and its supervisor restarts it.
		wg.Go(func() { wait.UntilWithContext(ctx, c.runWorker, time.Second) })
	}
	<-ctx.Done()
	c.queue.ShutDownWithDrain()
	wg.Wait()
}

func (c *Controller) runWorker(ctx context.Context) {
	for c.processNextWorkItem(ctx) {
	}
}

// processNextWorkItem takes one key, reconciles it, and decides its fate:
// Forget on success, AddRateLimited (back-off) on failure, drop after
// maxRetries. The queue never gives one key to two workers at once.
func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if t, ok := c.failedAt.LoadAndDelete(key); ok {
		c.printf("  %s: retry %d, %s after the failure\n", key, c.queue.NumRequeues(key), time.Since(t.(time.Time)).Round(time.Millisecond))
	}
	err := c.reconcile(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key) // reset its back-off
	case ctx.Err() != nil:
		// Shutting down: the request failed because ctx ended.
	case c.queue.NumRequeues(key) < c.maxRetries:
		// A transient error, a conflict (our cache was behind the server;
		// the next attempt reads a newer copy) or anything else: retry
		// after the key's back-off.
		n := c.queue.NumRequeues(key)
		c.printf("  reconcile %s failed: %v; AddRateLimited: back-off %s (NumRequeues %d)\n", key, err, backOff(n), n)
		c.failedAt.Store(key, time.Now())
		c.queue.AddRateLimited(key)
	default:
		c.queue.Forget(key)
		err = fmt.Errorf("reconcile %s: gave up after %d retries: %w", key, c.maxRetries, err)
		utilruntime.HandleErrorWithContext(ctx, err, "Dropping key from the queue", "key", key)
		c.printf("  %v; dropped until the Deployment or its Service changes, or the next resync\n", err)
		select {
		case c.dropped <- err:
		default:
		}
	}
	return true
}

// reconcile makes the world match one Deployment: a labelled Deployment has
// its Service, an unlabelled one none. It reads only from the caches, never
// modifies a cached object, and is idempotent: when the Service is already
// right it makes no request.
func (c *Controller) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Invalid key", "key", key)
		return nil // retrying cannot fix a malformed key
	}
	d, err := c.deployments.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // deleted: the garbage collector removes its Service
	}
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		svc, err = nil, nil
	}
	if err != nil {
		return err
	}
	if svc != nil && !metav1.IsControlledBy(svc, d) {
		c.recorder.Eventf(d, nil, corev1.EventTypeWarning, "ServiceNotOurs", "Reconcile",
			"Service %s exists and is not controlled by this Deployment; leaving it alone", name)
		return fmt.Errorf("service %s exists and is not controlled by deployment %s", name, name)
	}
	if d.DeletionTimestamp != nil {
		return nil // being deleted: the garbage collector takes care
	}
	if d.Labels[exposeLabel] != "true" {
		if svc == nil {
			return nil
		}
		return c.deleteService(ctx, d, svc)
	}
	if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
		// A Deployment's name is a DNS-1123 subdomain (web.v2); a
		// Service's must be a DNS-1035 label.
		c.recorder.Eventf(d, nil, corev1.EventTypeWarning, "CannotExpose", "Reconcile",
			"the name %s cannot name a Service: %s", name, strings.Join(errs, "; "))
		return nil // retrying cannot help
	}
	want, err := serviceFor(d)
	if err != nil {
		c.recorder.Eventf(d, nil, corev1.EventTypeWarning, "CannotExpose", "Reconcile", "%v", err)
		return nil // retrying cannot help; a change to the Deployment requeues it
	}
	if svc != nil {
		// What we applied last time, as the server keeps it: the fields
		// our field manager owns, with their current values. Equal means
		// nothing to do; a field someone else changed is missing here.
		have, err := corev1apply.ExtractService(svc, fieldManager)
		if err == nil && equality.Semantic.DeepEqual(have, want) {
			return nil
		}
	}
	if err := c.write(); err != nil {
		return fmt.Errorf("apply service %s: %w", name, err)
	}
	// Server-side apply: we send only the fields we care about, and the
	// server merges them. Force takes back a field another manager changed
	// (kubectl edit, say); fields only others set stay as they are.
	applied, err := c.clientset.CoreV1().Services(ns).Apply(ctx, want, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply service %s: %w", name, explain(err))
	}
	c.writes.Add(1)
	reason, verb := "ServiceCreated", "created"
	if svc != nil {
		reason, verb = "ServiceUpdated", "put back"
	}
	c.recorder.Eventf(d, nil, corev1.EventTypeNormal, reason, "Apply", "%s Service %s (%s)", verb, name, describePorts(applied))
	if c.reportWrite {
		c.printf("  controller: %s Service %s/%s (%s)\n", verb, ns, name, describePorts(applied))
	}
	return nil
}

// deleteService deletes the Service of a Deployment that lost its label.
// The preconditions make the server refuse (409 Conflict) if the Service
// is no longer the one we looked at: replaced (UID) or changed since
// (resourceVersion), by a hand that may have taken it over. The retry then
// decides again from a newer copy.
func (c *Controller) deleteService(ctx context.Context, d *appsv1.Deployment, svc *corev1.Service) error {
	if err := c.write(); err != nil {
		return fmt.Errorf("delete service %s: %w", svc.Name, err)
	}
	err := c.clientset.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &svc.UID, ResourceVersion: &svc.ResourceVersion},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete service %s: %w", svc.Name, explain(err))
	}
	c.writes.Add(1)
	c.recorder.Eventf(d, nil, corev1.EventTypeNormal, "ServiceDeleted", "Delete",
		"deleted Service %s: the Deployment no longer has the label %s=true", svc.Name, exposeLabel)
	if c.reportWrite {
		c.printf("  controller: deleted Service %s/%s\n", svc.Namespace, svc.Name)
	}
	return nil
}

// serviceFor is the Service a Deployment should have, as an apply
// configuration: the fields we own, nothing else. It names every field it
// sets, even those the server would default (protocol), so that what we
// own is exactly what we compare.
func serviceFor(d *appsv1.Deployment) (*corev1apply.ServiceApplyConfiguration, error) {
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchExpressions) > 0 || len(d.Spec.Selector.MatchLabels) == 0 {
		return nil, errors.New("a Service selects by labels only: the Deployment's selector needs matchLabels and no matchExpressions")
	}
	var ports []*corev1apply.ServicePortApplyConfiguration
	for _, ctr := range d.Spec.Template.Spec.Containers {
		for _, p := range ctr.Ports {
			protocol := p.Protocol
			if protocol == "" {
				protocol = corev1.ProtocolTCP
			}
			name, target := p.Name, intstr.FromString(p.Name)
			if name == "" {
				name, target = fmt.Sprintf("%s-%d", strings.ToLower(string(protocol)), p.ContainerPort), intstr.FromInt32(p.ContainerPort)
			}
			ports = append(ports, corev1apply.ServicePort().WithName(name).WithProtocol(protocol).
				WithPort(p.ContainerPort).WithTargetPort(target))
		}
	}
	if len(ports) == 0 {
		return nil, errors.New("no container declares a port: nothing to expose")
	}
	return corev1apply.Service(d.Name, d.Namespace).
		WithLabels(map[string]string{partOfKey: partOfValue}).
		WithOwnerReferences(metav1apply.OwnerReference().
			WithAPIVersion("apps/v1").WithKind("Deployment").WithName(d.Name).WithUID(d.UID).
			WithController(true).WithBlockOwnerDeletion(true)).
		WithSpec(corev1apply.ServiceSpec().
			WithSelector(maps.Clone(d.Spec.Selector.MatchLabels)).
			WithPorts(ports...)), nil
}

// backOff is the delay DefaultTypedControllerRateLimiter gives a key after
// n requeues: its per-key part, 5 ms doubling (default_rate_limiters.go);
// its overall part, a bucket of 100 at 10 per second, adds nothing here.
func backOff(n int) time.Duration {
	return min(5*time.Millisecond<<n, 1000*time.Second)
}

// write is called before each write; -fail-first makes it fail.
func (c *Controller) write() error {
	if c.beforeWrite == nil {
		return nil
	}
	return c.beforeWrite()
}

func (c *Controller) printf(format string, args ...any) {
	if c.out != nil {
		fmt.Fprintf(c.out, format, args...)
	}
}

// describePorts prints a Service's ports as "http 8080/TCP -> http".
func describePorts(svc *corev1.Service) string {
	var s []string
	for _, p := range svc.Spec.Ports {
		s = append(s, fmt.Sprintf("%s %d/%s -> %s", p.Name, p.Port, p.Protocol, p.TargetPort.String()))
	}
	return "ports " + strings.Join(s, ", ")
}

// describeSelector prints a label map as k=v,k=v, sorted.
func describeSelector(m map[string]string) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s = append(s, k+"="+m[k])
	}
	return strings.Join(s, ",")
}

// failFirst returns a beforeWrite hook that fails the first n writes with
// a 503, as an overloaded API server would.
func failFirst(n int) func() error {
	var count atomic.Int64
	return func() error {
		if count.Add(1) <= int64(n) {
			return apierrors.NewServiceUnavailable(fmt.Sprintf("write %d of the first %d fails (-fail-first)", count.Load(), n))
		}
		return nil
	}
}
