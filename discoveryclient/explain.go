package main

// -explain prints what `kubectl explain` prints, from the OpenAPI v3
// document the server publishes for the resource's group/version. kubectl
// renders that document with a template (k8s.io/kubectl's
// pkg/explain/v2/templates/plaintext.tmpl); the functions below follow the
// template's parts of the same names, in Go. Not ported: --recursive,
// --api-version and the OpenAPI v2 fallback for servers without v3.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/jsonpath"
)

// explainResource prints the documentation of a resource (configmap) or
// of a field in it (deployment.spec.strategy).
func explainResource(ctx context.Context, disco *discovery.DiscoveryClient, out, warnings io.Writer, arg string) error {
	gvr, fieldPath, err := explainTarget(ctx, disco, arg, warnings)
	if err != nil {
		return err
	}
	// /openapi/v3 lists one document per group/version, each with a hash in
	// its URL so that clients can cache it; fetch only the one we need.
	paths, err := disco.OpenAPIV3WithContext(ctx).PathsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get OpenAPI v3 paths: %w", explainDiscovery(err))
	}
	key := "apis/" + gvr.Group + "/" + gvr.Version
	if gvr.Group == "" {
		key = "api/" + gvr.Version
	}
	gv, ok := paths[key]
	if !ok {
		return fmt.Errorf("the server publishes no OpenAPI v3 document for %s", key)
	}
	raw, err := gv.SchemaWithContext(ctx, runtime.ContentTypeJSON)
	if err != nil {
		return fmt.Errorf("get OpenAPI v3 document %s: %w", key, explainDiscovery(err))
	}
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("decode OpenAPI v3 document %s: %w", key, err)
	}
	text, err := doc.explain(gvr, fieldPath)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, text)
	return err
}

// explainTarget splits what the user typed into a resource and a field
// path as kubectl explain does (SplitAndParseResourceRequestWithMatchingPrefix
// in k8s.io/kubectl's pkg/explain/explain.go): the first word goes to the
// RESTMapper; if the input starts with the resource.group it found
// (deployments.apps.spec), the path is what follows, else the words after
// the first (deploy.spec).
func explainTarget(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, arg string, warnings io.Writer) (schema.GroupVersionResource, []string, error) {
	nodes, err := jsonPathNodes(arg)
	if err != nil {
		return schema.GroupVersionResource{}, nil, err
	}
	words, err := fieldNames(arg, nodes)
	if err != nil {
		return schema.GroupVersionResource{}, nil, err
	}
	mapper, cached := newRESTMapper(disco, warnings)
	gvrs, err := mapper.ResourcesForWithContext(ctx, schema.GroupVersionResource{Resource: words[0]})
	if err == nil && len(gvrs) == 0 {
		err = &meta.NoResourceMatchError{PartialResource: schema.GroupVersionResource{Resource: words[0]}}
	}
	if err != nil {
		return schema.GroupVersionResource{}, nil, unknownResource(ctx, cached, words[0], err)
	}
	for _, gvr := range gvrs {
		gr := gvr.GroupResource().String()
		if !strings.HasPrefix(arg, gr) {
			continue
		}
		if arg == gr {
			return gvr, nil, nil
		}
		// kubectl parses ".spec" as "{..spec}" and drops the first node.
		nodes, err := jsonPathNodes(arg[len(gr):])
		if err != nil {
			return schema.GroupVersionResource{}, nil, err
		}
		path, err := fieldNames(arg, nodes[1:])
		return gvr, path, err
	}
	return gvrs[0], words[1:], nil
}

// jsonPathNodes parses a.b.c as the JSONPath {.a.b.c}, as kubectl does.
func jsonPathNodes(in string) ([]jsonpath.Node, error) {
	p, err := jsonpath.Parse("explain", "{."+strings.TrimSuffix(in, ".")+"}")
	if err != nil {
		return nil, usagef("-explain %q: %w", in, err)
	}
	if len(p.Root.Nodes) != 1 {
		return nil, usagef("-explain %q: want one resource or field path", in)
	}
	list, ok := p.Root.Nodes[0].(*jsonpath.ListNode)
	if !ok || len(list.Nodes) == 0 {
		return nil, usagef("-explain %q: want one resource or field path", in)
	}
	return list.Nodes, nil
}

