package main

// -crd: a CustomResourceDefinition appears while a program holds a cached
// discovery client and a RESTMapper built on it, as every controller and
// kubectl do. What do they answer, and when do they ask the server again?

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// The CRD is cluster-scoped and its name is <plural>.<group>, the same in
// every run: a group of this demo's own, which nothing else uses.
var (
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	widgetGVK = schema.GroupVersionKind{Group: "discovery-demo.example.com", Version: "v1", Kind: "Widget"}
	widgetCRD = "widgets." + widgetGVK.Group
)

// crdAppears creates the Widget CRD between two questions to the same
// memory cache and deferred RESTMapper, and deletes it again, waiting
// until it is gone, on every way out (Ctrl-C included).
func crdAppears(ctx context.Context, config *rest.Config, stdout io.Writer) (err error) {
	// Count the requests, to show when the cache asks the server.
	var requests atomic.Int64
	counted := rest.CopyConfig(config)
	counted.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			requests.Add(1)
			return rt.RoundTrip(req)
		})
	})
	disco, err := discovery.NewDiscoveryClientForConfig(counted)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	crdClient := dyn.Resource(crdGVR)

	// Step 1: what a controller holds: a memory cache of discovery, and a
	// mapper that fills itself from that cache on first use.
	fmt.Fprintln(stdout, "Step 1: a memory-cached discovery client and a deferred RESTMapper, before the CRD exists")
	cached := memory.NewMemCacheClientWithContext(disco)
	mapper := restmapper.NewDeferredDiscoveryRESTMapperWithContext(cached)
	// show and showCache print an answer and how many requests it took.
	// A no-match and a cache miss are answers; any other error ends the
	// run (the server is unreachable, ctx was cancelled).
	show := func(label string) error {
		requests.Store(0)
		m, err := mapper.RESTMappingWithContext(ctx, widgetGVK.GroupKind(), widgetGVK.Version)
		n := requests.Load()
		switch {
		case meta.IsNoMatchError(err):
			fmt.Fprintf(stdout, "  %s: meta.IsNoMatchError=true, %d requests\n    %v\n", label, n, err)
		case err != nil:
			return fmt.Errorf("map kind %s: %w", widgetGVK.Kind, explainDiscovery(err))
		default:
			fmt.Fprintf(stdout, "  %s: resource %q, namespaced %v, %d requests\n", label, m.Resource.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, n)
		}
		return nil
	}
	showCache := func(label string) error {
		requests.Store(0)
		list, err := cached.ServerResourcesForGroupVersionWithContext(ctx, widgetGVK.GroupVersion().String())
		n := requests.Load()
		switch {
		case errors.Is(err, memory.ErrCacheNotFound):
			fmt.Fprintf(stdout, "  %s: memory.ErrCacheNotFound, %d requests\n", label, n)
		case err != nil:
			return fmt.Errorf("get resources of %s from the cache: %w", widgetGVK.GroupVersion(), explainDiscovery(err))
		default:
			var names []string
			for _, r := range list.APIResources {
				names = append(names, r.Name)
			}
			fmt.Fprintf(stdout, "  %s: resources %v, %d requests\n", label, names, n)
		}
		return nil
	}
	if err := errors.Join(show("mapper.RESTMapping(Widget)"), showCache("cache.ServerResourcesForGroupVersion")); err != nil {
		return err
	}
	if !cached.FreshWithContext(ctx) {
		return errors.New("the memory cache is not filled after the first mapping")
	}

	// Step 2: Established is the condition after which discovery lists
	// the new resource (apiextensions-apiserver's
	// customresource_discovery_controller.go).
	fmt.Fprintf(stdout, "Step 2: create CRD %s and wait until it is Established\n", widgetCRD)
	// The delete is deferred before the create: a create cut short by
	// Ctrl-C may still have reached the server, and the name is fixed, so a
	// leftover would make the next run fail. A create the server answered
	// with an error (403, 409 AlreadyExists) made nothing of ours to delete.
	ours := true
	defer func() {
		if !ours {
			return
		}
		ctx, cancel := cleanupContext(ctx)
		defer cancel()
		if derr := deleteWidgetCRD(ctx, crdClient); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if err := createWidgetCRD(ctx, crdClient); err != nil {
		var answered apierrors.APIStatus
		ours = !errors.As(err, &answered)
		return err
	}
	if err := waitEstablished(ctx, crdClient); err != nil {
		return fmt.Errorf("wait for CRD %s to be Established: %w", widgetCRD, err)
	}
	if err := waitDiscovery(ctx, disco, true); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "  an uncached DiscoveryClient lists widgets")

	// Step 3: the cache counts as fresh once filled (FreshWithContext in
	// memcache.go), and the mapper asks it again only when it is not
	// fresh (KindForWithContext in restmapper/discovery.go): both answer
	// from before the CRD, without a request.
	fmt.Fprintln(stdout, "Step 3: ask the same cache and mapper again")
	if err := errors.Join(show("mapper.RESTMapping(Widget)"), showCache("cache.ServerResourcesForGroupVersion")); err != nil {
		return err
	}

	// Step 4: meta.MaybeResetRESTMapper calls the mapper's Reset, which
	// invalidates the cache under it; the next question refills both.
	fmt.Fprintln(stdout, "Step 4: meta.MaybeResetRESTMapper (Reset, which calls the cache's Invalidate), then ask again")
	meta.MaybeResetRESTMapperWithContext(ctx, mapper)
	if err := errors.Join(show("mapper.RESTMapping(Widget)"), showCache("cache.ServerResourcesForGroupVersion")); err != nil {
		return err
	}

	// Step 5: stale the other way: the mapper maps a kind the server no
	// longer serves (a request to its URL would get a 404).
	fmt.Fprintln(stdout, "Step 5: delete the CRD, wait until it is gone, ask again, Reset, ask again")
	if err := deleteWidgetCRD(ctx, crdClient); err != nil {
		return err
	}
	if err := waitDiscovery(ctx, disco, false); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "  an uncached DiscoveryClient no longer lists widgets")
	if err := show("mapper.RESTMapping(Widget)"); err != nil {
		return err
	}
	// What Reset does to the cache, alone: the mapper keeps the mappings
	// it built and answers from them.
	cached.InvalidateWithContext(ctx)
	if err := show("after cache.Invalidate only"); err != nil {
		return err
	}
	mapper.ResetWithContext(ctx)
	return show("after mapper.Reset")
}

