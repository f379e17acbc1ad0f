package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"client-go-demo/internal/demotest"
)

// These tests run the demo against the local control plane and compare
// what it prints with what kubectl v1.37.2, built from the same release
// (make kubectl), prints for the same server.

func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run %q: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// kubectlBinary returns $KUBECTL, else the repository's bin/kubectl, and
// checks that it is the server's release. Without one the test skips with
// a message, or fails under `make test` (DEMO_TEST_REQUIRE_CLUSTER).
func kubectlBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KUBECTL")
	if path == "" {
		path, _ = filepath.Abs(filepath.Join("..", "bin", "kubectl"))
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no kubectl at %s (%v): run `make kubectl`, or the tests with `make test`", path, err)
		if os.Getenv("DEMO_TEST_REQUIRE_CLUSTER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(path, "version", "--client", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", path, err)
	}
	var v struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s version: %v", path, err)
	}
	server, err := discovery.NewDiscoveryClientForConfigOrDie(demotest.Config(t)).ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.ClientVersion.GitVersion != server.GitVersion {
		t.Fatalf("%s is kubectl %s, the server is %s: compare with a kubectl of the same release (make kubectl)", path, v.ClientVersion.GitVersion, server.GitVersion)
	}
	return path
}

// kubectl runs kubectl with the test's kubeconfig and a cache directory of
// its own (never the user's ~/.kube/cache).
type kubectl struct {
	path, kubeconfig, cacheDir string
}

func newKubectl(t *testing.T, kubeconfig string) kubectl {
	return kubectl{kubectlBinary(t), kubeconfig, t.TempDir()}
}

func (k kubectl) run(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(k.path, append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// sameAsKubectl runs the demo and kubectl one right after the other and
// wants the same bytes on stdout. Other tests create CRDs meanwhile, which
// changes discovery between the two runs: a mismatch is logged and retried,
// up to five times, before the test fails.
func sameAsKubectl(t *testing.T, k kubectl, demoArgs, kubectlArgs []string) string {
	t.Helper()
	var diff string
	for attempt := 1; attempt <= 5; attempt++ {
		want, stderr, err := k.run(kubectlArgs...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(kubectlArgs, " "), err, stderr)
		}
		var got bytes.Buffer
		if err := run(context.Background(), demoArgs, &got); err != nil {
			t.Fatalf("run %q: %v", demoArgs, err)
		}
		if got.String() == want {
			return want
		}
		diff = lineDiff(want, got.String())
		t.Logf("attempt %d: %q differs from kubectl %s (-kubectl +demo):\n%s", attempt, demoArgs, strings.Join(kubectlArgs, " "), diff)
	}
	t.Fatalf("%q never printed what kubectl %s prints (-kubectl +demo):\n%s", demoArgs, strings.Join(kubectlArgs, " "), diff)
	return ""
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  -%q\n  +%q\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// gadgetCRD creates a namespaced CRD with a short name, a category, a
// required field, an enum, a map, a list and external docs, in a group of
// its own, and waits until discovery and the OpenAPI v3 document show it.
// It returns the resource's plural.group.
func gadgetCRD(t *testing.T) string {
	t.Helper()
	config := demotest.Config(t)
	group := fmt.Sprintf("dc%05d.discoveryclient-test.example.com", rand.IntN(100000))
	crds := dynamic.NewForConfigOrDie(config).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": map[string]any{"name": "gadgets." + group,
			"labels": map[string]any{partOfKey: partOfValue}},
		"spec": map[string]any{
			"group": group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
				"shortNames": []any{"gdg"}, "categories": []any{"client-go-demo-test"}},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type":        "object",
					"description": "Gadget is what the discoveryclient tests explain. This sentence is long enough to be wrapped by kubectl explain at seventy-six columns.",
					"properties": map[string]any{
						"spec": map[string]any{
							"type":         "object",
							"description":  "GadgetSpec is the desired state.",
							"required":     []any{"size"},
							"externalDocs": map[string]any{"description": "How gadgets are sized.", "url": "https://example.com/gadgets"},
							"properties": map[string]any{
								"size":   map[string]any{"type": "string", "description": "Size of the gadget.", "enum": []any{"small", "medium", "large", "huge", ""}},
								"count":  map[string]any{"type": "integer", "format": "int32"},
								"labels": map[string]any{"type": "object", "additionalProperties": str("A label value.")},
								"parts": map[string]any{"type": "array", "description": "Parts, in order.",
									"items": map[string]any{"type": "object", "properties": map[string]any{"name": str("Name of the part.")}}},
							},
						},
					},
				}}}},
		},
	}}
	ctx := context.Background()
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext(context.Background())
		defer cancel()
		if err := crds.Delete(ctx, crd.GetName(), metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete CRD: %v", err)
		}
		demotest.WaitFor(t, time.Minute, "the CRD to be gone", func() bool {
			list, err := crds.List(ctx, metav1.ListOptions{LabelSelector: partOf})
			return err == nil && !slices.ContainsFunc(list.Items, func(c unstructured.Unstructured) bool { return c.GetName() == crd.GetName() })
		})
	})
	// Discovery lists the group once the CRD is Established; the OpenAPI v3
	// document follows a moment later.
	disco := discovery.NewDiscoveryClientForConfigOrDie(config)
	demotest.WaitFor(t, time.Minute, "the CRD in discovery and OpenAPI v3", func() bool {
		if _, err := disco.ServerResourcesForGroupVersion(group + "/v1"); err != nil {
			return false
		}
		paths, err := disco.OpenAPIV3().Paths()
		if err != nil {
			return false
		}
		gv, ok := paths["apis/"+group+"/v1"]
		if !ok {
			return false
		}
		doc, err := gv.Schema("application/json")
		return err == nil && bytes.Contains(doc, []byte("GadgetSpec is the desired state."))
	})
	return "gadgets." + group
}

