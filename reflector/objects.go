package main

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// objects are the typed calls for the two resources the demo can reflect.
type objects struct {
	resource     string // configmaps or pods
	kind         string
	expected     runtime.Object
	list         func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch        func(context.Context, metav1.ListOptions) (watch.Interface, error)
	create       func(ctx context.Context, i int) (runtime.Object, error)
	get          func(ctx context.Context, name string) (runtime.Object, error)
	update       func(ctx context.Context, name string) (runtime.Object, error)
	updateObject func(ctx context.Context, obj runtime.Object) (runtime.Object, error)
	delete       func(ctx context.Context, name string) error
	deleteAll    func(ctx context.Context) error
}

func newObjects(cs kubernetes.Interface, resource, ns string) objects {
	labels := map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": "reflector"}
	meta := metav1.ObjectMeta{GenerateName: "demo-reflector-", Labels: labels}
	byLabel := metav1.ListOptions{LabelSelector: partOf + ",app.kubernetes.io/name=reflector"}
	if resource == "pods" {
		c := cs.CoreV1().Pods(ns)
		bump := func(p *corev1.Pod) {
			p.Annotations = map[string]string{"demo/updated": time.Now().Format(time.RFC3339Nano)}
		}
		return objects{
			resource: resource,
			kind:     "Pod",
			expected: &corev1.Pod{},
			list:     func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
			watch:    c.Watch,
			create: func(ctx context.Context, i int) (runtime.Object, error) {
				return c.Create(ctx, &corev1.Pod{ObjectMeta: meta, Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
					TerminationGracePeriodSeconds: ptr.To[int64](0),
				}}, metav1.CreateOptions{})
			},
			get: func(ctx context.Context, name string) (runtime.Object, error) {
				return c.Get(ctx, name, metav1.GetOptions{})
			},
			// Read-modify-write, again on a Conflict: the scheduler and
			// kwok write the Pod's status meanwhile.
			update: func(ctx context.Context, name string) (obj runtime.Object, err error) {
				err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
					p, err := c.Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					bump(p)
					obj, err = c.Update(ctx, p, metav1.UpdateOptions{})
					return err
				})
				return obj, err
			},
			updateObject: func(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
				p := obj.(*corev1.Pod)
				bump(p)
				return c.Update(ctx, p, metav1.UpdateOptions{})
			},
			delete: func(ctx context.Context, name string) error {
				return c.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			},
			deleteAll: func(ctx context.Context) error {
				return c.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, byLabel)
			},
		}
	}
	c := cs.CoreV1().ConfigMaps(ns)
	n := 0
	bump := func(cm *corev1.ConfigMap) { n++; cm.Data = map[string]string{"updates": strconv.Itoa(n)} }
	return objects{
		resource: resource,
		kind:     "ConfigMap",
		expected: &corev1.ConfigMap{},
		list:     func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		watch:    c.Watch,
		create: func(ctx context.Context, i int) (runtime.Object, error) {
			return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"index": strconv.Itoa(i)}}, metav1.CreateOptions{})
		},
		get: func(ctx context.Context, name string) (runtime.Object, error) {
			return c.Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, name string) (obj runtime.Object, err error) {
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cm, err := c.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				bump(cm)
				obj, err = c.Update(ctx, cm, metav1.UpdateOptions{})
				return err
			})
			return obj, err
		},
		updateObject: func(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
			cm := obj.(*corev1.ConfigMap)
			bump(cm)
			return c.Update(ctx, cm, metav1.UpdateOptions{})
		},
		delete:    func(ctx context.Context, name string) error { return c.Delete(ctx, name, metav1.DeleteOptions{}) },
		deleteAll: func(ctx context.Context) error { return c.DeleteCollection(ctx, metav1.DeleteOptions{}, byLabel) },
	}
}
