package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// These tests run the demo against a real API server: the one in $KUBECONFIG,
// which `make test` points at the local control plane from hack/localcluster.
func kubeconfig(t *testing.T) string {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run the tests with `make test`, which starts a local control plane")
	}
	return os.Getenv("KUBECONFIG")
}

func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run %q: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// widgetCRD creates a CRD with a short name and a category, so the test
// knows a row that the server did not have before.
func widgetCRD(t *testing.T) {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	crds := dynamic.NewForConfigOrDie(config).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets.discovery-test.example.com"},
		"spec": map[string]any{
			"group": "discovery-test.example.com",
			"scope": "Cluster",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget",
				"shortNames": []any{"wdg"}, "categories": []any{"client-go-demo-test"}},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	ctx := context.Background()
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crds.Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{}) })
	// Established, and in discovery (the aggregated document follows a moment later).
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var out bytes.Buffer
		if err := run(ctx, []string{"-api-versions"}, &out); err != nil {
			return false, err
		}
		return strings.Contains(out.String(), "discovery-test.example.com/v1\n"), nil
	})
	if err != nil {
		t.Fatalf("CRD never appeared in discovery: %v", err)
	}
}

func TestAPIVersionsAndResources(t *testing.T) {
	kubeconfig(t)
	widgetCRD(t)

	versions := runDemo(t, "-api-versions")
	for _, want := range []string{"v1", "apps/v1", "apiextensions.k8s.io/v1", "discovery-test.example.com/v1"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(versions) {
			t.Errorf("api-versions lacks %s:\n%s", want, versions)
		}
	}
	lines := strings.Split(strings.TrimSpace(versions), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i-1] > lines[i] {
			t.Errorf("api-versions not sorted: %q before %q", lines[i-1], lines[i])
		}
	}

	wide := runDemo(t, "-api-resources", "-o", "wide")
	for _, re := range []string{
		`^NAME +SHORTNAMES +APIVERSION +NAMESPACED +KIND +VERBS +CATEGORIES$`,
		`^pods +po +v1 +true +Pod +create,delete,deletecollection,get,list,patch,update,watch +all$`,
		`^deployments +deploy +apps/v1 +true +Deployment +create,delete,deletecollection,get,list,patch,update,watch +all$`,
		`^customresourcedefinitions +crd,crds +apiextensions.k8s.io/v1 +false +CustomResourceDefinition +`,
		`^widgets +wdg +discovery-test.example.com/v1 +false +Widget +[a-z,]+ +client-go-demo-test$`,
	} {
		if !regexp.MustCompile(`(?m)` + re).MatchString(wide) {
			t.Errorf("api-resources -o wide lacks a row matching %s", re)
		}
	}
	// kubectl's order: by group, then by name; the core group first.
	rows := strings.Split(strings.TrimSpace(wide), "\n")[1:]
	if !strings.HasPrefix(rows[0], "bindings ") {
		t.Errorf("first row %q, want bindings (core group, first by name)", rows[0])
	}
	// Columns line up: every row has APIVERSION at the header's offset.
	col := strings.Index(strings.Split(wide, "\n")[0], "APIVERSION")
	for _, r := range rows {
		if len(r) <= col || r[col-1] != ' ' || r[col] == ' ' {
			t.Errorf("row %q is not aligned at column %d", r, col)
		}
	}

	apps := runDemo(t, "-api-resources", "-api-group", "apps")
	appsRows := strings.Split(strings.TrimSpace(apps), "\n")[1:]
	if len(appsRows) != 5 { // controllerrevisions daemonsets deployments replicasets statefulsets
		t.Errorf("-api-group apps: %d rows, want 5:\n%s", len(appsRows), apps)
	}
	for _, r := range appsRows {
		if !strings.Contains(r, " apps/v1 ") {
			t.Errorf("-api-group apps printed %q", r)
		}
	}
	clusterScoped := runDemo(t, "-api-resources", "-namespaced=false")
	for _, r := range strings.Split(strings.TrimSpace(clusterScoped), "\n")[1:] {
		if !regexp.MustCompile(` false +\w+$`).MatchString(r) {
			t.Errorf("-namespaced=false printed %q", r)
		}
	}
	if !strings.Contains(clusterScoped, "namespaces ") || strings.Contains(clusterScoped, "\npods ") {
		t.Errorf("-namespaced=false: want namespaces and no pods:\n%s", clusterScoped)
	}
	names := runDemo(t, "-api-resources", "-o", "name", "-api-group", "")
	if !regexp.MustCompile(`(?m)^pods$`).MatchString(names) || strings.Contains(names, ".") {
		t.Errorf("-o name -api-group '': want bare core names:\n%s", names)
	}
}

