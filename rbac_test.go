package readme

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"client-go-demo/internal/demotest"
)

// rbacManifest is the RBAC the README's in-Pod section points to.
const rbacManifest = "hack/rbac/client-go-demo.yaml"

// rbacRun is one demo run of TestLeastPrivilege. Every demo runs, plus the
// flags that reach other resources or endpoints (reflector -resource pods,
// discoveryclient's modes, -explain's OpenAPI document), so the manifest
// and its comments cover them too.
type rbacRun struct {
	demo string
	args []string
	// env is added to the run's environment, e.g. to turn WatchList off,
	// which makes informers LIST first.
	env []string
	// needsRBAC is false for a run that reads only discovery, /version and
	// OpenAPI, which every authenticated user may read by default: it
	// still succeeds without the manifest's bindings.
	needsRBAC bool
}

var rbacRuns = []rbacRun{
	{demo: "restclient", needsRBAC: true},
	{demo: "clientset", needsRBAC: true},
	{demo: "dynamicclient", needsRBAC: true},
	{demo: "discoveryclient", needsRBAC: false},
	{demo: "discoveryclient", args: []string{"-api-versions"}, needsRBAC: false},
	{demo: "discoveryclient", args: []string{"-api-resources", "-o", "wide"}, needsRBAC: false},
	{demo: "discoveryclient", args: []string{"-explain", "configmap"}, needsRBAC: false},
	{demo: "discoveryclient", args: []string{"-gvr", "deploy"}, needsRBAC: false},
	{demo: "reflector", needsRBAC: true},
	{demo: "reflector", args: []string{"-resource", "pods"}, needsRBAC: true},
	{demo: "reflector/watch", needsRBAC: true},
	{demo: "reflector/informer", needsRBAC: true},
	{demo: "reflector/informer", args: []string{"-resource", "deploy"}, needsRBAC: true},
	{demo: "reflector/controller", needsRBAC: true},
	{demo: "reflector/controller", args: []string{"-leader-elect"}, needsRBAC: true},
	// The LIST that informers fall back to (or use, with WatchList off).
	{demo: "reflector/controller", env: []string{"KUBE_FEATURE_WatchListClient=false"}, needsRBAC: true},
}

func (r rbacRun) String() string {
	return strings.Join(slices.Concat(r.env, []string{r.demo}, r.args), " ")
}

