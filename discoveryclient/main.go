// Command discoveryclient shows how a client learns what an API server
// serves: its version, its groups and versions, every resource with its
// verbs, and what that discovery costs cold, from memory and from kubectl's
// disk cache. Its flags print what kubectl api-versions, api-resources and
// explain print (kubectl.go, explain.go), -gvr resolves a name the way
// kubectl does (restmapper.go), and -crd shows a cached client and
// RESTMapper while a CRD comes and goes (crd.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/disk"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
)

const demoName = "discoveryclient"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, kube, err := parseOptions(args, stdout)
	if err != nil {
		return err
	}
	// The namespace (-n) is accepted and unused, as kubectl accepts its
	// global -n for api-resources: discovery is not namespaced.
	config, _, err := kube.load()
	if err != nil {
		return err
	}
	// Discovery is a burst of small GETs; kubectl allows 50 per second with
	// a burst of 300 for it (k8s.io/kubectl/pkg/cmd/cmd.go). There is no
	// config.Timeout: the discovery client gives its own copy of the config
	// a 32 s limit per request when none is set (defaultTimeout in
	// client-go's discovery/discovery_client.go), which is safe there because
	// discovery never watches.
	config.QPS, config.Burst = 50, 300
	// A plain DiscoveryClient asks the server every time, as kubectl does
	// after it invalidates its cache.
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}

	// -api-versions, -api-resources, -explain, -gvr: what one kubectl
	// command prints (kubectl.go). Without them, the four steps below.
	if o.lookAlike() {
		return runLookAlike(ctx, o, config, disco, stdout)
	}
	// -crd: a CRD appears under a cached client and mapper (crd.go).
	if o.crd {
		return crdAppears(ctx, config, stdout)
	}

	// Step 1: every user may read /version (ClusterRole
	// system:public-info-viewer), the first thing to ask a server that may
	// be older or newer than the client.
	fmt.Fprintln(stdout, "Step 1: ServerVersion")
	v, err := disco.ServerVersionWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get server version: %w", explainDiscovery(err))
	}
	fmt.Fprintf(stdout, "  %s (%s/%s, %s)\n", v.GitVersion, v.Major, v.Minor, v.Platform)
	if line := skew(v.Minor); line != "" {
		fmt.Fprintln(stdout, "  "+line)
	}

	// Step 2: with aggregated discovery these groups arrive in the same two
	// responses as their resources (/api and /apis); the core group has no
	// name and lives at /api, every other group at /apis/<group>.
	fmt.Fprintln(stdout, "Step 2: ServerGroups: groups, versions, preferred version")
	if err := printGroups(ctx, disco, stdout); err != nil {
		return err
	}

	// Step 3: a resource that several versions serve is listed once, in
	// its group's preferred version when that version serves it (the one a
	// client should use), else in another; subresources (pods/log) are left
	// out.
	fmt.Fprintln(stdout, "Step 3: ServerPreferredResources: the resource table of kubectl api-resources")
	if err := printAPIResources(ctx, disco, stdout, o.table); err != nil {
		// A group/version that failed (an aggregated API whose backend is
		// down) is missing from the table, the rest is complete: carry on
		// with it, and say what is missing.
		failed, partial := discovery.GroupDiscoveryFailedErrorGroups(err)
		if !partial {
			return err
		}
		printFailed(stdout, failed)
	}

	// Step 4: why every client keeps discovery in a cache.
	fmt.Fprintln(stdout, "Step 4: the cost of discovery, cold and cached")
	return compareCaches(ctx, config, stdout, o.cacheDir)
}

// printGroups prints every group with its versions, the preferred first.
func printGroups(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, out io.Writer) error {
	groups, err := disco.ServerGroupsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get server groups: %w", explainDiscovery(err))
	}
	w := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	fmt.Fprintln(w, "  GROUP\tPATH\tVERSIONS\tPREFERRED")
	for _, g := range groups.Groups {
		name, path := g.Name, "/apis/"+g.Name
		if g.Name == "" {
			name, path = `"" (core)`, "/api"
		}
		var versions []string
		for _, gv := range g.Versions {
			versions = append(versions, gv.Version)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", name, path, strings.Join(versions, ","), g.PreferredVersion.Version)
	}
	return w.Flush()
}

// printFailed names each group/version that discovery could not read,
// sorted, with its error.
func printFailed(out io.Writer, failed map[schema.GroupVersion]error) {
	gvs := slices.SortedFunc(maps.Keys(failed), func(a, b schema.GroupVersion) int { return strings.Compare(a.String(), b.String()) })
	for _, gv := range gvs {
		fmt.Fprintf(out, "  incomplete: %s is missing: %v\n", gv, failed[gv])
	}
}

