package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1apply "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/utils/ptr"
)

// showPatches is -show patches: the four patch types of PATCH on one
// Deployment with two containers, nginx and sidecar. The same body means
// different things to a merge patch and a strategic merge patch.
func showPatches(ctx context.Context, clientset kubernetes.Interface, ns string, _ time.Duration, stdout io.Writer) (err error) {
	deployments := clientset.AppsV1().Deployments(ns)
	// Patches 1: a second container, so that we see what each patch type
	// does to the list it is in.
	fmt.Fprintln(stdout, "Patches 1: create a Deployment with two containers (0 replicas: no Pods needed)")
	d := nginxDeployment()
	d.Spec.Replicas = ptr.To[int32](0)
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{
		Name: "sidecar", Image: "busybox:1.36", Command: []string{"sleep", "infinity"},
	})
	created, deleteDeployment, err := createDeployment(ctx, deployments, ns, d)
	if err != nil {
		return err
	}
	defer deleteDeployment(&err)
	name := created.Name
	fmt.Fprintf(stdout, "  %s: %s\n", name, containers(created))

	// Patches 2: JSON patch (RFC 6902) is a list of operations on paths;
	// list items are addressed by index, so a "test" first makes sure
	// index 0 is still the container we mean, else the whole patch fails.
	fmt.Fprintln(stdout, "Patches 2: JSON patch (application/json-patch+json): operations on paths, list items by index")
	jsonPatch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "nginx"},
		{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.19.10"},
	})
	if err != nil {
		return fmt.Errorf("encode JSON patch: %w", err)
	}
	if err := patch(ctx, deployments, name, types.JSONPatchType, jsonPatch, stdout); err != nil {
		return err
	}

	// Patches 3 and 4 send the same body: the nginx container with a new
	// image, and nothing about the sidecar.
	body, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]string{{"name": "nginx", "image": "nginx:1.20.2"}},
	}}}})
	if err != nil {
		return fmt.Errorf("encode merge patch: %w", err)
	}
	// Patches 3: a strategic merge patch knows from the Go types that
	// containers merge by name (patchMergeKey:"name" on PodSpec.Containers
	// in k8s.io/api/core/v1/types.go): the sidecar stays.
	fmt.Fprintln(stdout, "Patches 3: strategic merge patch (application/strategic-merge-patch+json): lists merge by their key, the sidecar stays")
	if err := patch(ctx, deployments, name, types.StrategicMergePatchType, body, stdout); err != nil {
		return err
	}
	// Patches 4: a JSON merge patch (RFC 7386) knows no keys: a list in the
	// patch replaces the whole list. The sidecar is gone.
	fmt.Fprintln(stdout, "Patches 4: JSON merge patch (application/merge-patch+json): a list replaces the list, the sidecar is gone")
	if err := patch(ctx, deployments, name, types.MergePatchType, body, stdout); err != nil {
		return err
	}

	// Patches 5: apply (application/apply-patch+yaml) sends a manager's
	// whole intent; the server merges by the same keys and records the
	// owner of each field. This manager wants a sidecar: it comes back,
	// and the nginx container, which it does not mention, stays.
	fmt.Fprintln(stdout, "Patches 5: server-side apply (application/apply-patch+yaml): a manager's intent, merged by key")
	intent := appsv1apply.Deployment(name, ns).WithSpec(appsv1apply.DeploymentSpec().
		WithTemplate(corev1apply.PodTemplateSpec().WithSpec(corev1apply.PodSpec().
			WithContainers(corev1apply.Container().WithName("sidecar").WithImage("busybox:1.36").WithCommand("sleep", "infinity")))))
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	applied, err := deployments.Apply(rctx, intent, metav1.ApplyOptions{FieldManager: "sidecar-injector"})
	cancel()
	if err != nil {
		return fmt.Errorf("apply deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  Apply as sidecar-injector -> %s\n", containers(applied))
	return nil
}

// patch sends one PATCH and prints its body and the containers after it.
func patch(ctx context.Context, deployments typedappsv1.DeploymentInterface, name string, pt types.PatchType, body []byte, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	patched, err := deployments.Patch(ctx, name, pt, body, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("patch deployment %s (%s): %w", name, pt, explain(err))
	}
	fmt.Fprintf(stdout, "  %s\n  -> %s\n", body, containers(patched))
	return nil
}

// containers lists the Pod template's containers as name=image.
func containers(d *appsv1.Deployment) string {
	var cs []string
	for _, c := range d.Spec.Template.Spec.Containers {
		cs = append(cs, c.Name+"="+c.Image)
	}
	return "containers " + strings.Join(cs, ", ")
}