// TestLeastPrivilege runs every demo as the manifest's ServiceAccount, with
// a token from the TokenRequest API, as it would run in a Pod. With the
// manifest's bindings every demo succeeds, never meets a 403, and every
// rule of the manifest is used by some request (the "least" part); with
// the bindings removed every demo that needs them fails with one
// Forbidden line.
func TestLeastPrivilege(t *testing.T) {
	cs := demotest.Client(t)
	dyn := dynamic.NewForConfigOrDie(demotest.Config(t))
	m := readRBACManifest(t)
	bin := buildDemos(t)
	ns := demotest.Namespace(t, cs, "rbac")
	m.install(t, cs, ns)
	kubeconfig := serviceAccountKubeconfig(t, cs, ns, m.sa.Name)
	saConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sa := kubernetes.NewForConfigOrDie(saConfig)

	grants := m.grants(ns)
	// RBAC reaches the authorizer through informers: wait until the
	// ServiceAccount has every grant before the first run.
	waitForAccess(t, sa, grants, true)

	// With the bindings: every run succeeds. -v=6 makes client-go log each
	// request and its status ("Response" verb=... url=... status=...,
	// k8s.io/client-go/transport/round_trippers.go), which is what the
	// manifest is checked against below.
	var seen []request
	for _, r := range rbacRuns {
		t.Run("granted/"+r.String(), func(t *testing.T) {
			stdout, stderr, code := runAs(t, bin, kubeconfig, r, "-v=6")
			if code != 0 {
				t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr (last lines):\n%s", code, stdout, tail(stderr, 20))
			}
			reqs := parseRequests(stderr)
			if len(reqs) == 0 {
				t.Fatalf("-v=6 logged no requests; has client-go's log format changed?\n%s", tail(stderr, 20))
			}
			resourceRequests := 0
			for i := range reqs {
				reqs[i].run = r.String()
				if reqs[i].resource != "" {
					resourceRequests++
				}
			}
			if r.needsRBAC != (resourceRequests > 0) {
				t.Errorf("made %d resource requests, but rbacRuns says needsRBAC=%v", resourceRequests, r.needsRBAC)
			}
			seen = append(seen, reqs...)
			nothingLeft(t, cs, dyn, ns)
		})
	}
	if t.Failed() {
		t.FailNow()
	}
	checkRequests(t, cs, m, ns, seen)

	// Without the bindings: each run that needs them fails with one line
	// that says Forbidden; the others behave exactly as before.
	ctx := context.Background()
	if err := cs.RbacV1().RoleBindings(ns).Delete(ctx, m.roleBinding.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.RbacV1().ClusterRoleBindings().Delete(ctx, m.clusterRoleBinding.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForAccess(t, sa, grants, false)
	for _, r := range rbacRuns {
		t.Run("without bindings/"+r.String(), func(t *testing.T) {
			stdout, stderr, code := runAs(t, bin, kubeconfig, r)
			switch {
			case !r.needsRBAC:
				if code != 0 {
					t.Errorf("exit %d, want 0 (it reads only what every authenticated user may)\n%s", code, stderr)
				}
			case code != 1:
				t.Errorf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			case strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, "forbidden"):
				t.Errorf("want exactly one stderr line that says forbidden, got:\n%s", stderr)
			}
			nothingLeft(t, cs, dyn, ns)
		})
	}
}

// rbacObjects are the manifest's five objects.
type rbacObjects struct {
	sa                 *corev1.ServiceAccount
	role               *rbacv1.Role
	roleBinding        *rbacv1.RoleBinding
	clusterRole        *rbacv1.ClusterRole
	clusterRoleBinding *rbacv1.ClusterRoleBinding
}

// readRBACManifest decodes the manifest strictly (a misspelt field is an
// error, as with kubectl apply --validate=strict) and checks its shape:
// one ServiceAccount, bound by both bindings in namespace default, and no
// wildcard anywhere.
func readRBACManifest(t *testing.T) rbacObjects {
	t.Helper()
	data, err := os.ReadFile(rbacManifest)
	if err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	var m rbacObjects
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", rbacManifest, err)
		}
		if isOnlyComments(doc) {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", rbacManifest, err)
		}
		dup := false
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			dup, m.sa = m.sa != nil, o
		case *rbacv1.Role:
			dup, m.role = m.role != nil, o
		case *rbacv1.RoleBinding:
			dup, m.roleBinding = m.roleBinding != nil, o
		case *rbacv1.ClusterRole:
			dup, m.clusterRole = m.clusterRole != nil, o
		case *rbacv1.ClusterRoleBinding:
			dup, m.clusterRoleBinding = m.clusterRoleBinding != nil, o
		default:
			t.Fatalf("%s: unexpected %s", rbacManifest, gvk)
		}
		if dup {
			t.Fatalf("%s: a second %s", rbacManifest, gvk.Kind)
		}
	}
	if m.sa == nil || m.role == nil || m.roleBinding == nil || m.clusterRole == nil || m.clusterRoleBinding == nil {
		t.Fatalf("%s: want a ServiceAccount, a Role, a RoleBinding, a ClusterRole and a ClusterRoleBinding", rbacManifest)
	}

	// The shape the README describes.
	if m.sa.Name != "client-go-demo" {
		t.Errorf("ServiceAccount %q, want client-go-demo", m.sa.Name)
	}
	for _, o := range []metav1.Object{m.sa, m.role, m.roleBinding} {
		if o.GetNamespace() != "default" {
			t.Errorf("%s is in namespace %q, want default", o.GetName(), o.GetNamespace())
		}
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: m.sa.Name, Namespace: "default"}}
	if !slices.Equal(m.roleBinding.Subjects, subject) || m.roleBinding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: m.role.Name}) {
		t.Errorf("RoleBinding binds %v to %v, want %v to Role %s", m.roleBinding.Subjects, m.roleBinding.RoleRef, subject, m.role.Name)
	}
	if !slices.Equal(m.clusterRoleBinding.Subjects, subject) || m.clusterRoleBinding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: m.clusterRole.Name}) {
		t.Errorf("ClusterRoleBinding binds %v to %v, want %v to ClusterRole %s", m.clusterRoleBinding.Subjects, m.clusterRoleBinding.RoleRef, subject, m.clusterRole.Name)
	}
	if m.clusterRole.AggregationRule != nil {
		t.Error("the ClusterRole aggregates other roles: its rules are not in the manifest")
	}
	for _, r := range slices.Concat(m.role.Rules, m.clusterRole.Rules) {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %v grants non-resource URLs: discovery, /version and OpenAPI are granted by default", r)
		}
		if slices.Contains(r.Verbs, "*") || slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*") {
			t.Errorf("rule %v has a wildcard: least privilege names each verb and resource", r)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// isOnlyComments reports whether a YAML document holds nothing but
