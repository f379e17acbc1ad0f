// Command discoveryclient shows how kubectl api-versions, api-resources and
// explain get their answers: the DiscoveryClient, a RESTMapper built from it,
// the server's OpenAPI v3 document, and the discovery caches kubectl relies on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/disk"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	// Ctrl-C, kill, or a closed pipe (go run ./discoveryclient | head) cancel ctx, and
	// run cleans up before it returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "discoveryclient:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// options are the flags; the mode flags pick one thing to print.
type options struct {
	apiVersions, apiResources bool
	output, apiGroup          string
	apiGroupSet               bool  // -api-group "" means the core group
	namespaced                *bool // nil: both, as when kubectl's flag is not given
	explain, gvr, cacheDir    string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("discoveryclient", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current context)")
	var o options
	fs.BoolVar(&o.apiVersions, "api-versions", false, "print what `kubectl api-versions` prints")
	fs.BoolVar(&o.apiResources, "api-resources", false, "print what `kubectl api-resources` prints")
	fs.StringVar(&o.output, "o", "", "with -api-resources: \"wide\" adds VERBS and CATEGORIES, \"name\" prints resource.group")
	fs.StringVar(&o.apiGroup, "api-group", "", "with -api-resources: only this group (\"\" for the core group)")
	namespaced := fs.Bool("namespaced", true, "with -api-resources: only namespaced (true) or cluster-scoped (false) resources")
	fs.StringVar(&o.explain, "explain", "", "print the top-level fields of a resource, as `kubectl explain` does")
	fs.StringVar(&o.gvr, "gvr", "", "resolve a kind, resource or short name to its GroupVersionResource")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "disk discovery cache, laid out like kubectl's ~/.kube/cache (default mode: a temporary directory; with -api-versions or -api-resources: read through it, like kubectl --cached)")
	klog.InitFlags(fs)       // -v=6 logs every request, as kubectl does
	fs.SetOutput(io.Discard) // a bad flag is one line of error; -h prints the flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError{fmt.Errorf("%w (see -h)", err)}
	}
	// kubectl distinguishes "not given" from "given as true".
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "namespaced":
			o.namespaced = namespaced
		case "api-group":
			o.apiGroupSet = true
		}
	})
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	// The table's own flags imply the table.
	o.apiResources = o.apiResources || o.apiGroupSet || o.output != "" || o.namespaced != nil
	if o.output != "" && o.output != "wide" && o.output != "name" {
		return usageError{fmt.Errorf("-o %q: want wide or name", o.output)}
	}
	modes := 0
	for _, on := range []bool{o.apiVersions, o.apiResources, o.explain != "", o.gvr != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return usageError{errors.New("pick one of -api-versions, -api-resources, -explain, -gvr")}
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, then ~/.kube/config
	rules.ExplicitPath = *kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubeContext})
	config, err := loader.ClientConfig() // falls back to the in-cluster config
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no kubeconfig: pass -kubeconfig, set $KUBECONFIG, or create ~/.kube/config")
	}
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	config.UserAgent = "client-go-demo-discoveryclient"
	config.Timeout = 30 * time.Second
	// Discovery is many small GETs at start-up; kubectl raises the limits too.
	config.QPS, config.Burst = 50, 300
	// A plain DiscoveryClient asks the server every time, like kubectl after
	// it invalidates its cache.
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}

	// With -cache-dir, the tables come through a disk cache, as with
	// kubectl --cached: no request at all while the cache is fresh.
	var tables discovery.DiscoveryInterfaceWithContext = disco
	if o.cacheDir != "" && (o.apiVersions || o.apiResources) {
		cached, err := disk.NewCachedDiscoveryClientForConfig(config, cacheDirFor(o.cacheDir, config.Host), filepath.Join(o.cacheDir, "http"), 6*time.Hour)
		if err != nil {
			return fmt.Errorf("create disk cache in %s: %w", o.cacheDir, err)
		}
		tables = cached
	}
	switch {
	case o.apiVersions:
		return printAPIVersions(ctx, tables, stdout)
	case o.apiResources:
		return printAPIResources(ctx, tables, stdout, o)
	case o.explain != "":
		return explain(ctx, disco, stdout, o.explain)
	case o.gvr != "":
		return printGVR(ctx, disco, stdout, o.gvr)
	}

	// Step 1: the server's version.
	fmt.Fprintln(stdout, "Step 1: ServerVersion")
	v, err := disco.ServerVersionWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get server version: %w", explainErr(err))
	}
	fmt.Fprintf(stdout, "  %s (%s/%s, %s)\n", v.GitVersion, v.Major, v.Minor, v.Platform)

	// Step 2: the groups, their versions and the preferred one. The core
	// group has no name and is served at /api; the rest at /apis/<group>.
	fmt.Fprintln(stdout, "Step 2: ServerGroups: groups, versions, preferred version")
	groups, err := disco.ServerGroupsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get server groups: %w", explainErr(err))
	}
	w := tabwriter.NewWriter(stdout, 6, 4, 3, ' ', 0)
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
	w.Flush()

	// Step 3: every resource, as kubectl api-resources prints them.
	fmt.Fprintln(stdout, "Step 3: ServerPreferredResources: the resource table of kubectl api-resources")
	if err := printAPIResources(ctx, disco, stdout, o); err != nil {
		return err
	}

	// Step 4: what caching saves.
	fmt.Fprintln(stdout, "Step 4: the cost of discovery, cold and cached")
	return compareCaches(ctx, config, stdout, o.cacheDir)
}

