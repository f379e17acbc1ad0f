package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"
)

// objects creates, changes and deletes the demo's objects, and remembers
// which kinds it tried to create, so that cleanup finds everything on
// every way out.
type objects struct {
	configMaps typedcorev1.ConfigMapInterface
	pods       typedcorev1.PodInterface
	// Set before the Create, not after: a Create cut short by Ctrl-C may
	// still have happened on the server, under a name never returned.
	triedConfigMaps, triedPods bool
}

func (o *objects) createConfigMap(ctx context.Context, out io.Writer) (*corev1.ConfigMap, error) {
	fmt.Fprintln(out, "-> create a ConfigMap")
	o.triedConfigMaps = true
	cm, err := o.configMaps.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "demo-watch-", Labels: map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": demoName}},
		Data:       map[string]string{"step": "created"},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create configmap: %w", explain(err))
	}
	return cm, nil
}

// updateConfigMap changes cm as read; nobody else writes the demo's
// ConfigMaps, so its resourceVersion is current.
func (o *objects) updateConfigMap(ctx context.Context, out io.Writer, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	fmt.Fprintf(out, "-> update %s\n", cm.Name)
	cm = cm.DeepCopy()
	cm.Data = map[string]string{"step": "updated"}
	cm, err := o.configMaps.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update configmap: %w", explain(err))
	}
	return cm, nil
}

func (o *objects) deleteConfigMap(ctx context.Context, out io.Writer, name string) error {
	fmt.Fprintf(out, "-> delete %s\n", name)
	if err := o.configMaps.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete configmap %s: %w", name, explain(err))
	}
	return nil
}

// cleanup deletes what is left of the demo's objects: one DeleteCollection
// per kind it tried to create, with the demo's label selector, so that it
// also finds an object whose Create was in flight when Ctrl-C came.
// NotFound (the namespace is gone, or never was) means nothing is left.
func (o *objects) cleanup(ctx context.Context) error {
	var errs []error
	byLabel := metav1.ListOptions{LabelSelector: selector}
	if o.triedConfigMaps {
		if err := o.configMaps.DeleteCollection(ctx, metav1.DeleteOptions{}, byLabel); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete configmaps: %w", err))
		}
	}
	if o.triedPods {
		if err := o.pods.DeleteCollection(ctx, metav1.DeleteOptions{}, byLabel); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete pods: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (o *objects) createPod(ctx context.Context, out io.Writer) (*corev1.Pod, error) {
	fmt.Fprintln(out, "-> create a Pod")
	o.triedPods = true
	pod, err := o.pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "demo-watch-", Labels: map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": demoName}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
			// A delete without a grace period of its own takes this
			// one: 0, gone at once (pkg/registry/core/pod/strategy.go).
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod: %w", explain(err))
	}
	fmt.Fprintf(out, "   created %s\n", pod.Name)
	return pod, nil
}

func (o *objects) deletePod(ctx context.Context, out io.Writer, name string) error {
	fmt.Fprintf(out, "-> delete %s\n", name)
	if err := o.pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete pod %s: %w", name, explain(err))
	}
	return nil
}
