package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/utils/ptr"

	"k8s.io/client-go/kubernetes"
)

// topics are what -show runs after Step 1 instead of Steps 2-6: each a
// lesson of its own, kept out of the default run to keep it short.
var topics = map[string]func(ctx context.Context, clientset kubernetes.Interface, ns string, podTimeout time.Duration, stdout io.Writer) error{
	"selectors":    showSelectors,    // selectors.go
	"patches":      showPatches,      // patches.go
	"subresources": showSubresources, // subresources.go
}

// createDeployment creates d and returns it and a function to defer,
// which deletes it on every way out, Ctrl-C included, and joins a failed
// delete into the returned error: Step 2's pattern, for the topics.
func createDeployment(ctx context.Context, deployments typedappsv1.DeploymentInterface, ns string, d *appsv1.Deployment) (*appsv1.Deployment, func(*error), error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	created, err := deployments.Create(rctx, d, metav1.CreateOptions{FieldManager: fieldManager})
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	name := created.Name
	return created, func(err *error) {
		ctx, cancel := cleanupContext(ctx)
		defer cancel()
		derr := deployments.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if derr != nil && !apierrors.IsNotFound(derr) {
			*err = errors.Join(*err, fmt.Errorf("delete deployment %s: %w", name, explain(derr)))
		}
	}, nil
}