// comments and blank lines, as the manifest's header does.
func isOnlyComments(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// install creates the manifest's objects in ns, as kubectl apply would
// after the namespace rewrite its header describes: namespaced objects and
// the subjects move to ns, and the cluster-scoped objects get a name of
// their own, so that runs in parallel never share a ClusterRoleBinding.
// Everything is deleted when the test ends.
func (m *rbacObjects) install(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	m.sa.Namespace, m.role.Namespace, m.roleBinding.Namespace = ns, ns, ns
	for i := range m.roleBinding.Subjects {
		m.roleBinding.Subjects[i].Namespace = ns
	}
	for i := range m.clusterRoleBinding.Subjects {
		m.clusterRoleBinding.Subjects[i].Namespace = ns
	}
	m.clusterRole.Name += "-" + ns
	m.clusterRoleBinding.Name += "-" + ns
	m.clusterRoleBinding.RoleRef.Name = m.clusterRole.Name

	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	cleanup := func(del func(context.Context, string, metav1.DeleteOptions) error, name string) {
		t.Cleanup(func() {
			if err := del(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s: %v", name, err)
			}
		})
	}
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, m.sa, metav1.CreateOptions{})
	check("ServiceAccount", err)
	cleanup(cs.CoreV1().ServiceAccounts(ns).Delete, m.sa.Name)
	_, err = cs.RbacV1().Roles(ns).Create(ctx, m.role, metav1.CreateOptions{})
	check("Role", err)
	cleanup(cs.RbacV1().Roles(ns).Delete, m.role.Name)
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, m.roleBinding, metav1.CreateOptions{})
	check("RoleBinding", err)
	cleanup(cs.RbacV1().RoleBindings(ns).Delete, m.roleBinding.Name)
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, m.clusterRole, metav1.CreateOptions{})
	check("ClusterRole", err)
	cleanup(cs.RbacV1().ClusterRoles().Delete, m.clusterRole.Name)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, m.clusterRoleBinding, metav1.CreateOptions{})
	check("ClusterRoleBinding", err)
	cleanup(cs.RbacV1().ClusterRoleBindings().Delete, m.clusterRoleBinding.Name)
}

// grant is one verb on one resource that a rule of the manifest allows.
type grant struct {
	rule          string // "Role rule 2", for messages
	verb          string
	group         string
	resource      string // resource or resource/subresource
	namespace     string // "" for the ClusterRole, which applies everywhere
	resourceNames []string
}

func (g grant) String() string {
	gr := schema.GroupResource{Group: g.group, Resource: g.resource}.String()
	if len(g.resourceNames) > 0 {
		gr += fmt.Sprintf(" %v", g.resourceNames)
	}
	return fmt.Sprintf("%s %s (%s)", g.verb, gr, g.rule)
}

// grants expands the manifest's rules into one grant per verb, group and
// resource.
func (m *rbacObjects) grants(ns string) []grant {
	var out []grant
	add := func(kind string, rules []rbacv1.PolicyRule, namespace string) {
		for i, r := range rules {
			for _, v := range r.Verbs {
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						out = append(out, grant{fmt.Sprintf("%s rule %d", kind, i+1), v, g, res, namespace, r.ResourceNames})
					}
				}
			}
		}
	}
	add("Role", m.role.Rules, ns)
	add("ClusterRole", m.clusterRole.Rules, "")
	return out
}

// allows mirrors the RBAC authorizer's rule match
// (k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go, without
// wildcards, which the manifest has none of).
func (g grant) allows(r request) bool {
	return r.verb == g.verb && r.group == g.group && r.resource == g.resource &&
		(g.namespace == "" || r.namespace == g.namespace) &&
		(len(g.resourceNames) == 0 || slices.Contains(g.resourceNames, r.name))
}

// waitForAccess polls SelfSubjectAccessReviews, which every authenticated
// user may create (ClusterRole system:basic-user), until the
// ServiceAccount has every grant (want true) or none of them (want false).
func waitForAccess(t *testing.T, sa kubernetes.Interface, grants []grant, want bool) {
	t.Helper()
	var pending []string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pending = nil
		for _, g := range grants {
			attrs := &authorizationv1.ResourceAttributes{Namespace: g.namespace, Verb: g.verb, Group: g.group, Resource: g.resource}
			if res, sub, ok := strings.Cut(g.resource, "/"); ok {
				attrs.Resource, attrs.Subresource = res, sub
			}
			names := g.resourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, name := range names {
				attrs.Name = name
				review, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
					&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}},
					metav1.CreateOptions{})
				switch {
				case err != nil:
					pending = append(pending, g.String()+": "+err.Error())
				case review.Status.Allowed != want:
					pending = append(pending, g.String())
				}
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		t.Fatalf("after a minute the ServiceAccount's access is still not allowed=%v for: %v", want, pending)
	}
}