// createWidgetCRD creates the Widget CRD, labelled as every demo object.
func createWidgetCRD(ctx context.Context, crds dynamic.ResourceInterface) error {
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": map[string]any{
			"name":   widgetCRD,
			"labels": map[string]any{partOfKey: partOfValue},
		},
		"spec": map[string]any{
			"group": widgetGVK.Group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": widgetGVK.Kind},
			"versions": []any{map[string]any{
				"name": widgetGVK.Version, "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
	_, err := crds.Create(ctx, crd, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("CRD %s already exists (another run, or a leftover: kubectl delete crd -l %s): %w", widgetCRD, partOf, err)
	}
	if err != nil {
		return fmt.Errorf("create CRD %s: %w", widgetCRD, explain(err))
	}
	return nil
}

// waitEstablished polls the CRD until its Established condition is True.
func waitEstablished(ctx context.Context, crds dynamic.ResourceInterface) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd, err := crds.Get(ctx, widgetCRD, metav1.GetOptions{})
		if err != nil {
			return false, permanent(err)
		}
		// CRD conditions have the fields of a metav1.Condition that
		// matter here; the converter fills only those it finds.
		var c struct {
			Status struct {
				Conditions []metav1.Condition `json:"conditions"`
			} `json:"status"`
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crd.Object, &c); err != nil {
			return false, err
		}
		if n := meta.FindStatusCondition(c.Status.Conditions, "NamesAccepted"); n != nil && n.Status == metav1.ConditionFalse {
			return false, fmt.Errorf("names not accepted: %s", n.Message)
		}
		return meta.IsStatusConditionTrue(c.Status.Conditions, "Established"), nil
	})
}

// deleteWidgetCRD deletes the CRD and waits until it is gone: the API
// server first deletes every Widget (the finalizer
// customresourcecleanup.apiextensions.k8s.io), then the CRD.
func deleteWidgetCRD(ctx context.Context, crds dynamic.ResourceInterface) error {
	err := crds.Delete(ctx, widgetCRD, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete CRD %s: %w", widgetCRD, explain(err))
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := crds.Get(ctx, widgetCRD, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, permanent(err)
	})
	if err != nil {
		return fmt.Errorf("wait for CRD %s to be gone: %w", widgetCRD, err)
	}
	return nil
}

// waitDiscovery polls an uncached discovery client until the Widget's
// group/version is served (or, with served false, no longer served):
// the discovery controller follows the CRD a moment later.
func waitDiscovery(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, served bool) error {
	gv := widgetGVK.GroupVersion().String()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := disco.ServerResourcesForGroupVersionWithContext(ctx, gv)
		switch {
		case apierrors.IsNotFound(err):
			return !served, nil
		case err != nil:
			return false, permanent(err)
		}
		return served && len(list.APIResources) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("wait for discovery of %s (served %v): %w", gv, served, err)
	}
	return nil
}

// permanent is for the polls above: nil for an error that may go away by
// itself (the server is busy or restarting: 429, 5xx, a timeout), so the
// poll tries again; the error, put into words, for any other.
func permanent(err error) error {
	switch {
	case err == nil, apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return nil
	}
	return explainDiscovery(err)
}
