// Command clientset shows the typed Clientset on the nginx Deployment of our
// notes: create, get, list, optimistic concurrency, server-side apply and
// deletion with garbage collection. run() follows the README's steps; Step 5
// is in apply.go, the waits in wait.go, main() and the flags in cli.go. The
// -show topics (selectors, patches, subresources) are in topics.go and the
// files it names.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	demoName     = "clientset"
	fieldManager = "demo-" + demoName // our writes, as managedFields names them
	// requestTimeout bounds each request outside the waits (those end with
	// -pod-timeout). The config has no Timeout (it would cut watches; see
	// cli.go), so without a deadline a server that accepts the connection
	// and never answers would hold a request forever.
	requestTimeout = 30 * time.Second
	// instanceKey labels the objects of one run; a selector with it
	// matches nothing of another run.
	instanceKey = "app.kubernetes.io/instance"
)

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs, kube := newFlagSet()
	podTimeout := fs.Duration("pod-timeout", 3*time.Minute, "how long each wait for Pods may take (image pulls on a real cluster take a while)")
	show := fs.String("show", "", "instead of Steps 2-6, show one topic: selectors, patches or subresources")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *podTimeout <= 0 {
		return usagef("-pod-timeout %s: want a positive duration", *podTimeout)
	}
	topic, ok := topics[*show]
	if *show != "" && !ok {
		return usagef("-show %q: want selectors, patches or subresources", *show)
	}
	config, ns, err := kube.load()
	if err != nil {
		return err
	}

	// Step 1: one per program. It is safe for concurrent use, and its typed
	// clients share one HTTP transport, so one pool of connections.
	fmt.Fprintln(stdout, "Step 1: build the clientset with kubernetes.NewForConfig")
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	// The method chain is the Group/Version/Resource: AppsV1() is group apps,
	// version v1, and Deployments(ns) the resource in one namespace.
	deployments := clientset.AppsV1().Deployments(ns)
	fmt.Fprintf(stdout, "  clientset.AppsV1().Deployments(%q) -> group apps, version v1, resource deployments\n", ns)
	fmt.Fprintf(stdout, "  -> %s/apis/apps/v1/namespaces/%s/deployments\n", config.Host, ns)
	if topic != nil {
		return topic(ctx, clientset, ns, *podTimeout, stdout) // -show: topics.go
	}

	// Step 2: GenerateName lets the server pick a unique name, so runs never
	// collide; the object that comes back is what the server stored.
	fmt.Fprintln(stdout, "Step 2: create the nginx Deployment, then get it back")
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	created, err := deployments.Create(rctx, nginxDeployment(), metav1.CreateOptions{FieldManager: fieldManager})
	cancel()
	if err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	name := created.Name
	// Deleted on every way out, Ctrl-C included (ctx may be cancelled by
	// then); Step 6 deletes it on the way that succeeds.
	defer func() {
		ctx, cancel := cleanupContext(ctx)
		defer cancel()
		derr := deployments.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if derr != nil && !apierrors.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("delete deployment %s: %w", name, explain(derr)))
		}
	}()
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	got, err := deployments.Get(rctx, name, metav1.GetOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("get deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  created %s: resourceVersion %s, generation %d, uid %s\n", created.Name, created.ResourceVersion, created.Generation, created.UID)
	fmt.Fprintf(stdout, "  got it back: resourceVersion %s (the controllers may have written it since)\n", got.ResourceVersion)

	// Step 3: a label selector is how to find what a program made; the
	// Deployment's own selector finds the Pods that its ReplicaSet made.
	fmt.Fprintln(stdout, "Step 3: list Deployments by label, then wait for the Pods it produces")
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	list, err := deployments.List(rctx, metav1.ListOptions{LabelSelector: partOf})
	cancel()
	if err != nil {
		return fmt.Errorf("list deployments: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  %d deployment(s) with label %s, list resourceVersion %s\n", len(list.Items), partOf, list.ResourceVersion)
	pods := clientset.CoreV1().Pods(ns)
	selector := metav1.FormatLabelSelector(got.Spec.Selector)
	if err := waitForPods(ctx, pods, selector, 3, *podTimeout, stdout); err != nil {
		return err
	}

	// Step 4: every write carries the resourceVersion it was based on, and
	// the deployment controller writes the status (3 ready) after Create
	// returned `stale`, so the server refuses to let our old copy overwrite
	// it. (Get's copy can already hold that status on a busy machine.) The
	// Pods run before that write, so wait for it rather than race it.
	stale := created
	fmt.Fprintln(stdout, "Step 4: an update from a stale read gets 409 Conflict; RetryOnConflict scales 3 -> 1")
	if err := waitForReadyReplicas(ctx, deployments, name, 3, *podTimeout); err != nil {
		return err
	}
	stale.Spec.Replicas = ptr.To[int32](1)
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	_, err = deployments.Update(rctx, stale, metav1.UpdateOptions{FieldManager: fieldManager})
	cancel()
	switch {
	case err == nil:
		return fmt.Errorf("update with stale resourceVersion %s succeeded: nothing else wrote the Deployment since we read it", stale.ResourceVersion)
	case !apierrors.IsConflict(err):
		return fmt.Errorf("update with stale resourceVersion %s: %w", stale.ResourceVersion, explain(err))
	}
	fmt.Fprintf(stdout, "  update with resourceVersion %s: %v\n", stale.ResourceVersion, err)
	// The fix: read, modify, write, and on a Conflict all of it again from a
	// fresh read. RetryOnConflict retries Conflicts only; DefaultBackoff
	// (4 attempts, 10/50/250 ms apart) is util/retry's choice for an object a
	// controller is busy writing too.
	attempts := 0
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		attempts++
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Replicas = ptr.To[int32](1)
		_, err = deployments.Update(ctx, d, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("scale deployment %s: still conflicting after %d attempts (someone else keeps writing it): %w", name, attempts, err)
	}
	if err != nil {
		return fmt.Errorf("scale deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  scaled to 1 replica (attempts: %d)\n", attempts)
	if err := waitForPods(ctx, pods, selector, 1, *podTimeout, stdout); err != nil {
		return err
	}

	// Step 5: an apply sends intent, not a whole object, and the server
	// records which manager owns each field, so a second manager has to
	// force its way in once; the code is in apply.go.
	fmt.Fprintln(stdout, "Step 5: server-side apply with applyconfigurations and field managers")
	if err := serverSideApply(ctx, deployments, created, stdout); err != nil {
		return err
	}

	// Step 6: Foreground keeps the Deployment (deletionTimestamp set, the
	// foregroundDeletion finalizer on) until the garbage collector has
	// deleted its ReplicaSet and their Pods, so "gone" means all of it.
	fmt.Fprintln(stdout, "Step 6: delete with Foreground propagation: the Pods go first, then the Deployment")
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	err = deployments.Delete(rctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
	cancel()
	if err != nil {
		return fmt.Errorf("delete deployment %s: %w", name, explain(err))
	}
	if err := waitForPods(ctx, pods, selector, 0, *podTimeout, stdout); err != nil {
		return err
	}
	if err := waitForDeploymentGone(ctx, deployments, name, *podTimeout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  deployment %s is gone\n", name)
	return nil
}

// nginxDeployment is the Deployment of our notes as typed Go structs. The
// Pod template carries our label too, so the ReplicaSet and the Pods the
// controllers make from it are found with -l like everything else.
//
// The notes select run: nginx alone; we add a label unique to the run.
// `kubectl run nginx` labels its Pod run=nginx too, and so does another
// run of this demo, and the waits count every Pod the selector matches:
// two workloads' selectors must never overlap.
func nginxDeployment() *appsv1.Deployment {
	runID := "demo-" + demoName + "-" + utilrand.String(5)
	selector := map[string]string{"run": "nginx", instanceKey: runID}
	podLabels := map[string]string{"run": "nginx", instanceKey: runID, partOfKey: partOfValue}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "demo-" + demoName + "-",
			Labels:       map[string]string{partOfKey: partOfValue},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:            "nginx",
						Image:           "nginx:1.17.1",
						ImagePullPolicy: corev1.PullIfNotPresent,
						Ports:           []corev1.ContainerPort{{Name: "nginx-port", ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
					}},
				},
			},
		},
	}
}