// printAPIVersions prints what `kubectl api-versions` prints: every
// group/version the server serves, sorted.
func printAPIVersions(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, out io.Writer) error {
	groups, err := disco.ServerGroupsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("get server groups: %w", explainErr(err))
	}
	versions := metav1.ExtractGroupVersions(groups)
	sort.Strings(versions)
	for _, v := range versions {
		fmt.Fprintln(out, v)
	}
	return nil
}

// printAPIResources prints what `kubectl api-resources` prints, with the
// same filters, order and spacing: the preferred version of each resource,
// sorted by group, then name.
func printAPIResources(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, out io.Writer, o options) error {
	lists, err := disco.ServerPreferredResourcesWithContext(ctx)
	if err != nil && len(lists) == 0 {
		return fmt.Errorf("get server resources: %w", explainErr(err))
	}
	// A partial answer (one aggregated API down) still prints, as kubectl does.
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
	// kubectl's tabwriter settings: min width 6, tab width 4, padding 3.
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
	if err := w.Flush(); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("some groups could not be discovered: %w", err)
	}
	return nil
}

// compareCaches counts the HTTP requests and time discovery costs: a cold
// client, the legacy per-group endpoints, a memory cache and a disk cache
// laid out like kubectl's (~/.kube/cache/discovery/<host>).
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
		if err != nil {
			return fmt.Errorf("%s: %w", label, explainErr(err))
		}
		n := 0
		for _, l := range resources {
			n += len(l.APIResources)
		}
		fmt.Fprintf(out, "  %-48s %3d requests  %4d resources  %s\n", label, requests.Load(), n, time.Since(start).Round(time.Millisecond))
		return nil
	}

	cold, err := discovery.NewDiscoveryClientForConfig(counted)
	if err != nil {
		return err
	}
	if err := measure("cold, aggregated discovery (/api, /apis)", cold); err != nil {
		return err
	}
	legacy, err := discovery.NewDiscoveryClientForConfig(counted)
	if err != nil {
		return err
	}
	// Before aggregated discovery (Kubernetes 1.26+), one request per
	// group/version.
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
	// kubectl keeps discovery on disk for 6 hours, keyed by server.
	dir := cacheDirFor(cacheDir, config.Host)
	newDisk := func() (*disk.CachedDiscoveryClient, error) {
		return disk.NewCachedDiscoveryClientForConfig(counted, dir, filepath.Join(cacheDir, "http"), 6*time.Hour)
	}
	d1, err := newDisk()
	if err != nil {
		return fmt.Errorf("create disk cache in %s: %w", cacheDir, err)
	}
	if err := measure("disk cache, empty", d1); err != nil {
		return err
	}
	d2, err := newDisk() // a new process, as the next kubectl command is
	if err != nil {
		return err
	}
	if err := measure("disk cache, warm (a second kubectl command)", d2); err != nil {
		return err
	}
	fmt.Fprintf(out, "  disk cache: %s\n", dir)
	return nil
}

// cacheDirFor is kubectl's layout: <dir>/discovery/<host_port>.
func cacheDirFor(dir, host string) string {
	return filepath.Join(dir, "discovery", strings.NewReplacer("https://", "", "http://", "", ":", "_", "/", "_").Replace(host))
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// explainErr turns the errors a user meets into words.
func explainErr(err error) error {
	var status interface{ Status() metav1.Status }
	if errors.As(err, &status) {
		switch status.Status().Reason {
		case metav1.StatusReasonForbidden:
			return fmt.Errorf("forbidden by RBAC: %w", err)
		case metav1.StatusReasonUnauthorized:
			return fmt.Errorf("the server did not accept our credentials: %w", err)
		}
	}
	return err
}