func fieldNames(arg string, nodes []jsonpath.Node) ([]string, error) {
	var names []string
	for _, n := range nodes {
		f, ok := n.(*jsonpath.FieldNode)
		if !ok {
			return nil, usagef("-explain %q: want a resource, then field names, separated by dots", arg)
		}
		names = append(names, f.Value)
	}
	return names, nil
}

// openAPIDoc is the part of an OpenAPI v3 document that explain reads.
type openAPIDoc struct {
	Paths map[string]struct {
		Get, Post, Put, Patch, Delete *struct {
			GVK *groupVersionKind `json:"x-kubernetes-group-version-kind"`
		}
	} `json:"paths"`
	Components struct {
		Schemas map[string]*openAPISchema `json:"schemas"`
	} `json:"components"`
}

type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

type openAPISchema struct {
	Ref                  string                    `json:"$ref"`
	Description          string                    `json:"description"`
	Type                 string                    `json:"type"`
	Items                subschema                 `json:"items"`
	AdditionalProperties subschema                 `json:"additionalProperties"`
	AllOf                []*openAPISchema          `json:"allOf"`
	Properties           map[string]*openAPISchema `json:"properties"`
	Required             []string                  `json:"required"`
	Enum                 []any                     `json:"enum"`
	ExternalDocs         *struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	} `json:"externalDocs"`
	GVKs []groupVersionKind `json:"x-kubernetes-group-version-kind"`
}

// subschema is an optional schema; {}, true and false count as absent, as
// empty maps and booleans do in kubectl's template.
type subschema struct{ s *openAPISchema }

func (sub *subschema) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' || bytes.Equal(b, []byte("{}")) {
		return nil
	}
	sub.s = new(openAPISchema)
	return json.Unmarshal(b, sub.s)
}

// explain is the template's main part: the header from the GVK of the
// resource's paths, then the schema with that GVK.
func (d *openAPIDoc) explain(gvr schema.GroupVersionResource, fieldPath []string) (string, error) {
	gvk := d.gvkOf(gvr)
	if gvk == nil {
		return "", fmt.Errorf("GVR (%v) not found in OpenAPI schema", gvr)
	}
	var b strings.Builder
	if gvk.Group != "" {
		fmt.Fprintf(&b, "GROUP:      %s\n", gvk.Group)
	}
	fmt.Fprintf(&b, "KIND:       %s\nVERSION:    %s\n\n", gvk.Kind, gvk.Version)
	// The first schema, by name, that lists the GVK.
	names := make([]string, 0, len(d.Components.Schemas))
	for name := range d.Components.Schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	i := slices.IndexFunc(names, func(n string) bool { return slices.Contains(d.Components.Schemas[n].GVKs, *gvk) })
	if i < 0 {
		return "", fmt.Errorf("GVK %v not found in OpenAPI schema", *gvk)
	}
	out := d.output(d.Components.Schemas[names[i]], fieldPath, nil)
	if out == "" {
		return "", fmt.Errorf("field %q does not exist", fieldPath[len(fieldPath)-1])
	}
	return b.String() + out + "\n", nil
}

// gvkOf reads the GVK from the operations on the resource's paths, as the
// template does (the last path that has one wins).
func (d *openAPIDoc) gvkOf(gvr schema.GroupVersionResource) *groupVersionKind {
	prefix := "/apis/" + gvr.Group + "/" + gvr.Version
	if gvr.Group == "" {
		prefix = "/api/" + gvr.Version
	}
	var gvk *groupVersionKind
	for _, path := range []string{
		prefix + "/" + gvr.Resource,
		prefix + "/" + gvr.Resource + "/{name}",
		prefix + "/namespaces/{namespace}/" + gvr.Resource,
		prefix + "/namespaces/{namespace}/" + gvr.Resource + "/{name}",
	} {
		item, ok := d.Paths[path]
		if !ok {
			continue
		}
		for _, op := range []*struct {
			GVK *groupVersionKind `json:"x-kubernetes-group-version-kind"`
		}{item.Get, item.Post, item.Put, item.Patch, item.Delete} {
			if op == nil {
				continue
			}
			if gvk = op.GVK; gvk != nil {
				break
			}
		}
	}
	return gvk
}

// resolve follows a "#/components/schemas/<name>" reference; a schema
// without one, or with one that leads nowhere, is itself.
func (d *openAPIDoc) resolve(s *openAPISchema) *openAPISchema {
	if r := d.ref(s.Ref); r != nil {
		return r
	}
	return s
}