// TestMatchesKubectl is the README's claim: byte for byte what kubectl
// v1.37.2 prints for the same server.
func TestMatchesKubectl(t *testing.T) {
	path := demotest.Kubeconfig(t)
	k := newKubectl(t, path)
	gadgets := gadgetCRD(t)
	group := strings.TrimPrefix(gadgets, "gadgets.")

	versions := sameAsKubectl(t, k, []string{"-api-versions"}, []string{"api-versions"})
	for _, want := range []string{"v1", "apps/v1", "apiextensions.k8s.io/v1", group + "/v1"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(versions) {
			t.Errorf("api-versions lacks %s:\n%s", want, versions)
		}
	}

	wide := sameAsKubectl(t, k, []string{"-api-resources", "-o", "wide"}, []string{"api-resources", "-o", "wide"})
	for _, re := range []string{
		`^NAME +SHORTNAMES +APIVERSION +NAMESPACED +KIND +VERBS +CATEGORIES\n`,
		`\npods +po +v1 +true +Pod +create,delete,deletecollection,get,list,patch,update,watch +all\n`,
		`\ngadgets +gdg +` + regexp.QuoteMeta(group) + `/v1 +true +Gadget +delete,deletecollection,get,list,patch,create,update,watch +client-go-demo-test\n`,
	} {
		if !regexp.MustCompile(re).MatchString(wide) {
			t.Errorf("api-resources -o wide lacks %s:\n%s", re, wide)
		}
	}
	sameAsKubectl(t, k, []string{"-api-resources"}, []string{"api-resources"})
	apps := sameAsKubectl(t, k, []string{"-api-resources", "-api-group", "apps"}, []string{"api-resources", "--api-group", "apps"})
	if n := strings.Count(apps, "\n"); n != 6 { // header, controllerrevisions, daemonsets, deployments, replicasets, statefulsets
		t.Errorf("-api-group apps: %d lines, want 6:\n%s", n, apps)
	}
	core := sameAsKubectl(t, k, []string{"-api-resources", "-api-group", ""}, []string{"api-resources", "--api-group="})
	if !strings.Contains(core, "\nconfigmaps ") || strings.Contains(core, "apps/v1") {
		t.Errorf(`-api-group "": want the core group only:`+"\n%s", core)
	}
	cluster := sameAsKubectl(t, k, []string{"-api-resources", "-namespaced=false"}, []string{"api-resources", "--namespaced=false"})
	if !strings.Contains(cluster, "\nnamespaces ") || strings.Contains(cluster, "\npods ") {
		t.Errorf("-namespaced=false: want namespaces and no pods:\n%s", cluster)
	}
	names := sameAsKubectl(t, k, []string{"-api-resources", "-o", "name"}, []string{"api-resources", "-o", "name"})
	if !strings.Contains(names, "\npods\n") || !strings.Contains(names, "\ndeployments.apps\n") || !strings.Contains(names, "\n"+gadgets+"\n") {
		t.Errorf("-o name: want pods, deployments.apps and %s:\n%s", gadgets, names)
	}

	for _, target := range []struct{ arg, want string }{
		{"configmap", "KIND:       ConfigMap\nVERSION:    v1\n\nDESCRIPTION:\n    ConfigMap holds configuration data for pods to consume.\n    \nFIELDS:\n  apiVersion\t<string>\n"},
		{"deployment", "GROUP:      apps\nKIND:       Deployment\n"},
		{"pods", "\n  spec\t<PodSpec>\n"},
		{"deployment.spec", "FIELD: spec <DeploymentSpec>\n\n\nDESCRIPTION:\n"},
		{"deployments.apps.spec.strategy.type", "ENUM:\n    Recreate\n    RollingUpdate\n"},
		{"svc.spec", "\n  type\t<string>\n  enum: ClusterIP, ExternalName, LoadBalancer, NodePort\n"},
		{"pod.spec.containers", "FIELD: containers <[]Container>\n"},
		{"ev", "KIND:       Event\nVERSION:    v1\n"}, // a short name events.k8s.io claims too
		{"gdg", "GROUP:      " + group + "\nKIND:       Gadget\n"},
		{"gadget.spec", "\n  size\t<string> -required-\n  enum: small, medium, large, huge, ....\n"},
		{"gadget.spec.labels", "FIELD: labels <map[string]string>\n"},
		{"gadget.spec.parts", "FIELD: parts <[]Object>\n"},
	} {
		out := sameAsKubectl(t, k, []string{"-explain", target.arg}, []string{"explain", target.arg})
		if !strings.Contains(out, target.want) {
			t.Errorf("explain %s lacks %q:\n%s", target.arg, target.want, out)
		}
	}
	// A CRD schema's externalDocs reach the published OpenAPI since 1.36;
	// 1.35 drops them ("The follow fields are not preserved: externalDocs",
	// k8s.io/apiextensions-apiserver@v0.35.4 pkg/apiserver/schema/convert.go),
	// so neither kubectl nor the demo can show them there.
	docs := "\nEXTERNAL DOCS:\n    How gadgets are sized.\n    URL: https://example.com/gadgets\n"
	out := sameAsKubectl(t, k, []string{"-explain", gadgets + ".spec"}, []string{"explain", gadgets + ".spec"})
	if _, minor := demotest.K8sVersion(t); strings.Contains(out, docs) != (minor >= 36) {
		t.Errorf("explain %s.spec on Kubernetes 1.%d: EXTERNAL DOCS shown = %v, want %v:\n%s", gadgets, minor, !(minor >= 36), minor >= 36, out)
	}
}

