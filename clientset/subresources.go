package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	autoscalingv1apply "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	"k8s.io/client-go/kubernetes"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// showSubresources is -show subresources: scale and status of a
// Deployment, and an ephemeral container added to a running Pod. A
// subresource is a path under the object (.../deployments/NAME/scale) with
// an API of its own, and RBAC of its own (deployments/scale, ...).
func showSubresources(ctx context.Context, clientset kubernetes.Interface, ns string, podTimeout time.Duration, stdout io.Writer) (err error) {
	deployments := clientset.AppsV1().Deployments(ns)
	// Subresources 1: the Deployment whose scale and status we write.
	fmt.Fprintln(stdout, "Subresources 1: create the nginx Deployment (3 replicas)")
	created, deleteDeployment, err := createDeployment(ctx, deployments, ns, nginxDeployment())
	if err != nil {
		return err
	}
	defer deleteDeployment(&err)
	name := created.Name
	fmt.Fprintf(stdout, "  created %s\n", name)

	// Subresources 2: the scale subresource is an autoscaling/v1 Scale,
	// the same for every scalable resource (Deployments, ReplicaSets,
	// StatefulSets, custom resources with a scale subresource): what
	// kubectl scale and the HorizontalPodAutoscaler use, knowing no kinds.
	fmt.Fprintln(stdout, "Subresources 2: the scale subresource: GetScale, UpdateScale, ApplyScale")
	if err := scaleDeployment(ctx, deployments, name, stdout); err != nil {
		return err
	}

	// Subresources 3: status has its own endpoint. An Update of the
	// object ignores status, an UpdateStatus ignores everything but status
	// (PrepareForUpdate and the status strategy in kubernetes
	// pkg/registry/apps/deployment/strategy.go), so the user owns spec and
	// the controller owns status, and neither overwrites the other.
	fmt.Fprintln(stdout, "Subresources 3: the status subresource: Update ignores status, UpdateStatus ignores spec")
	if err := writeStatus(ctx, deployments, name, podTimeout, stdout); err != nil {
		return err
	}

	// Subresources 4: a Pod's containers cannot change once it is created;
	// an ephemeral container (a debugger, as kubectl debug adds) can be
	// added through pods/NAME/ephemeralcontainers, and never removed.
	fmt.Fprintln(stdout, "Subresources 4: add an ephemeral container with UpdateEphemeralContainers")
	return ephemeralContainer(ctx, clientset, ns, podTimeout, stdout)
}