func (d *openAPIDoc) ref(ref string) *openAPISchema {
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok {
		return nil
	}
	return d.Components.Schemas[name]
}

// output is the template's "output": follow the field path, then print
// FIELD (for a path), DESCRIPTION and FIELDS. An empty result means the
// path does not exist. history holds the references followed since the
// last field, to stop at cycles.
func (d *openAPIDoc) output(s *openAPISchema, path []string, history []string) string {
	if s.Ref != "" && slices.Contains(history, s.Ref) {
		return ""
	}
	next := append(slices.Clip(history), s.Ref)
	r := d.resolve(s)
	var b strings.Builder
	switch {
	case len(path) == 0:
		b.WriteString("DESCRIPTION:\n")
		desc := d.description(r, nil)
		if desc == "" {
			desc = "<empty>"
		}
		b.WriteString(indent(4, wrap(76, desc)) + "\n")
		if e := r.ExternalDocs; e != nil && (e.Description != "" || e.URL != "") {
			b.WriteString("\nEXTERNAL DOCS:\n")
			if e.Description != "" {
				b.WriteString(indent(4, wrap(76, e.Description)) + "\n")
			}
			if e.URL != "" {
				b.WriteString(indent(4, "URL: "+e.URL) + "\n")
			}
		}
		if fields := d.fieldList(r, 1, nil); fields != "" {
			b.WriteString("FIELDS:\n" + fields)
		}
	case r.Properties[path[0]] != nil:
		field := r.Properties[path[0]]
		if len(path) == 1 {
			fmt.Fprintf(&b, "FIELD: %s <%s>\n%s\n\n", path[0], d.typeGuess(field), enum(field, -1, 0))
		}
		b.WriteString(d.output(field, path[1:], nil))
	case r.Items.s != nil:
		b.WriteString(d.output(r.Items.s, path, next))
	case r.AdditionalProperties.s != nil:
		b.WriteString(d.output(r.AdditionalProperties.s, path, next))
	default:
		for _, alt := range r.AllOf {
			if out := d.output(alt, path, next); out != "" {
				b.WriteString(out)
				break
			}
		}
	}
	return b.String()
}

// description joins the descriptions of a schema and of the schemas it is
// made of (allOf, items, additionalProperties), one per line.
func (d *openAPIDoc) description(s *openAPISchema, seen []string) string {
	if s.Ref != "" && slices.Contains(seen, s.Ref) {
		return "" // kubectl's template would recurse until its depth limit
	}
	seen = append(slices.Clip(seen), s.Ref)
	r := d.resolve(s)
	var b strings.Builder
	if r.Description != "" {
		b.WriteString(r.Description + "\n")
	}
	for _, alt := range r.AllOf {
		b.WriteString(d.description(alt, seen))
	}
	if r.Items.s != nil {
		b.WriteString(d.description(r.Items.s, seen))
	}
	if r.AdditionalProperties.s != nil {
		b.WriteString(d.description(r.AdditionalProperties.s, seen))
	}
	return b.String()
}

// fieldList lists the fields of a schema, sorted, with those of the
// schemas it is made of.
func (d *openAPIDoc) fieldList(s *openAPISchema, level int, history []string) string {
	if s.Ref != "" && slices.Contains(history, s.Ref) {
		return ""
	}
	next := append(slices.Clip(history), s.Ref)
	r := d.resolve(s)
	var b strings.Builder
	names := make([]string, 0, len(r.Properties))
	for name := range r.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b.WriteString(d.fieldDetail(r, name, level))
	}
	for _, alt := range r.AllOf {
		b.WriteString(d.fieldList(alt, level, next))
	}
	if r.Items.s != nil {
		b.WriteString(d.fieldList(r.Items.s, level, next))
	}
	if r.AdditionalProperties.s != nil {
		b.WriteString(d.fieldList(r.AdditionalProperties.s, level, next))
	}
	return b.String()
}

