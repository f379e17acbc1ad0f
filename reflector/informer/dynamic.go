package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
)

// findResource maps a resource as kubectl names it (cm, configmaps,
// deployments.apps, deployments.v1.apps, crontabs.stable.example.com) to
// its GroupVersionResource through a RESTMapper that reads discovery, and
// says whether it is namespaced. An unknown name, or a CRD that is not
// installed, is a NoMatch error.
func findResource(ctx context.Context, config *rest.Config, arg string) (schema.GroupVersionResource, bool, error) {
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return schema.GroupVersionResource{}, false, fmt.Errorf("create discovery client: %w", err)
	}
	mapper := newRESTMapper(disco)
	full, gr := schema.ParseResourceArg(strings.ToLower(arg))
	var gvk schema.GroupVersionKind
	if full != nil {
		gvk, _ = mapper.KindForWithContext(ctx, *full)
	}
	if gvk.Empty() {
		gvk, err = mapper.KindForWithContext(ctx, gr.WithVersion(""))
	}
	var m *meta.RESTMapping
	if err == nil {
		m, err = mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	}
	switch {
	case meta.IsNoMatchError(err):
		return schema.GroupVersionResource{}, false, fmt.Errorf("-resource %q: the server has no such resource (is its CRD installed? kubectl api-resources lists them)", arg)
	case err != nil:
		return schema.GroupVersionResource{}, false, fmt.Errorf("find resource %q: %w", arg, explain(err))
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// compareInformers syncs a dynamic and a metadata-only informer for gvr
// (and, for ConfigMaps, a typed one from a second factory) over the demo's
// objects, one after the other, and prints what each cached and what its
// initial sync received.
func compareInformers(ctx context.Context, out io.Writer, config *rest.Config, gvr schema.GroupVersionResource, namespaced bool, ns string) error {
	if !namespaced {
		ns = metav1.NamespaceAll
	}
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = selector }
	type candidate struct {
		name, how string
		start     func(*rest.Config) (cache.SharedIndexInformer, func(context.Context), func(), error)
	}
	var candidates []candidate
	if gvr == corev1.SchemeGroupVersion.WithResource("configmaps") {
		candidates = append(candidates, candidate{"typed", "a second informers.SharedInformerFactory (a second WATCH and cache: what sharing one avoids)",
			func(c *rest.Config) (cache.SharedIndexInformer, func(context.Context), func(), error) {
				cs, err := kubernetes.NewForConfig(c)
				if err != nil {
					return nil, nil, nil, err
				}
				f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns), informers.WithTweakListOptions(tweak))
				return f.Core().V1().ConfigMaps().Informer(), f.StartWithContext, f.Shutdown, nil
			}})
	}
	candidates = append(candidates,
		candidate{"dynamic", "dynamicinformer.NewFilteredDynamicSharedInformerFactory(...).ForResource(gvr)",
			func(c *rest.Config) (cache.SharedIndexInformer, func(context.Context), func(), error) {
				dyn, err := dynamic.NewForConfig(c)
				if err != nil {
					return nil, nil, nil, err
				}
				f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, ns, tweak)
				// Of the three factories, only this one has no StartWithContext
				// (dynamicinformer/informer.go): it starts with a stop channel.
				return f.ForResource(gvr).Informer(), func(ctx context.Context) { f.Start(ctx.Done()) }, f.Shutdown, nil
			}},
		candidate{"metadata", "metadatainformer.NewFilteredSharedInformerFactory(...).ForResource(gvr)",
			func(c *rest.Config) (cache.SharedIndexInformer, func(context.Context), func(), error) {
				mc, err := metadata.NewForConfig(c)
				if err != nil {
					return nil, nil, nil, err
				}
				f := metadatainformer.NewFilteredSharedInformerFactory(mc, 0, ns, tweak)
				// The factory has StartWithContext (metadatainformer/informer.go),
				// but the SharedInformerFactory interface returned here lists
				// only Start(stopCh).
				start := func(ctx context.Context) { f.Start(ctx.Done()) }
				if withCtx, ok := f.(interface{ StartWithContext(context.Context) }); ok {
					start = withCtx.StartWithContext
				}
				return f.ForResource(gvr).Informer(), start, f.Shutdown, nil
			}},
	)
	for _, c := range candidates {
		cfg := rest.CopyConfig(config)
		requests := countRequests(cfg) // this informer's requests alone
		informer, start, shutdown, err := c.start(cfg)
		if err != nil {
			return fmt.Errorf("create %s informer: %w", c.name, err)
		}
		objects, err := syncAlone(ctx, informer, start, shutdown)
		if err != nil {
			return fmt.Errorf("sync the %s informer: %w", c.name, err)
		}
		var bytes int64
		contentType := ""
		for _, r := range requests.since(0) {
			bytes += r.bytes.Load()
			contentType, _ = r.contentType.Load().(string)
		}
		fmt.Fprintf(out, "  %-8s %s\n", c.name, c.how)
		fmt.Fprintf(out, "           %d objects, each a %s; %d request, %d bytes received (%s)\n",
			len(objects), objectType(c.name), requests.count(), bytes, contentType)
	}
	return nil
}

// syncAlone starts one informer, waits until it has synced (or a LIST or
// WATCH fails with an error retrying cannot cure), and stops it again.
func syncAlone(ctx context.Context, informer cache.SharedIndexInformer, start func(context.Context), shutdown func()) ([]any, error) {
	ctx, giveUp := context.WithCancelCause(ctx)
	defer func() { giveUp(nil); shutdown() }()
	// This handler ends the sync at an error that retrying cannot cure, and
	// logs nothing: the error becomes the demo's one line. It also replaces
	// client-go's default handler, which would log the error on stderr
	// through klog's global logger for the dynamic informer: the dynamic
	// factory has only Start(stopCh) (dynamicinformer/informer.go), so its
	// informers run without ctx and its logger.
	err := informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if !transient(err) {
			giveUp(explain(err))
		}
	})
	if err != nil {
		return nil, err
	}
	start(ctx)
	syncCtx, cancel := context.WithTimeoutCause(ctx, 30*time.Second, fmt.Errorf("not synced within 30s"))
	defer cancel()
	if !cache.WaitFor(syncCtx, "", informer.HasSyncedChecker()) {
		return nil, context.Cause(syncCtx)
	}
	return informer.GetStore().List(), nil
}

func objectType(name string) string {
	return map[string]string{"typed": "*v1.ConfigMap", "dynamic": "*unstructured.Unstructured", "metadata": "*v1.PartialObjectMetadata"}[name]
}

// newRESTMapper reads discovery once, through a memory cache, and knows
// the short names discovery lists (cm, deploy).
func newRESTMapper(disco discovery.DiscoveryInterfaceWithContext) meta.RESTMapperWithContext {
	cached := memory.NewMemCacheClientWithContext(disco)
	return restmapper.NewShortcutExpanderWithContext(restmapper.NewDeferredDiscoveryRESTMapperWithContext(cached), cached, nil)
}
