package main

// A RESTMapper built from discovery turns what a user types (deploy,
// Deployment, deployments.apps) into the resource's URL and kind, as
// kubectl does before every command.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
)

// newRESTMapper is built as kubectl's mapper is (k8s.io/cli-runtime's
// ToRESTMapper): a mapper that reads discovery on first use, wrapped in a
// shortcut expander that knows the short names discovery reports (deploy,
// cm). kubectl reads through its disk cache; this one-shot program through
// a memory cache. It returns that cache too, for the suggestions of an
// unknown name. A short name that two resources claim (ev: events in the
// core group and in events.k8s.io) maps to the one of higher priority, and
// the expander says so on warnings, as kubectl does on stderr.
//
// A long-running program that meets a meta.IsNoMatchError (a CRD
// installed since) calls meta.MaybeResetRESTMapperWithContext(ctx, mapper)
// and tries again: once the memory cache is filled it counts as fresh, and
// the mapper does not ask the server again by itself (KindForWithContext
// in client-go's restmapper/discovery.go).
func newRESTMapper(disco discovery.DiscoveryInterfaceWithContext, warnings io.Writer) (meta.RESTMapperWithContext, discovery.CachedDiscoveryInterfaceWithContext) {
	cached := memory.NewMemCacheClientWithContext(disco)
	mapper := restmapper.NewShortcutExpanderWithContext(
		restmapper.NewDeferredDiscoveryRESTMapperWithContext(cached), inGroupOrder{cached},
		func(warning string) { fmt.Fprintf(warnings, "Warning: %s\n", warning) })
	return mapper, cached
}

// inGroupOrder gives the shortcut expander the resource lists in the
// server's order of groups, in which the first resource to claim a short
// name wins. From a client that has aggregated discovery (the memory cache,
// the DiscoveryClient), ServerGroupsAndResourcesWithContext returns them in
// the random order of a Go map (client-go's discovery/discovery_client.go),
// so ev would map to events in the core group on one run and in
// events.k8s.io on the next. Without GroupsAndMaybeResourcesWithContext in
// its method set, the lists are read group by group from the cache, with no
// request: what kubectl's disk cache, which lacks that method too, does.
type inGroupOrder struct {
	discovery.CachedDiscoveryInterfaceWithContext
}

func (c inGroupOrder) ServerGroupsAndResourcesWithContext(ctx context.Context) ([]*metav1.APIGroup, []*metav1.APIResourceList, error) {
	return discovery.ServerGroupsAndResourcesWithContext(ctx, c)
}

// resolve finds the RESTMapping for a name in kubectl's resource builder's
// order: first as a resource (deploy, deployments, deployments.apps,
// deployments.v1.apps), then as a kind (Deployment, Deployment.apps).
func resolve(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, arg string, warnings io.Writer) (*meta.RESTMapping, error) {
	mapper, cached := newRESTMapper(disco, warnings)
	fullGVR, gr := schema.ParseResourceArg(strings.ToLower(arg))
	var gvk schema.GroupVersionKind
	if fullGVR != nil {
		gvk, _ = mapper.KindForWithContext(ctx, *fullGVR)
	}
	if gvk.Empty() {
		gvk, _ = mapper.KindForWithContext(ctx, gr.WithVersion(""))
	}
	if !gvk.Empty() {
		return mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	}
	fullGVK, gk := schema.ParseKindArg(arg)
	if fullGVK != nil {
		if m, err := mapper.RESTMappingWithContext(ctx, fullGVK.GroupKind(), fullGVK.Version); err == nil {
			return m, nil
		}
	}
	m, err := mapper.RESTMappingWithContext(ctx, gk)
	if err != nil {
		return nil, unknownResource(ctx, cached, arg, err)
	}
	return m, nil
}

// unknownResource puts a mapper's error into words: for a name the server
// does not know, kubectl's sentence plus the closest names it does know.
func unknownResource(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, arg string, err error) error {
	if !meta.IsNoMatchError(err) {
		return fmt.Errorf("resolve %q: %w", arg, explainDiscovery(err))
	}
	msg := fmt.Sprintf("the server doesn't have a resource type %q", arg)
	if near := closeNames(ctx, disco, arg); len(near) > 0 {
		msg += "; did you mean " + strings.Join(near, ", ") + "?"
	}
	return errors.New(msg)
}

// printGVR shows what a name resolves to and what can be done with it.
func printGVR(ctx context.Context, disco *discovery.DiscoveryClient, out, warnings io.Writer, arg string) error {
	m, err := resolve(ctx, disco, arg, warnings)
	if err != nil {
		return err
	}
	list, err := disco.ServerResourcesForGroupVersionWithContext(ctx, m.Resource.GroupVersion().String())
	if err != nil {
		return fmt.Errorf("get resources of %s: %w", m.Resource.GroupVersion(), explainDiscovery(err))
	}
	i := slices.IndexFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == m.Resource.Resource })
	if i < 0 {
		return fmt.Errorf("%s is not in the discovery of %s", m.Resource.Resource, m.Resource.GroupVersion())
	}
	r := list.APIResources[i]
	fmt.Fprintf(out, "%-17s %s\n", "input:", arg)
	fmt.Fprintf(out, "%-17s group=%q version=%q resource=%q\n", "resource (GVR):", m.Resource.Group, m.Resource.Version, m.Resource.Resource)
	fmt.Fprintf(out, "%-17s group=%q version=%q kind=%q\n", "kind (GVK):", m.GroupVersionKind.Group, m.GroupVersionKind.Version, m.GroupVersionKind.Kind)
	fmt.Fprintf(out, "%-17s %v\n", "namespaced:", r.Namespaced)
	fmt.Fprintf(out, "%-17s %s\n", "short names:", strings.Join(r.ShortNames, ","))
	fmt.Fprintf(out, "%-17s %s\n", "verbs:", strings.Join(r.Verbs, ","))
	// The eight verbs of the API, and which of them this resource lacks.
	var missing []string
	for _, v := range []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"} {
		if !slices.Contains(r.Verbs, v) {
			missing = append(missing, v)
		}
	}
	if len(missing) == 0 {
		missing = []string{"(none)"}
	}
	fmt.Fprintf(out, "%-17s %s\n", "not supported:", strings.Join(missing, ","))
	path := "/apis/" + m.Resource.Group + "/" + m.Resource.Version
	if m.Resource.Group == "" {
		path = "/api/" + m.Resource.Version
	}
	if r.Namespaced {
		path += "/namespaces/{namespace}"
	}
	fmt.Fprintf(out, "%-17s %s/%s\n", "URL:", path, m.Resource.Resource)
	return nil
}

// closeNames suggests resource names, kinds and short names near arg.
func closeNames(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, arg string) []string {
	lists, _ := disco.ServerPreferredResourcesWithContext(ctx)
	arg = strings.ToLower(arg)
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, r := range l.APIResources {
			for _, n := range append([]string{r.Name, r.SingularName, strings.ToLower(r.Kind)}, r.ShortNames...) {
				if n != "" && !seen[n] && (distance(arg, n) <= 2 || len(arg) >= 3 && strings.HasPrefix(n, arg)) {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