// fieldDetail prints one field: name, type, -required-, up to four enum
// values, then its description.
func (d *openAPIDoc) fieldDetail(parent *openAPISchema, name string, level int) string {
	in := level * 2
	f := parent.Properties[name]
	var b strings.Builder
	b.WriteString(indent(in, name) + "\t<" + d.typeGuess(f) + ">")
	if slices.Contains(parent.Required, name) {
		b.WriteString(" -required-")
	}
	b.WriteString(enum(f, 4, in) + "\n")
	desc := f.Description
	if desc == "" {
		desc = "<no description>"
	}
	b.WriteString(indent(in+2, wrap(78-in, desc)) + "\n")
	if e := f.ExternalDocs; e != nil && (e.Description != "" || e.URL != "") {
		b.WriteString("\n" + indent(in+2, "EXTERNAL DOCS:") + "\n")
		if e.Description != "" {
			b.WriteString(indent(in+4, wrap(76-in, e.Description)) + "\n")
		}
		if e.URL != "" {
			b.WriteString(indent(in+4, "URL: "+e.URL) + "\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}

// typeGuess names a field's type as kubectl explain does: string,
// []Container, map[string]string, ObjectMeta, Object.
func (d *openAPIDoc) typeGuess(s *openAPISchema) string {
	switch {
	case s.Items.s != nil:
		return "[]" + d.typeGuess(s.Items.s)
	case s.AdditionalProperties.s != nil:
		return "map[string]" + d.typeGuess(s.AdditionalProperties.s)
	case len(s.AllOf) == 1 && len(s.Properties) == 0:
		return d.typeGuess(s.AllOf[0])
	case s.Ref != "":
		// A reference to an object is named by its last dotted part;
		// one to a string or number by that type.
		if r := d.ref(s.Ref); r != nil && r.Type != "" && r.Type != "object" {
			return r.Type
		}
		name := s.Ref[strings.LastIndex(s.Ref, "/")+1:]
		if name = name[strings.LastIndex(name, ".")+1:]; name != "" {
			return name
		}
		return "Object"
	case s.Type == "" || s.Type == "object":
		return "Object"
	}
	return s.Type
}

// enum lists a field's allowed values: on the field's line after "enum: "
// (at most limit of them), or one per line after "ENUM:" (limit -1) under
// FIELD.
func enum(s *openAPISchema, limit, in int) string {
	if len(s.Enum) == 0 {
		return ""
	}
	var b strings.Builder
	if limit >= 0 {
		b.WriteString("\n" + strings.Repeat(" ", in) + "enum: ")
	} else {
		b.WriteString("ENUM:")
	}
	for i, v := range s.Enum {
		if limit >= 0 && i >= limit {
			b.WriteString(", ....")
			break
		}
		if limit >= 0 && i > 0 {
			b.WriteString(", ")
		} else if limit < 0 {
			b.WriteString("\n    ")
		}
		switch v {
		case "":
			b.WriteString(`""`)
		case nil:
			b.WriteString("<no value>") // what a template prints for null
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

// indent is the template's indent: every line, the first included, gets
// n spaces, also the empty line after a final newline.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// wrap breaks lines at spaces so that they are at most limit characters
// long, exactly as github.com/mitchellh/go-wordwrap v1.0.1's WrapString
// (MIT licence), which kubectl explain uses; a word longer than the
// limit stays whole.
func wrap(limit int, s string) string {
	const nbsp = 0xA0
	var buf, word, space strings.Builder
	var current, wordLen, spaceLen int
	for _, c := range s {
		switch {
		case c == '\n':
			if word.Len() == 0 {
				if current+spaceLen <= limit {
					buf.WriteString(space.String())
				}
			} else {
				buf.WriteString(space.String())
				buf.WriteString(word.String())
				word.Reset()
				wordLen = 0
			}
			space.Reset()
			spaceLen = 0
			buf.WriteRune(c)
			current = 0
		case unicode.IsSpace(c) && c != nbsp:
			if space.Len() == 0 || word.Len() > 0 {
				current += spaceLen + wordLen
				buf.WriteString(space.String())
				buf.WriteString(word.String())
				space.Reset()
				spaceLen = 0
				word.Reset()
				wordLen = 0
			}
			space.WriteRune(c)
			spaceLen++
		default:
			word.WriteRune(c)
			wordLen++
			if current+wordLen+spaceLen > limit && wordLen < limit {
				buf.WriteRune('\n')
				current = 0
				space.Reset()
				spaceLen = 0
			}
		}
	}
	if word.Len() == 0 {
		if current+spaceLen <= limit {
			buf.WriteString(space.String())
		}
	} else {
		buf.WriteString(space.String())
		buf.WriteString(word.String())
	}
	return buf.String()
}