// compareCaches counts the HTTP requests and the time that discovery of
// every resource costs: cold with aggregated discovery, cold with the
// legacy endpoints, through a memory cache, and through a disk cache laid
// out like kubectl's.
func compareCaches(ctx context.Context, config *rest.Config, out io.Writer, cacheDir string) error {
	var requests atomic.Int64
	counted := rest.CopyConfig(config)
	counted.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			requests.Add(1)
			return rt.RoundTrip(req)
		})
	})
	if cacheDir == "" {
		dir, err := os.MkdirTemp("", "discovery-cache-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cacheDir = dir
	}
	measure := func(label string, d discovery.DiscoveryInterfaceWithContext) error {
		requests.Store(0)
		start := time.Now()
		_, resources, err := d.ServerGroupsAndResourcesWithContext(ctx)
		failed, partial := discovery.GroupDiscoveryFailedErrorGroups(err)
		if err != nil && !partial {
			return fmt.Errorf("%s: %w", label, explainDiscovery(err))
		}
		n := 0
		for _, l := range resources {
			n += len(l.APIResources)
		}
		fmt.Fprintf(out, "  %-48s %3d requests  %4d resources  %s", label, requests.Load(), n, time.Since(start).Round(time.Millisecond))
		if partial {
			fmt.Fprintf(out, "  (%d group/versions failed)", len(failed))
		}
		fmt.Fprintln(out)
		return nil
	}

	// Aggregated discovery: /api and /apis each answer with every group,
	// version and resource (apidiscovery.k8s.io/v2, served since 1.30).
	cold, err := discovery.NewDiscoveryClientForConfig(counted)
	if err != nil {
		return err
	}
	if err := measure("cold, aggregated discovery (/api, /apis)", cold); err != nil {
		return err
	}
	// What client-go falls back to against a server without v2: /api and
	// /apis list the groups, then one GET per group/version.
	legacy, err := discovery.NewDiscoveryClientForConfig(counted)
	if err != nil {
		return err
	}
	legacy.UseLegacyDiscovery = true
	if err := measure("cold, legacy discovery (one per group/version)", legacy); err != nil {
		return err
	}
	mem := memory.NewMemCacheClientWithContext(cold)
	if err := measure("memory cache, first call", mem); err != nil {
		return err
	}
	if err := measure("memory cache, second call", mem); err != nil {
		return err
	}
	d1, err := diskCache(counted, cacheDir)
	if err != nil {
		return err
	}
	if err := measure("disk cache, empty", d1); err != nil {
		return err
	}
	d2, err := diskCache(counted, cacheDir) // a new process, as the next kubectl command is
	if err != nil {
		return err
	}
	if err := measure("disk cache, warm (a second kubectl command)", d2); err != nil {
		return err
	}
	fmt.Fprintf(out, "  disk cache: <cache-dir>/discovery/%s/servergroups.json, and <group>/<version>/serverresources.json for each group/version\n",
		filepath.Base(discoveryCacheDir(cacheDir, config.Host)))
	return nil
}

// diskCache is kubectl's discovery cache: <dir>/discovery/<host> holds
// servergroups.json and <group>/<version>/serverresources.json, trusted for
// 6 hours after they were written; <dir>/http holds HTTP responses
// (OpenAPI documents) for revalidation with ETags. kubectl's default dir is
// ~/.kube/cache, or $KUBECACHEDIR (k8s.io/cli-runtime's config_flags.go).
func diskCache(config *rest.Config, dir string) (*disk.CachedDiscoveryClient, error) {
	d, err := disk.NewCachedDiscoveryClientForConfig(config, discoveryCacheDir(dir, config.Host), filepath.Join(dir, "http"), 6*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("create disk cache in %s: %w", dir, err)
	}
	return d, nil
}

