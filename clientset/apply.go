package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1apply "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
)

// serverSideApply is Step 5. An apply sends only the fields its manager has
// an opinion about; the server merges them and records in managedFields
// which manager owns each field. Changing a field that another manager
// owns is a 409 Conflict unless the apply is forced.
func serverSideApply(ctx context.Context, deployments typedappsv1.DeploymentInterface, created *appsv1.Deployment, stdout io.Writer) error {
	const manager = "image-updater"
	name, ns := created.Name, created.Namespace
	fmt.Fprintf(stdout, "  managedFields after Create: %s\n", managers(created))

	// Our Create set the image, so demo-clientset owns it (operation
	// Update), and another manager's apply that changes it conflicts. The
	// error names the field and its owner.
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	_, err := deployments.Apply(rctx, imageApply(name, ns, "nginx:1.19.10"), metav1.ApplyOptions{FieldManager: manager})
	cancel()
	switch {
	case err == nil:
		return fmt.Errorf("apply as %s succeeded without Force: it already owned the image", manager)
	case !apierrors.IsConflict(err):
		return fmt.Errorf("apply as %s: %w", manager, explain(err))
	}
	fmt.Fprintf(stdout, "  %s without Force: %v\n", manager, err)

	// Force takes the field over, as kubectl apply --server-side
	// --force-conflicts does: the image changes, and the field moves from
	// demo-clientset's entry to image-updater's.
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	applied, err := deployments.Apply(rctx, imageApply(name, ns, "nginx:1.19.10"), metav1.ApplyOptions{FieldManager: manager, Force: true})
	cancel()
	if err != nil {
		return fmt.Errorf("apply as %s with Force: %w", manager, explain(err))
	}
	fmt.Fprintf(stdout, "  %s with Force: image now %s\n", manager, applied.Spec.Template.Spec.Containers[0].Image)
	fmt.Fprintf(stdout, "  managedFields: %s\n", managers(applied))

	// ExtractDeployment reads back, as an apply configuration, exactly the
	// fields a manager owns through Apply (not those of Update entries).
	// Modify it and apply it again: the extract/modify/apply workflow that
	// applyconfigurations are made for. No Force: the field is ours now.
	owned, err := appsv1apply.ExtractDeployment(applied, manager)
	if err != nil {
		return fmt.Errorf("extract the fields %s owns: %w", manager, err)
	}
	ownedJSON, err := json.Marshal(owned)
	if err != nil {
		return fmt.Errorf("encode the fields %s owns: %w", manager, err)
	}
	fmt.Fprintf(stdout, "  ExtractDeployment(%s): %s\n", manager, ownedJSON)
	nginx := container(owned, "nginx")
	if nginx == nil || nginx.Image == nil {
		return fmt.Errorf("%s owns no image of container nginx after a forced apply: someone else took it", manager)
	}
	nginx.WithImage("nginx:1.20.2")
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	applied, err = deployments.Apply(rctx, owned, metav1.ApplyOptions{FieldManager: manager})
	cancel()
	if err != nil {
		return fmt.Errorf("apply as %s: %w", manager, explain(err))
	}
	fmt.Fprintf(stdout, "  %s applies it with nginx:1.20.2, no Force needed: image now %s\n", manager, applied.Spec.Template.Spec.Containers[0].Image)
	return nil
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

// container finds a container by name in an apply configuration, whose
// every level is an optional pointer.
func container(d *appsv1apply.DeploymentApplyConfiguration, name string) *corev1apply.ContainerApplyConfiguration {
	if d.Spec == nil || d.Spec.Template == nil || d.Spec.Template.Spec == nil {
		return nil
	}
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name != nil && *c.Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

// managers lists the managedFields entries: who wrote, how (Apply or
// Update), and through which subresource. The server orders them by
// operation, then by the second of each manager's last write (apimachinery
// pkg/util/managedfields/internal/managedfields.go), which varies from run
// to run, so we sort them by name.
func managers(d *appsv1.Deployment) string {
	var entries []string
	for _, m := range d.ManagedFields {
		e := fmt.Sprintf("%s (%s", m.Manager, m.Operation)
		if m.Subresource != "" {
			e += ", " + m.Subresource
		}
		entries = append(entries, e+")")
	}
	if len(entries) == 0 {
		return "none"
	}
	sort.Strings(entries)
	return strings.Join(entries, "; ")
}
