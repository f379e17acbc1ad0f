package main

// A RESTMapper built from discovery turns what a user types (deploy,
// Deployment, deployments.apps) into the resource's URL and kind, as
// kubectl does before every command.

import (
	"context"
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

// newRESTMapper is kubectl's mapper (k8s.io/cli-runtime's ToRESTMapper):
// a mapper that reads discovery on first use, through a memory cache, and
// a shortcut expander that knows the short names discovery reports
// (deploy, cm). It returns the cached discovery client too, for the
// suggestions of an unknown name.
func newRESTMapper(disco discovery.DiscoveryInterfaceWithContext) (meta.RESTMapperWithContext, discovery.CachedDiscoveryInterfaceWithContext) {
	cached := memory.NewMemCacheClientWithContext(disco)
	mapper := restmapper.NewShortcutExpanderWithContext(
		restmapper.NewDeferredDiscoveryRESTMapperWithContext(cached), cached, func(string) {})
	return mapper, cached
}

// resolve finds the RESTMapping for a name in kubectl's resource builder's
// order: first as a resource (deploy, deployments, deployments.apps,
// deployments.v1.apps), then as a kind (Deployment, Deployment.apps).
func resolve(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, arg string) (*meta.RESTMapping, error) {
	mapper, cached := newRESTMapper(disco)
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
	if close := closeNames(ctx, disco, arg); len(close) > 0 {
		msg += "; did you mean " + strings.Join(close, ", ") + "?"
	}
	return fmt.Errorf("%s", msg)
}

// printGVR shows what a name resolves to and what can be done with it.
func printGVR(ctx context.Context, disco *discovery.DiscoveryClient, out io.Writer, arg string) error {
	m, err := resolve(ctx, disco, arg)
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
