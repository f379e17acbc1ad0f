// Command clientset shows the typed Clientset on the nginx Deployment of our
// notes: create, get, list, optimistic concurrency, server-side apply and
// deletion with garbage collection.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	appsv1apply "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	partOf       = "app.kubernetes.io/part-of=client-go-demo"
	fieldManager = "demo-clientset"
)

func main() {
	// Ctrl-C, kill, or a closed pipe (go run ./clientset | head) cancel ctx, and
	// run cleans up before it returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clientset:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("clientset", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current context)")
	var namespace string
	fs.StringVar(&namespace, "namespace", "", "namespace (default: the context's namespace)")
	fs.StringVar(&namespace, "n", "", "shorthand for -namespace")
	podTimeout := fs.Duration("pod-timeout", 3*time.Minute, "how long to wait for Pods (image pulls on a real cluster take a while)")
	klog.InitFlags(fs)       // -v=6 logs every request, -v=8 their bodies, as kubectl does
	fs.SetOutput(io.Discard) // a bad flag is one line of error; -h prints the flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError{fmt.Errorf("%w (see -h)", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}

	// Step 1: build the clientset from the kubeconfig, loaded as kubectl does.
	fmt.Fprintln(stdout, "Step 1: build the clientset with kubernetes.NewForConfig")
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, then ~/.kube/config
	rules.ExplicitPath = *kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: *kubeContext}
	overrides.Context.Namespace = namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	config, err := loader.ClientConfig() // falls back to the in-cluster config
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no kubeconfig: pass -kubeconfig, set $KUBECONFIG, or create ~/.kube/config")
	}
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return fmt.Errorf("read namespace from kubeconfig: %w", err)
	}
	config.UserAgent = "client-go-demo-clientset"
	config.Timeout = 30 * time.Second
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	// Each method chain is a Group/Version/Resource: AppsV1() picks group
	// apps, version v1, and Deployments(ns) the resource in a namespace.
	deployments := clientset.AppsV1().Deployments(ns)
	fmt.Fprintf(stdout, "  clientset.AppsV1().Deployments(%q) -> group apps, version v1, resource deployments\n", ns)
	fmt.Fprintf(stdout, "  -> %s/apis/apps/v1/namespaces/%s/deployments\n", config.Host, ns)

	// Step 2: create the Deployment of our notes from typed Go structs.
	fmt.Fprintln(stdout, "Step 2: create the nginx Deployment, then get it back")
	created, err := deployments.Create(ctx, nginxDeployment(), metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	name := created.Name
	// Delete on every way out, Ctrl-C included: ctx may be cancelled by
	// then, so the delete gets a context of its own.
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		derr := deployments.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if !apierrors.IsNotFound(derr) {
			err = errors.Join(err, derr)
		}
	}()
	stale, err := deployments.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  created %s: resourceVersion %s, generation %d, uid %s\n", stale.Name, stale.ResourceVersion, stale.Generation, stale.UID)

	// Step 3: list Deployments by label, and the Pods the Deployment made.
	fmt.Fprintln(stdout, "Step 3: list Deployments by label, then wait for the Pods it produces")
	list, err := deployments.List(ctx, metav1.ListOptions{LabelSelector: partOf})
	if err != nil {
		return fmt.Errorf("list deployments: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  %d deployment(s) with label %s, list resourceVersion %s\n", len(list.Items), partOf, list.ResourceVersion)
	selector := metav1.FormatLabelSelector(stale.Spec.Selector)
	if err := waitForPods(ctx, clientset, ns, selector, 3, *podTimeout, stdout); err != nil {
		return err
	}

	// Step 4: optimistic concurrency. Every write carries the
	// resourceVersion it was based on; the controller has written the
	// status since we read `stale`, so this update is refused.
	fmt.Fprintln(stdout, "Step 4: an update from a stale read gets 409 Conflict; RetryOnConflict scales 3 -> 1")
	stale.Spec.Replicas = ptr.To[int32](1)
	_, err = deployments.Update(ctx, stale, metav1.UpdateOptions{FieldManager: fieldManager})
	if err == nil {
		return fmt.Errorf("update with stale resourceVersion %s succeeded: nothing else wrote the Deployment since we read it", stale.ResourceVersion)
	}
	if !apierrors.IsConflict(err) {
		return fmt.Errorf("update with stale resourceVersion %s: %w", stale.ResourceVersion, explain(err))
	}
	fmt.Fprintf(stdout, "  update with resourceVersion %s: %v\n", stale.ResourceVersion, err)
	// The fix: read, modify, write, and on a Conflict do it all again
	// with a fresh read.
	attempts := 0
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		attempts++
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
	if err := waitForPods(ctx, clientset, ns, selector, 1, *podTimeout, stdout); err != nil {
		return err
	}

	// Step 5: server-side apply. We send only the fields we have an opinion
	// about; the server merges them and records which manager owns each
	// field. A field owned by someone else is a conflict, unless forced.
	fmt.Fprintln(stdout, "Step 5: server-side apply with applyconfigurations and field managers")
	printManagers(stdout, created) // as our Create left it
	// The image was set by our Create, so "image-updater" does not own it.
	_, err = deployments.Apply(ctx, imageApply(name, ns, "nginx:1.19.10"), metav1.ApplyOptions{FieldManager: "image-updater"})
	if err == nil {
		return errors.New("apply as image-updater succeeded without Force: it already owned the image")
	}
	if !apierrors.IsConflict(err) {
		return fmt.Errorf("apply as image-updater: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  image-updater without Force: %v\n", err)
	// Force takes the field over: the image changes and ownership moves,
	// as with kubectl apply --server-side --force-conflicts.
	applied, err := deployments.Apply(ctx, imageApply(name, ns, "nginx:1.19.10"), metav1.ApplyOptions{FieldManager: "image-updater", Force: true})
	if err != nil {
		return fmt.Errorf("apply as image-updater with Force: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  image-updater with Force: image now %s\n", applied.Spec.Template.Spec.Containers[0].Image)
	printManagers(stdout, applied)
	// Now that it owns the field, its next apply needs no Force.
	applied, err = deployments.Apply(ctx, imageApply(name, ns, "nginx:1.20.2"), metav1.ApplyOptions{FieldManager: "image-updater"})
	if err != nil {
		return fmt.Errorf("apply as image-updater: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  image-updater again, no Force needed: image now %s\n", applied.Spec.Template.Spec.Containers[0].Image)

	// Step 6: delete with a propagation policy. Foreground keeps the
	// Deployment (with a deletionTimestamp) until the garbage collector
	// has deleted its ReplicaSets and their Pods.
	fmt.Fprintln(stdout, "Step 6: delete with Foreground propagation and watch garbage collection remove the Pods")
	if err := deployments.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		return fmt.Errorf("delete deployment %s: %w", name, explain(err))
	}
	if err := waitForPods(ctx, clientset, ns, selector, 0, *podTimeout, stdout); err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, *podTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("wait for deployment %s to go: %w", name, err)
	}
	fmt.Fprintf(stdout, "  deployment %s and its pods are gone\n", name)
	return nil
}

// nginxDeployment is the Deployment of our notes as typed Go structs.
func nginxDeployment() *appsv1.Deployment {
	labels := map[string]string{"run": "nginx"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "demo-clientset-",
			Labels:       map[string]string{"app.kubernetes.io/part-of": "client-go-demo"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
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

// imageApply is the whole intent of one apply: this container has this
// image. Containers merge by name, so nothing else is touched.
func imageApply(name, ns, image string) *appsv1apply.DeploymentApplyConfiguration {
	return appsv1apply.Deployment(name, ns).
		WithSpec(appsv1apply.DeploymentSpec().
			WithTemplate(corev1apply.PodTemplateSpec().
				WithSpec(corev1apply.PodSpec().
					WithContainers(corev1apply.Container().WithName("nginx").WithImage(image)))))
}

// printManagers prints who owns the container image, from managedFields.
func printManagers(w io.Writer, d *appsv1.Deployment) {
	var managers []string
	for _, m := range d.ManagedFields {
		owns := ""
		if m.FieldsV1 != nil && strings.Contains(m.FieldsV1.GetRawString(), `"f:image"`) {
			owns = ", owns image"
		}
		managers = append(managers, fmt.Sprintf("%s (%s%s)", m.Manager, m.Operation, owns))
	}
	sort.Strings(managers) // the server keeps them in the order of writes, which varies
	fmt.Fprintf(w, "  managedFields: %s\n", strings.Join(managers, "; "))
}

// waitForPods waits until exactly want Pods match selector and, when want
// is above zero, all of them are Running. Polling a List is simple and
// correct; a watch would react faster but needs relist handling.
func waitForPods(ctx context.Context, cs kubernetes.Interface, ns, selector string, want int, timeout time.Duration, w io.Writer) error {
	var have, running int
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, explain(err)
		}
		have, running = len(pods.Items), 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return have == want && running == want, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d running pods (%s): have %d, %d running: %w", want, selector, have, running, err)
	}
	fmt.Fprintf(w, "  pods with %s: %d running\n", selector, want)
	return nil
}

// explain turns the API errors a user meets into words.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		// The message names the user, verb, resource and namespace.
		return fmt.Errorf("forbidden by RBAC: %w", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the server did not accept our credentials: %w", err)
	}
	return err
}