// TestDefaultModeAndCaching runs the four steps and checks the request
// counts that the README explains.
func TestDefaultModeAndCaching(t *testing.T) {
	demotest.Kubeconfig(t)
	cacheDir := t.TempDir()
	out := runDemo(t, "-cache-dir", cacheDir)
	version, minor := demotest.K8sVersion(t)
	// Against an older server Step 1 says how much older; against 1.37,
	// the release of our client-go, nothing.
	older := map[int]string{
		35: "  this server is 2 minor releases older than client-go v0.37.2 (Kubernetes 1.37): what 1.36 to 1.37 added is not served by default\n",
		36: "  this server is 1 minor release older than client-go v0.37.2 (Kubernetes 1.37): what 1.37 added is not served by default\n",
	}[minor]
	if strings.Contains(out, "minor release") != (older != "") || !strings.Contains(out, older) {
		t.Errorf("Step 1 on Kubernetes 1.%d: want %q (none on 1.37):\n%s", minor, older, out)
	}
	for _, re := range []string{
		`Step 1: ServerVersion\n  ` + regexp.QuoteMeta(version) + ` \(1/` + strconv.Itoa(minor) + `, linux/amd64\)\n`,
		`Step 2: ServerGroups`,
		`\n  "" \(core\) +/api +v1 +v1\n`,
		`\n  autoscaling +/apis/autoscaling +v2,v1 +v2\n`,
		`Step 3: ServerPreferredResources`,
		`\ndeployments +deploy +apps/v1 +true +Deployment\n`,
		`Step 4: the cost of discovery, cold and cached`,
		`disk cache: <cache-dir>/discovery/127\.0\.0\.1_\d+/servergroups\.json, and <group>/<version>/serverresources\.json for each group/version\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	requests := func(label string) int {
		m := regexp.MustCompile(regexp.QuoteMeta(label) + ` +(\d+) requests +(\d+) resources`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no line for %q in:\n%s", label, out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	cold := requests("cold, aggregated discovery (/api, /apis)")
	legacy := requests("cold, legacy discovery (one per group/version)")
	memFirst := requests("memory cache, first call")
	memSecond := requests("memory cache, second call")
	diskEmpty := requests("disk cache, empty")
	diskWarm := requests("disk cache, warm (a second kubectl command)")
	if cold != 2 || memFirst != 2 || memSecond != 0 || diskEmpty != 2 || diskWarm != 0 {
		t.Errorf("requests: cold %d, memory %d then %d, disk %d then %d; want 2, 2, 0, 2, 0", cold, memFirst, memSecond, diskEmpty, diskWarm)
	}
	// Legacy: /api, /apis, then one per group/version, at least the 22
	// built-in groups' (the table of Step 2 lists them).
	if legacy < 2+22 {
		t.Errorf("legacy discovery made %d requests, want at least 24", legacy)
	}
	// kubectl's layout: discovery/<host_port>/<group>/<version>/serverresources.json.
	for _, f := range []string{"servergroups.json", "v1/serverresources.json", "apps/v1/serverresources.json"} {
		if m, _ := filepath.Glob(filepath.Join(cacheDir, "discovery", "127.0.0.1_*", f)); len(m) != 1 {
			t.Errorf("disk cache has no %s under %s", f, cacheDir)
		}
	}
}

// legacyProxy serves the API server's discovery the way a server without
// aggregated discovery (before 1.30) does, answering /apis/<failGV> with
// 503 as an aggregated API whose backend is down, and counts requests per
// path. It forwards with the admin's credentials; the returned kubeconfig
// points at it over plain HTTP.
func legacyProxy(t *testing.T, failGV string) (kubeconfig string, requests func() map[string]int) {
	t.Helper()
	config := demotest.Config(t)
	upstream, err := url.Parse(config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(config)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			// Only the legacy format: as if the server had no aggregated
			// discovery.
			if r.In.URL.Path == "/api" || r.In.URL.Path == "/apis" {
				r.Out.Header.Set("Accept", "application/json")
			}
		},
		Transport: transport,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/apis/"+failGV {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the backend of this demo's test is down","reason":"ServiceUnavailable","code":503}`, http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return writeKubeconfig(t, srv.URL), func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := counts
		counts = map[string]int{}
		return c
	}
}