func TestDefaultModeAndCaching(t *testing.T) {
	kubeconfig(t)
	cacheDir := t.TempDir()
	out := runDemo(t, "-cache-dir", cacheDir)
	for _, re := range []string{
		`Step 1: ServerVersion\n  v1.37.2 \(1/37, linux/amd64\)`,
		`Step 2: ServerGroups`,
		`"" \(core\) +/api +v1 +v1`,
		`apps +/apis/apps +v1 +v1`,
		`Step 3: ServerPreferredResources`,
		`Step 4: the cost of discovery, cold and cached`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s", re)
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
	memSecond := requests("memory cache, second call")
	diskWarm := requests("disk cache, warm (a second kubectl command)")
	if cold != 2 || legacy <= cold || memSecond != 0 || diskWarm != 0 {
		t.Errorf("requests: cold %d (want 2), legacy %d (want more), memory second %d, disk warm %d (want 0)", cold, legacy, memSecond, diskWarm)
	}
	// The disk cache is laid out like kubectl's: discovery/<host_port>/<group>/<version>/serverresources.json.
	matches, _ := filepath.Glob(filepath.Join(cacheDir, "discovery", "*", "apps", "v1", "serverresources.json"))
	if len(matches) != 1 {
		t.Errorf("disk cache has no apps/v1/serverresources.json under %s", cacheDir)
	}
}

func TestGVRAndExplain(t *testing.T) {
	kubeconfig(t)
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

	explain := runDemo(t, "-explain", "configmap")
	for _, re := range []string{
		`^KIND:       ConfigMap\nVERSION:    v1\n\nDESCRIPTION:\n    ConfigMap holds configuration data for pods to consume.\n    \nFIELDS:\n`,
		`\n  apiVersion\t<string>\n    APIVersion defines the versioned schema`,
		`\n  binaryData\t<map\[string\]string>\n`,
		`\n  immutable\t<boolean>\n`,
		`\n  metadata\t<ObjectMeta>\n    Standard object's metadata.`,
	} {
		if !regexp.MustCompile(re).MatchString(explain) {
			t.Errorf("-explain configmap lacks %s:\n%s", re, explain)
		}
	}
	for _, l := range strings.Split(explain, "\n") {
		if len(l) > 80 && !strings.Contains(l, "https://") {
			t.Errorf("line longer than 80 columns: %q", l)
		}
	}
	explain = runDemo(t, "-explain", "deploy")
	if !strings.HasPrefix(explain, "GROUP:      apps\nKIND:       Deployment\n") || !strings.Contains(explain, "  spec\t<DeploymentSpec>") {
		t.Errorf("-explain deploy:\n%s", explain)
	}
}

func TestDiscoveryclientErrors(t *testing.T) {
	path := kubeconfig(t)
	// system:anonymous without system:authenticated may not even discover.
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range raw.AuthInfos {
		a.Impersonate = "system:anonymous"
		a.ImpersonateGroups = []string{"system:unauthenticated"}
	}
	anonymous := filepath.Join(t.TempDir(), "anonymous.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, anonymous); err != nil {
		t.Fatal(err)
	}
	raw, _ = clientcmd.LoadFromFile(path)
	for _, c := range raw.Clusters {
		c.Server = "https://127.0.0.1:1"
	}
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, unreachable); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"unknown resource", []string{"-gvr", "deploymnt"}, `the server doesn't have a resource type "deploymnt"; did you mean deployment, deployments?`, false},
		{"unknown explain", []string{"-explain", "confgmap"}, `the server doesn't have a resource type "confgmap"; did you mean configmap, configmaps?`, false},
		{"forbidden", []string{"-kubeconfig", anonymous, "-api-versions"}, `forbidden by RBAC: `, false},
		{"unreachable", []string{"-kubeconfig", unreachable, "-api-versions"}, "dial tcp 127.0.0.1:1: connect: connection refused", false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"bad output", []string{"-api-resources", "-o", "yaml"}, `-o "yaml": want wide or name`, true},
		{"two modes", []string{"-explain", "pods", "-gvr", "pods"}, "pick one of", true},
		{"bad flag", []string{"-namespaced=maybe"}, `invalid boolean value "maybe" for -namespaced`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			var u usageError
			if errors.As(err, &u) != tc.usage {
				t.Errorf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
}