// serviceAccountKubeconfig writes a kubeconfig (mode 0600, as
// clientcmd.WriteToFile writes every kubeconfig) with the server, its CA
// and a TokenRequest token for the ServiceAccount: what a Pod's in-cluster
// config holds. The context's namespace is ns, as a Pod's is its own.
func serviceAccountKubeconfig(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	admin := demotest.Config(t)
	if err := rest.LoadTLSFiles(admin); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token for ServiceAccount %s: %v", name, err)
	}
	config := clientcmdapi.NewConfig()
	config.Clusters["local"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	config.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	config.Contexts[name] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: ns}
	config.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildDemos builds every demo, once for all the tests of this package
// (README output and least privilege run the same binaries), into a
// directory that TestMain removes.
func buildDemos(t *testing.T) string {
	t.Helper()
	dir, err := builtDemos()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	binDir     string
	builtDemos = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "client-go-demo-bin-")
		if err != nil {
			return "", err
		}
		binDir = dir
		// One go build per demo (go build -o dir/ names each binary
		// after the last path element, and two would be "reflector"),
		// run in parallel; the build cache makes the later ones cheap.
		var wg sync.WaitGroup
		errs := make([]error, len(demos))
		for i, d := range demos {
			wg.Go(func() {
				args := []string{"build", "-o", filepath.Join(dir, binName(d)), "./" + d}
				if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			})
		}
		wg.Wait()
		return dir, errors.Join(errs...)
	})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runAs runs one demo with $KUBECONFIG set to kubeconfig and returns its
// output and exit status. A demo that hangs is killed after five minutes,
// so the test fails with its output instead of timing out silently.
func runAs(t *testing.T, bin, kubeconfig string, r rbacRun, extra ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, binName(r.demo)), slices.Concat(r.args, extra)...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), r.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run %s: %v", r, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within five minutes\nstdout:\n%s\nstderr:\n%s", r, out.String(), tail(errOut.String(), 20))
	}
	return out.String(), errOut.String(), code
}

// nothingLeft checks a run's cleanup: no labelled object in ns, and no
// labelled CustomResourceDefinition (the dynamic client demo creates one).
func nothingLeft(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, ns string) {
	t.Helper()
	demotest.NothingLeft(t, cs, ns)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	var left []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := crds.List(ctx, metav1.ListOptions{LabelSelector: demotest.PartOf})
		if err != nil {
			left = []string{err.Error()}
			return false, nil // keep trying: a transient error proves nothing
		}
		left = nil
		for _, c := range list.Items {
			left = append(left, c.GetName())
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("CRDs left behind: %v", left)
	}
}

// request is one request a demo made, as the API server's authorizer sees
// it (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
type request struct {
	run    string
	path   string // for a non-resource request: the URL path
	status string

	verb, group, resource, namespace, name string // for a resource request
}

func (r request) String() string {
	if r.resource == "" {
		return fmt.Sprintf("%s %s -> %s (%s)", r.verb, r.path, r.status, r.run)
	}
	where := "cluster-wide"
	if r.namespace != "" {
		where = "in " + r.namespace
	}
	name := ""
	if r.name != "" {
		name = " " + r.name
	}
	return fmt.Sprintf("%s %s%s %s -> %s (%s)", r.verb, schema.GroupResource{Group: r.group, Resource: r.resource}, name, where, r.status, r.run)
}

// responseLine is client-go's -v=6 log line for a finished request
// (k8s.io/client-go/transport/round_trippers.go, debuggingRoundTripper).
var responseLine = regexp.MustCompile(`"Response" verb="([A-Z]+)" url="([^"]+)" status="([^"]*)"`)

// parseRequests finds every request in a demo's -v=6 log and works out its
// verb and resource as the API server does.
func parseRequests(log string) []request {
	var out []request
	for _, m := range responseLine.FindAllStringSubmatch(log, -1) {
		u, err := url.Parse(m[2])
		if err != nil {
			continue
		}
		r := requestFor(m[1], u, m[3])
		out = append(out, r)
		// A server-side apply that creates its object (201 Created) was
		// authorized as a create too (k8s.io/apiserver@v0.37.2
		// pkg/endpoints/handlers/patch.go, createAuthorizerAttributes).
		if r.verb == "patch" && strings.HasPrefix(r.status, "201") {
			r.verb = "create"
			out = append(out, r)
		}
	}
	return out
}

