package main

// The kubectl look-alikes: the same calls, filters, order and spacing as
// kubectl api-versions and kubectl api-resources (k8s.io/kubectl's
// pkg/cmd/apiresources), so the output is byte for byte kubectl's.

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// tableOptions are kubectl api-resources' flags that the demo copies.
type tableOptions struct {
	output      string // "", "wide" or "name"
	apiGroup    string
	apiGroupSet bool  // -api-group "" means the core group
	namespaced  *bool // nil: both, as when kubectl's flag is not given
}

// lookAlike reports whether a flag asks for one kubectl look-alike.
func (o options) lookAlike() bool {
	return o.apiVersions || o.apiResources || o.explain != "" || o.gvr != ""
}

// runLookAlike prints what the kubectl command that the flags name prints.
// Warnings go to stderr, as kubectl's do.
func runLookAlike(ctx context.Context, o options, config *rest.Config, disco *discovery.DiscoveryClient, out io.Writer) error {
	switch {
	case o.explain != "":
		return explainResource(ctx, disco, out, os.Stderr, o.explain)
	case o.gvr != "":
		return printGVR(ctx, disco, out, os.Stderr, o.gvr)
	}
	var tables discovery.DiscoveryInterfaceWithContext = disco
	if o.cacheDir != "" {
		// Through kubectl's disk cache, as kubectl api-resources --cached:
		// no request while the cache is fresh.
		cached, err := diskCache(config, o.cacheDir)
		if err != nil {
			return err
		}
		tables = cached
	}
	if o.apiVersions {
		return printAPIVersions(ctx, tables, out)
	}
	return printAPIResources(ctx, tables, out, o.table)
}

// printAPIVersions prints what `kubectl api-versions` prints: every
// group/version the server serves, sorted.
func printAPIVersions(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, out io.Writer) error {
	groups, err := disco.ServerGroupsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get server groups: %w", explainDiscovery(err))
	}
	versions := metav1.ExtractGroupVersions(groups)
	sort.Strings(versions)
	for _, v := range versions {
		fmt.Fprintln(out, v)
	}
	return nil
}

// printAPIResources prints what `kubectl api-resources` prints: the
// preferred version of each resource that has verbs, sorted by group, then
// name.
func printAPIResources(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, out io.Writer, o tableOptions) error {
	lists, err := disco.ServerPreferredResourcesWithContext(ctx)
	// A group/version whose server did not answer (an aggregated API that
	// is down, marked stale in aggregated discovery) is missing from lists;
	// the rest is complete. kubectl prints it and then the error.
	partial := discovery.IsGroupDiscoveryFailedError(err)
	if err != nil && !partial {
		return fmt.Errorf("get server resources: %w", explainDiscovery(err))
	}
	var rows []metav1.APIResource
	for _, list := range lists {
		gv, perr := schema.ParseGroupVersion(list.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range list.APIResources {
			if len(r.Verbs) == 0 ||
				o.apiGroupSet && o.apiGroup != gv.Group ||
				o.namespaced != nil && *o.namespaced != r.Namespaced {
				continue
			}
			r.Group, r.Version = gv.Group, gv.Version
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Group != rows[j].Group {
			return rows[i].Group < rows[j].Group
		}
		return rows[i].Name < rows[j].Name
	})
	// kubectl's tab writer settings (k8s.io/cli-runtime's
	// printers.GetNewTabWriter). kubectl uses github.com/liggitt/tabwriter,
	// whose RememberWidths flag only matters across several Flush calls.
	w := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	switch o.output {
	case "name":
		for _, r := range rows {
			name := r.Name
			if r.Group != "" {
				name += "." + r.Group
			}
			fmt.Fprintln(w, name)
		}
	case "wide":
		fmt.Fprintln(w, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\tVERBS\tCATEGORIES")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", r.Name, strings.Join(r.ShortNames, ","),
				schema.GroupVersion{Group: r.Group, Version: r.Version}, r.Namespaced, r.Kind,
				strings.Join(r.Verbs, ","), strings.Join(r.Categories, ","))
		}
	default:
		fmt.Fprintln(w, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\n", r.Name, strings.Join(r.ShortNames, ","),
				schema.GroupVersion{Group: r.Group, Version: r.Version}, r.Namespaced, r.Kind)
		}
	}
	if ferr := w.Flush(); ferr != nil {
		return ferr
	}
	if partial {
		// The error names each group/version that failed, and why.
		return err
	}
	return nil
}
