package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
)

// script is the demo's part: it changes things as a user would, with the
// clientset, and watches the controller's cache for the outcome.
type script struct {
	out     io.Writer
	cs      kubernetes.Interface
	ns      string
	ctrl    *Controller
	stopped <-chan struct{} // closed if the controller stops early
	why     func() error    // then: why
}

// newDeployment is a labelled Deployment with no Pods (replicas 0): the
// controller needs its selector and container ports, not running Pods.
func newDeployment() *appsv1.Deployment {
	selector := map[string]string{"app.kubernetes.io/name": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "demo-" + demoName + "-",
			Labels:       map[string]string{partOfKey: partOfValue, exposeLabel: "true"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: selector},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web",
					Image: "registry.k8s.io/pause:3.10",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				}}},
			},
		},
	}
}

func (s *script) run(ctx context.Context) (err error) {
	deployments := s.cs.AppsV1().Deployments(s.ns)
	services := s.cs.CoreV1().Services(s.ns)

	// Step 4: the controller's reason to exist.
	fmt.Fprintf(s.out, "Step 4: create a Deployment labelled %s=true; the controller creates its Service\n", exposeLabel)
	// Printed before the request: the controller may print before it returns.
	fmt.Fprintln(s.out, "-> create a Deployment: replicas 0, selector app.kubernetes.io/name=web, container port http 8080/TCP")
	d, err := deployments.Create(ctx, newDeployment(), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", s.ns, explain(err))
	}
	// Deleting the Deployment deletes its Service too (garbage collection).
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		derr := deployments.Delete(cctx, d.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
		if derr != nil && !apierrors.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("clean up: delete deployment %s: %w", d.Name, explain(derr)))
		}
	}()
	svc, err := s.waitForService(ctx, d.Name, "its Service", 1, func(svc *corev1.Service) bool { return svc != nil })
	if err != nil {
		return err
	}
	ref := metav1.GetControllerOf(svc)
	fmt.Fprintf(s.out, "  Deployment %s has its Service: selector %s, %s\n", d.Name, describeSelector(svc.Spec.Selector), describePorts(svc))
	fmt.Fprintf(s.out, "  ownerReference: %s %s %s, controller=true, blockOwnerDeletion=%v; field managers: %s\n",
		ref.APIVersion, ref.Kind, ref.Name, ptr.Deref(ref.BlockOwnerDeletion, false), managers(svc))

	// Step 5: a hand edit of a field we own, and of one we do not.
	fmt.Fprintln(s.out, "Step 5: edit the Service by hand, as kubectl edit does; the controller puts back only its own fields")
	patch := `{"metadata":{"annotations":{"example.com/note":"edited by hand"}},"spec":{"ports":[{"port":8080,"protocol":"TCP","targetPort":9090}]}}`
	if _, err := services.Patch(ctx, svc.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		return fmt.Errorf("patch service %s: %w", svc.Name, explain(err))
	}
	fmt.Fprintln(s.out, "-> patched as field manager kubectl-edit: targetPort 9090, annotation example.com/note")
	svc, err = s.waitForService(ctx, d.Name, "targetPort http and the annotation", 2, func(svc *corev1.Service) bool {
		return svc != nil && svc.Spec.Ports[0].TargetPort.String() == "http" && svc.Annotations["example.com/note"] != ""
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "  %s again (applied with Force); annotation example.com/note=%q kept; field managers: %s\n",
		describePorts(svc), svc.Annotations["example.com/note"], managers(svc))

	// Step 6: level-triggered: the controller acts on what is, not on
	// what happened.
	fmt.Fprintln(s.out, "Step 6: remove the label: the controller deletes the Service; label it again: the Service is back")
	for i, value := range []string{"null", `"true"`} {
		labelPatch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, exposeLabel, value)
		if _, err := deployments.Patch(ctx, d.Name, types.MergePatchType, []byte(labelPatch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("label deployment %s: %w", d.Name, explain(err))
		}
		want := value != "null"
		svc, err = s.waitForService(ctx, d.Name, map[bool]string{false: "the Service to go", true: "the Service"}[want], int64(3+i), func(svc *corev1.Service) bool { return (svc != nil) == want })
		if err != nil {
			return err
		}
		if want {
			fmt.Fprintf(s.out, "-> labelled %s=true: Service %s is back (%s)\n", exposeLabel, svc.Name, describePorts(svc))
		} else {
			fmt.Fprintf(s.out, "-> removed label %s: Service %s is gone\n", exposeLabel, d.Name)
		}
	}

	// Step 7: the ownerReference makes the garbage collector, in
	// kube-controller-manager, delete the Service with its Deployment.
	// Foreground: the Deployment stays, with a deletionTimestamp, until the
	// garbage collector has deleted its dependents, so the controller sees
	// it being deleted before it sees the Service go. (With Background, the
	// two deletes can reach it in either order; a Service delete seen first
	// makes it apply the Service again for a Deployment that is gone, and the
	// garbage collector deletes that one too: harmless, but a wasted write.)
	fmt.Fprintln(s.out, "Step 7: delete the Deployment: the garbage collector deletes the Service; the controller has nothing to do")
	before := s.ctrl.writes.Load()
	if err := deployments.Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		return fmt.Errorf("delete deployment %s: %w", d.Name, explain(err))
	}
	if _, err := s.waitForService(ctx, d.Name, "the garbage collector", before, func(svc *corev1.Service) bool { return svc == nil }); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "-> deleted Deployment %s (propagationPolicy Foreground): Service %s is gone; writes by the controller: %d before, %d after\n", d.Name, d.Name, before, s.ctrl.writes.Load())

	// Step 8: what kubectl describe deployment shows under Events.
	fmt.Fprintln(s.out, "Step 8: the Events the controller recorded on the Deployment (kubectl describe shows them)")
	return s.printEvents(ctx, d)
}

