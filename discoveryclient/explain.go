package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
)

// resolve turns what a user types (deploy, Deployment, deployments.apps,
// deployments.v1.apps) into a RESTMapping, the way kubectl's resource
// builder does: first as a resource, then as a kind. The shortcut expander
// knows the short names that discovery reports.
func resolve(ctx context.Context, disco *discovery.DiscoveryClient, arg string) (*meta.RESTMapping, error) {
	cached := memory.NewMemCacheClientWithContext(disco)
	mapper := restmapper.NewShortcutExpanderWithContext(
		restmapper.NewDeferredDiscoveryRESTMapperWithContext(cached), cached, func(string) {})

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
	if meta.IsNoMatchError(err) {
		msg := fmt.Sprintf("the server doesn't have a resource type %q", arg)
		if close := closeNames(ctx, cached, arg); len(close) > 0 {
			msg += "; did you mean " + strings.Join(close, ", ") + "?"
		}
		return nil, fmt.Errorf("%s", msg)
	}
	if err != nil {
		return nil, explainErr(err)
	}
	return m, nil
}

// printGVR shows what a name resolves to and what can be done with it.
func printGVR(ctx context.Context, disco *discovery.DiscoveryClient, out io.Writer, arg string) error {
	m, err := resolve(ctx, disco, arg)
	if err != nil {
		return err
	}
	list, err := disco.ServerResourcesForGroupVersionWithContext(ctx, m.Resource.GroupVersion().String())
	if err != nil {
		return fmt.Errorf("get resources of %s: %w", m.Resource.GroupVersion(), explainErr(err))
	}
	for _, r := range list.APIResources {
		if r.Name != m.Resource.Resource {
			continue
		}
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
	return fmt.Errorf("%s is not in the discovery of %s", m.Resource.Resource, m.Resource.GroupVersion())
}

// explain prints the top level of a resource's schema, as `kubectl explain`
// does, from the OpenAPI v3 document of its group/version.
func explain(ctx context.Context, disco *discovery.DiscoveryClient, out io.Writer, arg string) error {
	m, err := resolve(ctx, disco, arg)
	if err != nil {
		return err
	}
	paths, err := disco.OpenAPIV3WithContext(ctx).PathsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get OpenAPI v3 paths: %w", explainErr(err))
	}
	key := "apis/" + m.Resource.Group + "/" + m.Resource.Version
	if m.Resource.Group == "" {
		key = "api/" + m.Resource.Version
	}
	gv, ok := paths[key]
	if !ok {
		return fmt.Errorf("the server publishes no OpenAPI v3 document for %s", key)
	}
	raw, err := gv.SchemaWithContext(ctx, "application/json")
	if err != nil {
		return fmt.Errorf("get OpenAPI v3 document %s: %w", key, explainErr(err))
	}
	var doc struct {
		Components struct {
			Schemas map[string]*openAPISchema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("decode OpenAPI v3 document %s: %w", key, err)
	}
	var s *openAPISchema
	for _, cand := range doc.Components.Schemas {
		for _, g := range cand.GVK {
			if g.Group == m.GroupVersionKind.Group && g.Version == m.GroupVersionKind.Version && g.Kind == m.GroupVersionKind.Kind {
				s = cand
			}
		}
	}
	if s == nil {
		return fmt.Errorf("no schema for %s in %s", m.GroupVersionKind, key)
	}

	if m.GroupVersionKind.Group != "" {
		fmt.Fprintf(out, "GROUP:      %s\n", m.GroupVersionKind.Group)
	}
	fmt.Fprintf(out, "KIND:       %s\n", m.GroupVersionKind.Kind)
	fmt.Fprintf(out, "VERSION:    %s\n\n", m.GroupVersionKind.Version)
	fmt.Fprintln(out, "DESCRIPTION:")
	wrap(out, s.Description, "    ")
	fmt.Fprintln(out, "    ")
	fmt.Fprintln(out, "FIELDS:")
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := s.Properties[name]
		required := ""
		if slices.Contains(s.Required, name) {
			required = " -required-"
		}
		fmt.Fprintf(out, "  %s\t<%s>%s\n", name, p.typeName(), required)
		wrap(out, p.description(), "    ")
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)
	return nil
}

// openAPISchema is the part of an OpenAPI v3 schema that explain prints.
type openAPISchema struct {
	Description          string                    `json:"description"`
	Type                 string                    `json:"type"`
	Ref                  string                    `json:"$ref"`
	AllOf                []*openAPISchema          `json:"allOf"`
	Items                *openAPISchema            `json:"items"`
	AdditionalProperties *openAPISchema            `json:"additionalProperties"`
	Properties           map[string]*openAPISchema `json:"properties"`
	Required             []string                  `json:"required"`
	GVK                  []struct {
		Group, Version, Kind string
	} `json:"x-kubernetes-group-version-kind"`
}

// typeName writes a type the way kubectl explain does: string, []Container,
// map[string]string, ObjectMeta.
func (s *openAPISchema) typeName() string {
	switch {
	case s.Ref != "":
		return s.Ref[strings.LastIndex(s.Ref, ".")+1:]
	case len(s.AllOf) == 1:
		return s.AllOf[0].typeName()
	case s.Type == "array" && s.Items != nil:
		return "[]" + s.Items.typeName()
	case s.Type == "object" && s.AdditionalProperties != nil:
		return "map[string]" + s.AdditionalProperties.typeName()
	case s.Type == "":
		return "Object"
	}
	return s.Type
}

func (s *openAPISchema) description() string {
	if s.Description == "" && len(s.AllOf) == 1 {
		return s.AllOf[0].Description
	}
	return s.Description
}

// wrap prints text indented, in lines of at most 76 characters, as
// kubectl explain's word wrapper does (runs of spaces are kept).
func wrap(out io.Writer, text, indent string) {
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for i, word := range strings.Split(para, " ") {
			if i > 0 && line != "" && len(line)+1+len(word) > 76 {
				fmt.Fprintln(out, indent+line)
				line = word
				continue
			}
			if i > 0 {
				line += " "
			}
			line += word
		}
		fmt.Fprintln(out, indent+line)
	}
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
