package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"
)

// showSelectors is -show selectors: label and field selectors built with
// apimachinery's labels and fields packages, the TypeMeta a typed Get
// leaves empty, and a labelled DeleteCollection, on three Pods.
func showSelectors(ctx context.Context, clientset kubernetes.Interface, ns string, podTimeout time.Duration, stdout io.Writer) (err error) {
	pods := clientset.CoreV1().Pods(ns)
	// Every selector below also requires this run's instance label, so Pods
	// of another run or of someone else in the namespace never match.
	runID := "demo-" + demoName + "-" + utilrand.String(5)
	instance := labels.Set{instanceKey: runID}

	// Selectors 1: two Pods that run and one that cannot be scheduled, so
	// that the selectors below have something to tell apart.
	var webProd string // the first Pod's name
	fmt.Fprintln(stdout, "Selectors 1: create three Pods: tier=web env=prod, tier=web env=dev canary, tier=db env=prod (unschedulable)")
	for _, p := range []struct {
		labels        labels.Set
		unschedulable bool
	}{
		{labels: labels.Set{"tier": "web", "env": "prod"}},
		{labels: labels.Set{"tier": "web", "env": "dev", "canary": "true"}},
		{labels: labels.Set{"tier": "db", "env": "prod"}, unschedulable: true},
	} {
		pod := selectorPod(labels.Merge(p.labels, instance), p.unschedulable)
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		created, err := pods.Create(rctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
		cancel()
		if err != nil {
			return fmt.Errorf("create pod in namespace %q: %w", ns, explain(err))
		}
		if webProd == "" {
			webProd = created.Name
			// Created one by one, deleted all at once on every way out:
			// one DeleteCollection by the instance label (Selectors 5 is
			// the lesson), deferred once, after the first create.
			defer func() {
				ctx, cancel := cleanupContext(ctx)
				defer cancel()
				derr := pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: instance.String()})
				if derr != nil {
					err = errors.Join(err, fmt.Errorf("delete pods %s: %w", instance, explain(derr)))
				}
			}()
		}
	}
	web := labels.SelectorFromSet(labels.Set{"tier": "web", instanceKey: runID})
	if err := waitForPods(ctx, pods, web.String(), 2, podTimeout, stdout); err != nil {
		return err
	}

	// Selectors 2: a selector is a value built and validated by the
	// library, never a string glued together: a value with a space or a
	// comma would change its meaning.
	fmt.Fprintln(stdout, "Selectors 2: label selectors built with k8s.io/apimachinery/pkg/labels")
	mine, err := labels.NewRequirement(instanceKey, selection.Equals, []string{runID})
	if err != nil {
		return fmt.Errorf("build requirement: %w", err)
	}
	notDev, err := labels.NewRequirement("env", selection.NotIn, []string{"dev", "test"})
	if err != nil {
		return fmt.Errorf("build requirement: %w", err)
	}
	inTiers, err := labels.NewRequirement("tier", selection.In, []string{"web", "db"})
	if err != nil {
		return fmt.Errorf("build requirement: %w", err)
	}
	canary, err := labels.NewRequirement("canary", selection.Exists, nil)
	if err != nil {
		return fmt.Errorf("build requirement: %w", err)
	}
	parsed, err := labels.Parse("tier in (web, db), env=prod, !canary")
	if err != nil {
		return fmt.Errorf("parse selector: %w", err)
	}
	for _, s := range []struct {
		how string
		sel labels.Selector
	}{
		{"SelectorFromSet(tier=web)", web},
		{"NewRequirement(tier In web,db) + (env NotIn dev,test)", labels.NewSelector().Add(*mine, *inTiers, *notDev)},
		{"NewRequirement(canary Exists)", labels.NewSelector().Add(*mine, *canary)},
		{`Parse("tier in (web, db), env=prod, !canary")`, parsed.Add(*mine)},
	} {
		if err := listPods(ctx, pods, s.how, metav1.ListOptions{LabelSelector: s.sel.String()}, stdout); err != nil {
			return err
		}
	}
	// A bad value fails in the library, before any request; the same
	// string sent as it is gets 400 Bad Request from the server.
	_, err = labels.NewRequirement("tier", selection.In, []string{"web app"})
	fmt.Fprintf(stdout, "  NewRequirement(tier In \"web app\"): %v\n", err)
	_, err = labels.Parse("tier in web")
	fmt.Fprintf(stdout, "  Parse(\"tier in web\"): %v\n", err)
	if err := expectBadRequest(ctx, pods, metav1.ListOptions{LabelSelector: "tier in web"}, stdout); err != nil {
		return err
	}

	// Selectors 3: field selectors work on the few fields each resource
	// indexes; for Pods metadata.name, metadata.namespace, spec.nodeName,
	// spec.restartPolicy, spec.schedulerName, spec.serviceAccountName,
	// spec.hostNetwork, status.phase, status.podIP, status.podIPs and
	// status.nominatedNodeName (kubernetes pkg/apis/core/v1/conversion.go).
	// They combine with a label selector in one List.
	fmt.Fprintln(stdout, "Selectors 3: field selectors on Pods with k8s.io/apimachinery/pkg/fields")
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	first, err := pods.Get(rctx, webProd, metav1.GetOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("get pod %s: %w", webProd, explain(err))
	}
	for _, s := range []struct {
		how string
		sel fields.Selector
	}{
		{"metadata.name=<the tier=web env=prod Pod>", fields.OneTermEqualSelector("metadata.name", first.Name)},
		{"status.phase=Pending", fields.OneTermEqualSelector("status.phase", string(corev1.PodPending))},
		{"spec.nodeName=<its node>,status.phase=Running", fields.AndSelectors(
			fields.OneTermEqualSelector("spec.nodeName", first.Spec.NodeName),
			fields.OneTermEqualSelector("status.phase", string(corev1.PodRunning)))},
		{`spec.nodeName="" (not scheduled yet)`, fields.OneTermEqualSelector("spec.nodeName", "")},
	} {
		opts := metav1.ListOptions{LabelSelector: instance.String(), FieldSelector: s.sel.String()}
		if err := listPods(ctx, pods, s.how, opts, stdout); err != nil {
			return err
		}
	}
	// A field the resource does not index is 400 Bad Request.
	if err := expectBadRequest(ctx, pods, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.priority", "0").String()}, stdout); err != nil {
		return err
	}

	// Selectors 4: the typed client's decoder clears kind and apiVersion
	// (runtime.WithoutVersionDecoder in apimachinery pkg/runtime/helper.go,
	// used by the clientset's codecs.WithoutConversion()): the Go type
	// already says what the object is. Code that serializes the object, or
	// hands it on as a runtime.Object, asks the scheme.
	fmt.Fprintln(stdout, "Selectors 4: a typed Get leaves TypeMeta empty; the scheme's ObjectKinds fills it")
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	list, err := pods.List(rctx, metav1.ListOptions{LabelSelector: web.String()})
	cancel()
	if err != nil {
		return fmt.Errorf("list pods %s: %w", web, explain(err))
	}
	if len(list.Items) == 0 {
		return fmt.Errorf("list pods %s: none left (did someone delete them?)", web)
	}
	fmt.Fprintf(stdout, "  after Get: kind %q, apiVersion %q; after List: list kind %q, items' kind %q\n", first.Kind, first.APIVersion, list.Kind, list.Items[0].Kind)
	gvks, _, err := scheme.Scheme.ObjectKinds(first)
	if err != nil {
		return fmt.Errorf("look up the kind of %T: %w", first, err)
	}
	first.GetObjectKind().SetGroupVersionKind(gvks[0])
	fmt.Fprintf(stdout, "  scheme.Scheme.ObjectKinds(%T) = %v; after SetGroupVersionKind: kind %q, apiVersion %q\n", first, gvks, first.Kind, first.APIVersion)

	// Selectors 5: one request deletes every Pod the selector matches.
	// The policy says what happens to their dependents (a Pod has none
	// here; for Deployments or Jobs it decides whether their ReplicaSets
	// or Pods go too).
	fmt.Fprintln(stdout, "Selectors 5: DeleteCollection with a label selector and a propagation policy")
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	err = pods.DeleteCollection(rctx, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)},
		metav1.ListOptions{LabelSelector: web.String()})
	cancel()
	if err != nil {
		return fmt.Errorf("delete pods %s: %w", web, explain(err))
	}
	fmt.Fprintf(stdout, "  DeleteCollection(%s, Background)\n", web)
	if err := waitForPods(ctx, pods, web.String(), 0, podTimeout, stdout); err != nil {
		return err
	}
	return listPods(ctx, pods, "what is left", metav1.ListOptions{LabelSelector: instance.String()}, stdout)
}