// waitForService polls the controller's Service cache until cond holds for
// the Service name (nil when absent) and the controller has counted writes
// successful writes (the watch event can arrive before the write's response
// does). It ends early if the controller drops a key or stops.
func (s *script) waitForService(ctx context.Context, name, what string, writes int64, cond func(*corev1.Service) bool) (*corev1.Service, error) {
	var found *corev1.Service
	var failed error
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		select {
		case failed = <-s.ctrl.dropped:
			return false, failed
		case <-s.stopped:
			if failed = s.why(); failed == nil {
				failed = errors.New("the controller stopped")
			}
			return false, failed
		default:
		}
		svc, err := s.ctrl.services.Services(s.ns).Get(name)
		if apierrors.IsNotFound(err) {
			svc = nil
		} else if err != nil {
			return false, err
		}
		found = svc
		return cond(svc) && s.ctrl.writes.Load() >= writes, nil
	})
	switch {
	case failed != nil:
		return nil, failed
	case err != nil && ctx.Err() == nil:
		return nil, fmt.Errorf("wait for %s of %s: %w", what, name, err)
	}
	return found, err
}

// printEvents waits until the Events of the three kinds of write reached the
// server (the broadcaster sends them in the background), then prints them
// in order. It lists events.k8s.io/v1 Events by regarding object
// (tools/events.GetFieldSelector); kubectl describe lists the same Events
// through core/v1, by involvedObject.
func (s *script) printEvents(ctx context.Context, d *appsv1.Deployment) error {
	selector, err := events.GetFieldSelector(eventsv1.SchemeGroupVersion, appsv1.SchemeGroupVersion.WithKind("Deployment"), d.Name, d.UID)
	if err != nil {
		return err
	}
	var list *eventsv1.EventList
	want := []string{"ServiceCreated", "ServiceUpdated", "ServiceDeleted"}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err = s.cs.EventsV1().Events(s.ns).List(ctx, metav1.ListOptions{FieldSelector: selector.String()})
		if err != nil {
			return false, fmt.Errorf("list events: %w", explain(err))
		}
		var reasons []string
		recorded := 0
		for _, e := range list.Items {
			reasons = append(reasons, e.Reason)
			// A repeat of the same reason about the same resourceVersion of
			// the Deployment is folded into a series; one write, one count.
			recorded += max(1, int(ptr.Deref(e.Series, eventsv1.EventSeries{}).Count))
		}
		return recorded >= int(s.ctrl.writes.Load()) &&
			!slices.ContainsFunc(want, func(r string) bool { return !slices.Contains(reasons, r) }), nil
	})
	if err != nil {
		if ctx.Err() == nil && !strings.HasPrefix(err.Error(), "list events") {
			err = fmt.Errorf("wait for the Events of deployment %s: %w", d.Name, err)
		}
		return err
	}
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	for _, e := range list.Items {
		fmt.Fprintf(s.out, "  %-7s %-15s %-7s %s: %s\n", e.Type, e.Reason, e.Action, e.ReportingController, e.Note)
	}
	return nil
}

// managers lists who owns fields of obj, as metadata.managedFields says.
func managers(obj metav1.Object) string {
	var m []string
	for _, f := range obj.GetManagedFields() {
		m = append(m, fmt.Sprintf("%s (%s)", f.Manager, f.Operation))
	}
	slices.Sort(m)
	return strings.Join(m, ", ")
}