// staleProxy passes aggregated discovery through but marks staleGV Stale,
// as kube-aggregator does when an aggregated API's backend stops answering.
func staleProxy(t *testing.T, staleGV schema.GroupVersion) string {
	t.Helper()
	config := demotest.Config(t)
	upstream, err := url.Parse(config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(config)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Header.Del("Accept-Encoding") // so that the body can be rewritten
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			isV2, _ := discovery.ContentTypeIsGVK(resp.Header.Get("Content-Type"), apidiscoveryv2.SchemeGroupVersion.WithKind("APIGroupDiscoveryList"))
			if resp.Request.URL.Path != "/apis" || !isV2 {
				return nil
			}
			var list apidiscoveryv2.APIGroupDiscoveryList
			if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
				return err
			}
			resp.Body.Close()
			for i, g := range list.Items {
				for j, v := range g.Versions {
					if g.Name == staleGV.Group && v.Version == staleGV.Version {
						list.Items[i].Versions[j].Freshness = apidiscoveryv2.DiscoveryFreshnessStale
					}
				}
			}
			b, err := json.Marshal(list)
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			resp.Header.Del("ETag")
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return writeKubeconfig(t, srv.URL)
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["proxy"] = &clientcmdapi.Cluster{Server: server}
	c.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{}
	c.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "proxy"}
	c.CurrentContext = "proxy"
	path := filepath.Join(t.TempDir(), "proxy.kubeconfig")
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLegacyServer: against a server without aggregated discovery, the
// same table costs one request per group/version, and a group/version that
// fails leaves the rest of the table printed and the error naming it, as
// kubectl does.
func TestLegacyServer(t *testing.T) {
	demotest.Kubeconfig(t)
	proxied, requests := legacyProxy(t, "apps/v1")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-kubeconfig", proxied, "-api-resources"}, &out)
	if !discovery.IsGroupDiscoveryFailedError(err) || !strings.Contains(err.Error(), "apps/v1: the backend of this demo's test is down") {
		t.Fatalf("err = %v, want a partial discovery failure naming apps/v1", err)
	}
	if strings.Contains(out.String(), "apps/v1") || !strings.Contains(out.String(), "\npods ") || !strings.Contains(out.String(), "\nstorageclasses ") {
		t.Errorf("want every resource but the apps group's:\n%s", out.String())
	}
	// What the demo asked the server: /api and /apis, then every
	// group/version once, in each of the two attempts that client-go's
	// ServerPreferredResources makes when a group fails.
	got := requests()
	if got["/api"] != 2 || got["/apis"] != 2 || got["/api/v1"] != 2 || got["/apis/apps/v1"] != 2 || got["/apis/storage.k8s.io/v1"] != 2 {
		t.Errorf("requests per path: %v; want 2 each for /api, /apis, /api/v1, /apis/apps/v1, /apis/storage.k8s.io/v1", got)
	}

	// kubectl prints the same table, then the same error.
	k := newKubectl(t, proxied)
	want, stderr, kerr := k.run("api-resources")
	if kerr == nil || !strings.Contains(stderr, "unable to retrieve the complete list of server APIs: apps/v1") {
		t.Errorf("kubectl api-resources: %v, stderr:\n%s", kerr, stderr)
	}
	if want != out.String() {
		t.Errorf("stdout differs from kubectl's (-kubectl +demo):\n%s", lineDiff(want, out.String()))
	}
}