// requestFor is requestinfo.go's NewRequestInfo for the URLs client-go
// builds: /api/v1/... and /apis/<group>/<version>/... with an optional
// namespaces/<ns>/ and resource[/name[/subresource]]; everything else
// (/version, /api, /apis/<group>/<version>, /openapi/v3/...) is a
// non-resource request, authorized by its path.
func requestFor(method string, u *url.URL, status string) request {
	r := request{path: u.Path, status: status, verb: strings.ToLower(method)}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		r.group, parts = parts[1], parts[3:]
	default:
		return r
	}
	if parts[0] == "namespaces" && len(parts) > 2 {
		r.namespace, parts = parts[1], parts[2:]
	}
	r.resource = parts[0]
	if len(parts) > 1 {
		r.name = parts[1]
	}
	if len(parts) > 2 {
		r.resource += "/" + parts[2]
	}
	switch method {
	case "POST":
		r.verb = "create"
	case "GET", "HEAD":
		r.verb = "get"
	case "PUT":
		r.verb = "update"
	case "PATCH":
		r.verb = "patch"
	case "DELETE":
		r.verb = "delete"
	}
	q := u.Query()
	if r.name == "" && r.verb == "get" {
		r.verb = "list"
		if w := q.Get("watch"); w == "true" || w == "1" {
			r.verb = "watch"
		}
		if sel, err := fields.ParseSelector(q.Get("fieldSelector")); err == nil {
			if name, ok := sel.RequiresExactMatch("metadata.name"); ok {
				r.name = name
			}
		}
	}
	if r.name == "" && r.verb == "delete" {
		r.verb = "deletecollection"
	}
	return r
}

// checkRequests holds the manifest to what the demos did: no request was
// refused (401/403), every resource request is allowed by a rule of the
// manifest, every non-resource request by the default ClusterRoles bound
// to all authenticated users, and every grant of the manifest was used by
// at least one request.
func checkRequests(t *testing.T, cs kubernetes.Interface, m rbacObjects, ns string, seen []request) {
	t.Helper()
	defaults := defaultNonResourceURLs(t, cs)
	grants := m.grants(ns)
	used := make([]bool, len(grants))
	var unexplained []string
	for _, r := range seen {
		if strings.HasPrefix(r.status, "401") || strings.HasPrefix(r.status, "403") {
			t.Errorf("refused: %s", r)
			continue
		}
		if r.resource == "" {
			if !slices.ContainsFunc(defaults, func(p string) bool {
				return p == r.path || strings.HasSuffix(p, "*") && strings.HasPrefix(r.path, strings.TrimSuffix(p, "*"))
			}) {
				unexplained = append(unexplained, r.String()+": not in system:discovery or system:public-info-viewer")
			}
			continue
		}
		ok := false
		for i, g := range grants {
			if g.allows(r) {
				used[i], ok = true, true
			}
		}
		if !ok {
			unexplained = append(unexplained, r.String()+": no rule of the manifest allows it")
		}
	}
	sort.Strings(unexplained)
	for _, u := range slices.Compact(unexplained) {
		t.Error(u)
	}
	for i, g := range grants {
		if !used[i] {
			t.Errorf("%s: granted by %s, but no demo run used it; drop it (least privilege)", g, rbacManifest)
		}
	}
	if testing.Verbose() {
		summary := map[string][]string{}
		for _, r := range seen {
			key := r.verb + " " + r.path
			if r.resource != "" {
				key = r.verb + " " + schema.GroupResource{Group: r.group, Resource: r.resource}.String()
			}
			if !slices.Contains(summary[key], r.run) {
				summary[key] = append(summary[key], r.run)
			}
		}
		keys := make([]string, 0, len(summary))
		for k := range summary {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("%-70s %s", k, strings.Join(summary[k], ", "))
		}
	}
}

// defaultNonResourceURLs reads, from the server, the non-resource URLs that
// every authenticated user may GET: the ClusterRoles system:discovery and
// system:public-info-viewer, bound to group system:authenticated by
// default (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
func defaultNonResourceURLs(t *testing.T, cs kubernetes.Interface) []string {
	t.Helper()
	ctx := context.Background()
	var urls []string
	for _, name := range []string{"system:discovery", "system:public-info-viewer"} {
		binding, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(binding.Subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}) {
			t.Fatalf("ClusterRoleBinding %s does not bind system:authenticated: %v", name, binding.Subjects)
		}
		role, err := cs.RbacV1().ClusterRoles().Get(ctx, binding.RoleRef.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Verbs, "get") {
				urls = append(urls, r.NonResourceURLs...)
			}
		}
	}
	return urls
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