// scaleDeployment reads the scale, scales 3 -> 2 with UpdateScale, then to 1 with
// ApplyScale.
func scaleDeployment(ctx context.Context, deployments typedappsv1.DeploymentInterface, name string, stdout io.Writer) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	s, err := deployments.GetScale(rctx, name, metav1.GetOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("get scale of deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  GetScale: spec.replicas %d, status.selector %s\n", s.Spec.Replicas, s.Status.Selector)
	// The Scale carries the Deployment's resourceVersion, and the
	// controller keeps writing the Deployment: read-modify-write again on
	// a Conflict, as in Step 4.
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		s, err := deployments.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = 2
		_, err = deployments.UpdateScale(ctx, name, s, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update scale of deployment %s: %w", name, explain(err))
	}
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	d, err := deployments.Get(rctx, name, metav1.GetOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("get deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  UpdateScale to 2: the Deployment's spec.replicas is %d\n", *d.Spec.Replicas)
	// An apply of the scale needs no resourceVersion. demo-clientset owns
	// spec.replicas (it created the Deployment), so another manager takes
	// it with Force, as an autoscaler must.
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	s, err = deployments.ApplyScale(rctx, name, autoscalingv1apply.Scale().WithSpec(autoscalingv1apply.ScaleSpec().WithReplicas(1)),
		metav1.ApplyOptions{FieldManager: "demo-autoscaler", Force: true})
	cancel()
	if err != nil {
		return fmt.Errorf("apply scale of deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  ApplyScale to 1 as demo-autoscaler: spec.replicas %d\n", s.Spec.Replicas)
	return nil
}

// writeStatus shows which endpoint writes which half of the object, with a
// condition of our own.
func writeStatus(ctx context.Context, deployments typedappsv1.DeploymentInterface, name string, timeout time.Duration, stdout io.Writer) error {
	// Wait until the controller has seen the last spec change, so its
	// status write is in managedFields and ours comes after it.
	var d *appsv1.Deployment
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		var err error
		d, err = deployments.Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation, err
	})
	if err != nil {
		return fmt.Errorf("wait for the controller to observe deployment %s: %w", name, err)
	}
	checked := appsv1.DeploymentCondition{Type: "example.com/Checked", Status: corev1.ConditionTrue, Reason: "Demo", Message: "written through the status subresource"}
	var updated, statusUpdated *appsv1.Deployment
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Status.Conditions = append(d.Status.Conditions, checked)
		updated, err = deployments.Update(ctx, d, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  Update with condition %s in status: stored %v\n", checked.Type, hasCondition(updated, checked.Type))
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Status.Conditions = append(d.Status.Conditions, checked)
		d.Spec.Replicas = ptr.To[int32](5)
		statusUpdated, err = deployments.UpdateStatus(ctx, d, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update status of deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  UpdateStatus with condition %s and spec.replicas 5: condition stored %v, spec.replicas %d\n",
		checked.Type, hasCondition(statusUpdated, checked.Type), *statusUpdated.Spec.Replicas)
	fmt.Fprintf(stdout, "  status writers in managedFields: %s\n", statusManagers(statusUpdated))
	return nil
}

func hasCondition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == t {
			return true
		}
	}
	return false
}

// statusManagers names the managers that wrote through the status
// subresource, sorted (the server orders them by time).
func statusManagers(d *appsv1.Deployment) string {
	var names []string
	for _, m := range d.ManagedFields {
		if m.Subresource == "status" {
			names = append(names, fmt.Sprintf("%s (%s)", m.Manager, m.Operation))
		}
	}
	sort.Strings(names)
	return strings.Join(names, "; ")
}

// ephemeralContainer creates a Pod, waits until it runs, and adds a
// debugger container to it.
func ephemeralContainer(ctx context.Context, clientset kubernetes.Interface, ns string, timeout time.Duration, stdout io.Writer) (err error) {
	pods := clientset.CoreV1().Pods(ns)
	pod := nginxDeployment().Spec.Template // the labels of one run, and the nginx container
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	created, err := pods.Create(rctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "demo-" + demoName + "-", Labels: pod.Labels},
		Spec:       pod.Spec,
	}, metav1.CreateOptions{FieldManager: fieldManager})
	cancel()
	if err != nil {
		return fmt.Errorf("create pod in namespace %q: %w", ns, explain(err))
	}
	name := created.Name
	defer func() {
		ctx, cancel := cleanupContext(ctx)
		defer cancel()
		derr := pods.Delete(ctx, name, metav1.DeleteOptions{})
		if derr != nil && !apierrors.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("delete pod %s: %w", name, explain(derr)))
		}
	}()
	if err := waitForPods(ctx, pods, labels.SelectorFromSet(labels.Set{instanceKey: created.Labels[instanceKey]}).String(), 1, timeout, stdout); err != nil {
		return err
	}
	// The body is the whole Pod; the server takes only
	// spec.ephemeralContainers from it. Conflicts retry as in Step 4.
	debugger := corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: "busybox:1.36", Command: []string{"sh"}, Stdin: true, TTY: true,
		},
		TargetContainerName: "nginx", // share its process namespace, as kubectl debug --target
	}
	var updated *corev1.Pod
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, debugger)
		updated, err = pods.UpdateEphemeralContainers(ctx, name, p, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("add ephemeral container to pod %s: %w", name, explain(err))
	}
	for _, c := range updated.Spec.EphemeralContainers {
		fmt.Fprintf(stdout, "  pod %s: ephemeral container %s, image %s, target %s\n", name, c.Name, c.Image, c.TargetContainerName)
	}
	return nil
}