// TestStaleGroup: with aggregated discovery a failed group/version arrives
// marked Stale. The demo prints the rest and names it in its error.
// kubectl reads discovery through its disk cache, which does not see
// staleness (the stale version is simply missing from the groups), so it
// prints the same table and no error.
func TestStaleGroup(t *testing.T) {
	demotest.Kubeconfig(t)
	proxied := staleProxy(t, schema.GroupVersion{Group: "apps", Version: "v1"})
	var out bytes.Buffer
	err := run(context.Background(), []string{"-kubeconfig", proxied, "-api-resources"}, &out)
	if !discovery.IsGroupDiscoveryFailedError(err) || !strings.Contains(err.Error(), "apps/v1: stale GroupVersion discovery: apps/v1") {
		t.Fatalf("err = %v, want a partial discovery failure naming apps/v1", err)
	}
	if strings.Contains(out.String(), "apps/v1") || !strings.Contains(out.String(), "\npods ") {
		t.Errorf("want every resource but the apps group's:\n%s", out.String())
	}
	k := newKubectl(t, proxied)
	want, stderr, kerr := k.run("api-resources")
	if kerr != nil {
		t.Errorf("kubectl api-resources: %v\n%s", kerr, stderr)
	}
	if want != out.String() {
		t.Errorf("stdout differs from kubectl's (-kubectl +demo):\n%s", lineDiff(want, out.String()))
	}
}