// selectorPod is a Pod with these labels; unschedulable asks for a node
// label no node has, so it stays Pending with no spec.nodeName.
func selectorPod(podLabels labels.Set, unschedulable bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "demo-" + demoName + "-",
			Labels:       labels.Merge(podLabels, labels.Set{partOfKey: partOfValue}),
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.17.1", ImagePullPolicy: corev1.PullIfNotPresent}},
		},
	}
	if unschedulable {
		pod.Spec.NodeSelector = map[string]string{"example.com/no-such-node": "true"}
	}
	return pod
}

// listPods lists with opts and prints which Pods matched, by their tier
// and env labels (their names are random).
func listPods(ctx context.Context, pods typedcorev1.PodInterface, how string, opts metav1.ListOptions, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := pods.List(ctx, opts)
	if err != nil {
		return fmt.Errorf("list pods (%s): %w", how, explain(err))
	}
	var matched []string
	for _, p := range list.Items {
		matched = append(matched, p.Labels["tier"]+"/"+p.Labels["env"])
	}
	slices.Sort(matched)
	fmt.Fprintf(stdout, "  %s\n    ?%s -> %d: %s\n", how, selectorQuery(opts), len(matched), strings.Join(matched, " "))
	return nil
}

func selectorQuery(opts metav1.ListOptions) string {
	var q []string
	if opts.LabelSelector != "" {
		q = append(q, "labelSelector="+opts.LabelSelector)
	}
	if opts.FieldSelector != "" {
		q = append(q, "fieldSelector="+opts.FieldSelector)
	}
	return strings.Join(q, "&")
}

// expectBadRequest lists with opts, which the server must refuse with 400
// Bad Request, and prints its message.
func expectBadRequest(ctx context.Context, pods typedcorev1.PodInterface, opts metav1.ListOptions, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := pods.List(ctx, opts)
	if !apierrors.IsBadRequest(err) {
		return fmt.Errorf("list pods ?%s: got %v, want 400 Bad Request", selectorQuery(opts), explain(err))
	}
	fmt.Fprintf(stdout, "  the server, ?%s: 400 %v\n", selectorQuery(opts), err)
	return nil
}