// discoveryCacheDir names the cache after the server as kubectl does
// (computeDiscoverCacheDir): https://127.0.0.1:6443 becomes 127.0.0.1_6443.
func discoveryCacheDir(dir, host string) string {
	host = strings.Replace(strings.Replace(host, "https://", "", 1), "http://", "", 1)
	return filepath.Join(dir, "discovery", illegalFileChars.ReplaceAllString(host, "_"))
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// illegalFileChars is kubectl's overlyCautiousIllegalFileCharacters.
var illegalFileChars = regexp.MustCompile(`[^(\w/.)]`)

// options are the demo's own flags; each mode flag prints one thing.
type options struct {
	apiVersions, apiResources bool
	crd                       bool
	table                     tableOptions // -o, -api-group, -namespaced (kubectl.go)
	explain, gvr, cacheDir    string
}

// parseOptions reads the flags: cli.go's (-kubeconfig, -context, -n, -v)
// and this demo's.
func parseOptions(args []string, stdout io.Writer) (options, *kubeFlags, error) {
	fs, kube := newFlagSet()
	var o options
	fs.BoolVar(&o.apiVersions, "api-versions", false, "print what `kubectl api-versions` prints")
	fs.BoolVar(&o.apiResources, "api-resources", false, "print what `kubectl api-resources` prints")
	fs.StringVar(&o.table.output, "o", "", "with -api-resources: \"wide\" adds VERBS and CATEGORIES, \"name\" prints resource.group")
	fs.StringVar(&o.table.apiGroup, "api-group", "", "with -api-resources: only this group (\"\" for the core group)")
	namespaced := fs.Bool("namespaced", true, "with -api-resources: only namespaced (true) or cluster-scoped (false) resources")
	fs.StringVar(&o.explain, "explain", "", "print what `kubectl explain` prints for a resource or a field path (deployment.spec)")
	fs.StringVar(&o.gvr, "gvr", "", "resolve a kind, resource or short name to its GroupVersionResource")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "disk discovery cache, laid out like kubectl's ~/.kube/cache (default mode: a temporary directory; with -api-versions or -api-resources: read through it, like kubectl --cached)")
	fs.BoolVar(&o.crd, "crd", false, "create the CRD widgets.discovery-demo.example.com (cluster-wide) and show a cached discovery client and RESTMapper before and after Reset; deleted again on exit")
	if err := parseFlags(fs, args, stdout); err != nil {
		return o, nil, err
	}
	// kubectl tells "not given" from "given as true" (cmd.Flags().Changed).
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "namespaced":
			o.table.namespaced = namespaced
		case "api-group":
			o.table.apiGroupSet = true
		}
	})
	// The table's own flags imply the table.
	o.apiResources = o.apiResources || o.table.apiGroupSet || o.table.output != "" || o.table.namespaced != nil
	if o.table.output != "" && o.table.output != "wide" && o.table.output != "name" {
		return o, nil, usagef("-o %q: want wide or name", o.table.output)
	}
	modes := 0
	for _, on := range []bool{o.apiVersions, o.apiResources, o.explain != "", o.gvr != "", o.crd} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return o, nil, usagef("pick one of -api-versions, -api-resources, -explain, -gvr, -crd")
	}
	return o, kube, nil
}

// explainDiscovery is cli.go's explain for discovery's errors. The
// discovery and OpenAPI clients read responses with Raw()
// (discovery_client.go), which does not decode the Status the server sends
// with an error: a 403 says only "unknown", as in kubectl's "Error from
// server (Forbidden): unknown". Say what was refused instead.
func explainDiscovery(err error) error {
	var status apierrors.APIStatus
	if apierrors.IsForbidden(err) && errors.As(err, &status) && status.Status().Message == "unknown" {
		return fmt.Errorf("forbidden by RBAC: this user may not read /api, /apis or /openapi, which the ClusterRole system:discovery allows (the discovery client drops the server's message: \"%w\")", err)
	}
	return explain(err)
}

// skew says how far the server's minor release is from the one this
// client-go belongs to (client-go v0.37.x is Kubernetes 1.37), read from the
// module versions Go records in the binary; "" when they match or either
// is unknown. Some providers report a minor such as "30+".
func skew(serverMinor string) string {
	var server, client int
	if _, err := fmt.Sscanf(serverMinor, "%d", &server); err != nil {
		return ""
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var clientVersion string
	for _, m := range info.Deps {
		if m.Path == "k8s.io/client-go" {
			clientVersion = m.Version
			if m.Replace != nil {
				clientVersion = m.Replace.Version
			}
		}
	}
	// A pseudo-version (v0.0.0-...) or a local replacement says nothing.
	if _, err := fmt.Sscanf(clientVersion, "v0.%d.", &client); err != nil || client == 0 {
		return ""
	}
	switch d := client - server; {
	case d == 1:
		return fmt.Sprintf("this server is 1 minor release older than client-go %s (Kubernetes 1.%d): what 1.%d added is not served by default",
			clientVersion, client, client)
	case d > 1:
		return fmt.Sprintf("this server is %d minor releases older than client-go %s (Kubernetes 1.%d): what 1.%d to 1.%d added is not served by default",
			d, clientVersion, client, server+1, client)
	case d < 0:
		return fmt.Sprintf("this server is %d minor release(s) newer than client-go %s (Kubernetes 1.%d): discovery lists what it added; the typed clientset has no types for it",
			-d, clientVersion, client)
	}
	return ""
}