func TestGVR(t *testing.T) {
	demotest.Kubeconfig(t)
	for _, in := range []string{"deploy", "Deployment", "deployments.apps", "deployments", "deployments.v1.apps"} {
		out := runDemo(t, "-gvr", in)
		for _, want := range []string{
			`resource (GVR):   group="apps" version="v1" resource="deployments"`,
			`kind (GVK):       group="apps" version="v1" kind="Deployment"`,
			"namespaced:       true",
			"verbs:            create,delete,deletecollection,get,list,patch,update,watch",
			"URL:              /apis/apps/v1/namespaces/{namespace}/deployments",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("-gvr %s lacks %q:\n%s", in, want, out)
			}
		}
	}
	out := runDemo(t, "-gvr", "bindings")
	if !strings.Contains(out, "not supported:    delete,deletecollection,get,list,patch,update,watch") {
		t.Errorf("-gvr bindings: want only create supported:\n%s", out)
	}
	out = runDemo(t, "-gvr", "ns")
	if !strings.Contains(out, `resource="namespaces"`) || !strings.Contains(out, "namespaced:       false") || !strings.Contains(out, "URL:              /api/v1/namespaces") {
		t.Errorf("-gvr ns:\n%s", out)
	}

	// ev is the short name of events in the core group and in
	// events.k8s.io: the core group's wins, every time (a fresh mapper each
	// time: with the resource lists in map order it would be either, see
	// inGroupOrder), with kubectl's warning, which run prints on stderr.
	disco := discovery.NewDiscoveryClientForConfigOrDie(demotest.Config(t))
	for range 20 {
		var warnings bytes.Buffer
		m, err := resolve(context.Background(), disco, "ev", &warnings)
		if err != nil {
			t.Fatal(err)
		}
		if want := (schema.GroupVersionResource{Version: "v1", Resource: "events"}); m.Resource != want {
			t.Fatalf("ev resolves to %v, want %v", m.Resource, want)
		}
		if want := "Warning: short name \"ev\" could also match lower priority resource events.events.k8s.io\n"; warnings.String() != want {
			t.Fatalf("warnings for ev: %q, want %q", warnings.String(), want)
		}
	}
}

func TestErrors(t *testing.T) {
	demotest.Kubeconfig(t)
	// system:anonymous may read /version but not discover
	// (system:discovery is bound to system:authenticated).
	anonymous := demotest.ImpersonatingKubeconfig(t, "system:anonymous", "system:unauthenticated")
	unreachable := demotest.UnreachableKubeconfig(t)
	noHome := t.TempDir()
	for _, tc := range []struct {
		name  string
		args  []string
		env   bool // run with no $KUBECONFIG and an empty home
		want  string
		usage bool
	}{
		{"unknown resource", []string{"-gvr", "deploymnt"}, false, `the server doesn't have a resource type "deploymnt"; did you mean deployment, deployments?`, false},
		{"unknown explain", []string{"-explain", "confgmap.data"}, false, `the server doesn't have a resource type "confgmap"; did you mean configmap, configmaps?`, false},
		{"unknown field", []string{"-explain", "deployment.spec.replica"}, false, `field "replica" does not exist`, false},
		{"bad field path", []string{"-explain", "deployment[0]"}, false, `-explain "deployment[0]": want a resource, then field names, separated by dots`, true},
		{"forbidden", []string{"-kubeconfig", anonymous, "-api-resources"}, false, `get server resources: forbidden by RBAC: this user may not read /api, /apis or /openapi, which the ClusterRole system:discovery allows (the discovery client drops the server's message: "unknown")`, false},
		{"unreachable", []string{"-kubeconfig", unreachable, "-api-versions"}, false, "dial tcp 127.0.0.1:1: connect: connection refused", false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, false, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"no kubeconfig", nil, true, "no kubeconfig: pass -kubeconfig, set $KUBECONFIG, or create ~/.kube/config", false},
		{"bad output", []string{"-api-resources", "-o", "yaml"}, false, `-o "yaml": want wide or name`, true},
		{"two modes", []string{"-explain", "pods", "-gvr", "pods"}, false, "pick one of -api-versions, -api-resources, -explain, -gvr", true},
		{"crd and a mode", []string{"-crd", "-api-versions"}, false, "pick one of -api-versions, -api-resources, -explain, -gvr, -crd", true},
		{"bad flag", []string{"-namespaced=maybe"}, false, `invalid boolean value "maybe" for -namespaced`, true},
		{"argument", []string{"pods"}, false, `unexpected arguments ["pods"]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env {
				t.Setenv("KUBECONFIG", "")
				t.Setenv("HOME", noHome)
				t.Setenv("KUBERNETES_SERVICE_HOST", "")
			}
			var out bytes.Buffer
			err := run(context.Background(), tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if got := errors.As(err, new(usageError)); got != tc.usage {
				t.Errorf("usage error = %v, want %v", got, tc.usage)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q before failing", out.String())
			}
		})
	}
}
