package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"client-go-demo/internal/demotest"
)

// TestMain runs the tests with client-go's cache mutation detector on.
// tools/cache reads KUBE_CACHE_MUTATION_DETECTOR once, in its init(),
// before any test runs (t.Setenv would come too late), so TestMain starts
// this test binary again with the variable set. With it, an informer
// deep-copies every object it adds or updates, compares each with its copy
// every second for the next 2 to 4 minutes, and panics when one changed:
// the test binary dies, and the test fails. Set
// the variable yourself to choose (KUBE_CACHE_MUTATION_DETECTOR=false for
// BenchmarkMeasure, whose heap figures must not include the copies).
func TestMain(m *testing.M) {
	if _, set := os.LookupEnv("KUBE_CACHE_MUTATION_DETECTOR"); !set {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "KUBE_CACHE_MUTATION_DETECTOR=true")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				os.Exit(exit.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "run the tests with KUBE_CACHE_MUTATION_DETECTOR=true:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// TestMutationDetector's child: modify a cached object, as a buggy
	// handler would.
	if ns := os.Getenv("INFORMER_TEST_MUTATE_IN"); ns != "" {
		os.Exit(mutateCachedObject(ns))
	}
	// TestInformerListThenWatch's child: the demo with the environment the
	// parent chose (client-go reads its feature gates from it).
	if args, ok := os.LookupEnv("INFORMER_TEST_RUN"); ok {
		if err := run(context.Background(), strings.Fields(args), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serverEvents is the server's own account of the demo's ConfigMaps in a
// namespace: a watch of the test's, independent of the demo.
type serverEvents struct {
	mu     sync.Mutex
	events []watch.Event
}

func watchServer(t *testing.T, cs kubernetes.Interface, ns string) *serverEvents {
	t.Helper()
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	s := &serverEvents{}
	go func() {
		for ev := range w.ResultChan() {
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *serverEvents) list() []watch.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]watch.Event(nil), s.events...)
}

func (s *serverEvents) count(typ watch.EventType) int {
	n := 0
	for _, ev := range s.list() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// TestInformer runs the demo and checks what it printed against the
// server's own events: every change the handlers reported is one the
// server made, with the same resourceVersion.
func TestInformer(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer")
	server := watchServer(t, cs, ns)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	demotest.Match(t, got,
		`^Step 1: one SharedInformerFactory for the ConfigMaps in namespace `+ns+` labelled app.kubernetes.io/part-of=client-go-demo,app.kubernetes.io/name=informer$`,
		`^  the informer's requests: 1$`,
		`^    WATCH /api/v1/namespaces/`+ns+`/configmaps resourceVersionMatch=NotOlderThan sendInitialEvents=true allowWatchBookmarks=true$`,
		`^  typed   AddFunc    demo-informer-\w+ resourceVersion \d+ \(isInInitialList=true\)$`,
		`^  typed   AddFunc    demo-informer-\w+ resourceVersion \d+ \(isInInitialList=false\)$`,
		`^  typed   DeleteFunc demo-informer-\w+: OptionalObj at resourceVersion \d+, FinalStateUnknown nil`,
		`^  classic DeleteFunc \*v1.ConfigMap demo-informer-\w+ resourceVersion \d+$`,
		`^  lister.ConfigMaps\(ns\).List: 3 objects; Get of a name not in the cache: configmap "no-such-configmap" not found \(apierrors.IsNotFound: true\)$`,
		`^  100 lister Gets:    0 requests, `,
		`^  100 clientset Gets: 100 requests, `,
		`^  ByIndex\("tier", "frontend"\): \[demo-informer-\w+\]$`,
		`^  ByIndex\("tier", "backend"\): \[demo-informer-\w+ demo-informer-\w+\]$`,
		`^  both handlers' UpdateFunc got all 3 cached objects with old.ResourceVersion == new.ResourceVersion`,
		`^  requests meanwhile: 0: `,
		`\(resourceVersion \d+, data\["updatedBy"\] set: false\)$`,
		`^  this run: WatchList: .*\(WatchListClient feature gate: true\)$`,
		`^           3 objects, each a \*v1.ConfigMap; 1 request, \d+ bytes received \(application/vnd.kubernetes.protobuf;stream=watch\)$`,
		`^           3 objects, each a \*unstructured.Unstructured; 1 request, \d+ bytes received \(application/json\)$`,
		`^           3 objects, each a \*v1.PartialObjectMetadata; 1 request, \d+ bytes received`,
		`^Check: the lister holds what a fresh LIST returns \(resourceVersion \d+\): 3 configmaps, every resourceVersion the same$`,
	)
	// Step 2's initial list comes in any order; the demo prints each
	// handler's calls sorted by name, the typed handler's first.
	var initial []string
	if _, rest, ok := strings.Cut(got, "\nStep 2: "); ok {
		for _, l := range regexp.MustCompile(`(?m)^  (typed|classic) +AddFunc +(demo-informer-\w+) .*$`).FindAllStringSubmatch(rest, 6) {
			initial = append(initial, l[1]+" "+l[2])
		}
	}
	if len(initial) != 6 || !slices.IsSorted(initial[:3]) || !slices.IsSorted(initial[3:]) ||
		!strings.HasPrefix(initial[0], "typed ") || !strings.HasPrefix(initial[3], "classic ") {
		t.Errorf("Step 2's initial list, by handler and name: %q; want typed then classic, each sorted by name", initial)
	}
	// On the server: 4 creates, 2 updates (Step 2 and Step 6), and 4
	// deletes (one in Step 2, three by the cleanup).
	demotest.WaitFor(t, 30*time.Second, "the server's events of the demo's writes", func() bool {
		return server.count(watch.Added) >= 4 && server.count(watch.Modified) >= 2 && server.count(watch.Deleted) >= 4
	})
	if a, m, d := server.count(watch.Added), server.count(watch.Modified), server.count(watch.Deleted); a != 4 || m != 2 || d != 4 {
		t.Errorf("server events: %d added, %d modified, %d deleted; want 4, 2, 4", a, m, d)
	}
	// Each handler reported each of the server's changes, at the server's
	// resourceVersion (the three cleanup deletes come after the informer
	// stopped).
	deletes := 0
	for _, ev := range server.list() {
		cm := ev.Object.(*corev1.ConfigMap)
		switch ev.Type {
		case watch.Added:
			demotest.Match(t, got, `^  typed   AddFunc    `+cm.Name+` resourceVersion `+cm.ResourceVersion+` `, `^  classic AddFunc    `+cm.Name+` resourceVersion `+cm.ResourceVersion+`$`)
		case watch.Modified:
			demotest.Match(t, got, `^  typed   UpdateFunc `+cm.Name+` resourceVersion `+cm.ResourceVersion+`, was `, `^  classic UpdateFunc `+cm.Name+` resourceVersion `+cm.ResourceVersion+`, was `)
		case watch.Deleted:
			if deletes++; deletes == 1 {
				demotest.Match(t, got, `^  classic DeleteFunc \*v1.ConfigMap `+cm.Name+` resourceVersion `+cm.ResourceVersion+`$`)
			}
		}
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// TestInformerListThenWatch runs the demo with KUBE_FEATURE_WatchListClient=false,
// as the README says to opt out of WatchList: the informer fills its cache
// with a LIST, then watches from the list's resourceVersion.
func TestInformerListThenWatch(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INFORMER_TEST_RUN=-n "+ns+" -resync 0", "KUBE_FEATURE_WatchListClient=false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out, stderr.String())
	}
	got := string(out)
	demotest.Match(t, got,
		`^  the informer's requests: 2$`,
		`^    LIST /api/v1/namespaces/`+ns+`/configmaps resourceVersion=0 limit=500$`,
		`^    WATCH /api/v1/namespaces/`+ns+`/configmaps resourceVersion=\d+ allowWatchBookmarks=true$`,
		`^  this run: LIST, then WATCH from the list's resourceVersion \(WatchListClient feature gate: false\)$`,
		`^Check: the lister holds what a fresh LIST returns \(resourceVersion \d+\): 3 configmaps`,
	)
	if strings.Contains(got, "sendInitialEvents") {
		t.Error("a WatchList request with the gate off")
	}
	demotest.NothingLeft(t, cs, ns)
}

// TestCache drives startInformers itself: the lister and the index answer
// what the server has, and reading them sends no request.
func TestCache(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer")
	demo := &demoObjects{client: cs.CoreV1().ConfigMaps(ns), ns: ns}
	t.Cleanup(func() { _ = demo.deleteAll(context.Background()) })
	if err := demo.createInitial(context.Background(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	config := demotest.Config(t)
	requests := countRequests(config)
	counted := kubernetes.NewForConfigOrDie(config)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	configMaps, stop, err := startInformers(ctx, counted, ns, 0, newEventLog(&bytes.Buffer{}), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if n := requests.count(); n != 1 {
		t.Errorf("the informer sent %d requests to sync, want 1 (a WatchList): %v", n, requests.since(0))
	}

	// The lister holds exactly the server's objects, at the server's
	// resourceVersions.
	list, err := cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	before := requests.count()
	lister := configMaps.Lister().ConfigMaps(ns)
	cached, err := lister.List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(cached) != len(list.Items) || len(cached) != 3 {
		t.Fatalf("the lister has %d objects, the server %d; want 3", len(cached), len(list.Items))
	}
	for _, cm := range list.Items {
		c, err := lister.Get(cm.Name)
		if err != nil || c.ResourceVersion != cm.ResourceVersion {
			t.Errorf("lister Get %s = %v, %v; the server has resourceVersion %s", cm.Name, c, err, cm.ResourceVersion)
		}
	}
	for range 1000 {
		if _, err := lister.Get(demo.names[0]); err != nil {
			t.Fatal(err)
		}
	}
	// The index: two frontends and one backend, as created.
	byTier := map[string][]string{}
	for _, tier := range []string{"frontend", "backend"} {
		cms, err := configMaps.TypedInformer().GetTypedIndexer().ByTypedIndex(tierIndex, tier)
		if err != nil {
			t.Fatal(err)
		}
		byTier[tier] = names(cms)
	}
	want := map[string][]string{}
	for _, cm := range list.Items {
		want[cm.Data["tier"]] = append(want[cm.Data["tier"]], cm.Name)
	}
	for tier, n := range want {
		slices.Sort(n)
		if !slices.Equal(byTier[tier], n) {
			t.Errorf("ByIndex(tier, %s) = %v, the server says %v", tier, byTier[tier], n)
		}
	}
	if len(byTier["frontend"]) != 2 || len(byTier["backend"]) != 1 {
		t.Errorf("ByIndex by tier = %v, want 2 frontend and 1 backend", byTier)
	}
	if n := requests.count() - before; n != 0 {
		t.Errorf("lister and index reads sent %d requests, want 0: %v", n, requests.since(before))
	}
}

// TestMutationDetector proves that the tests would catch a modified cache
// object: a child process modifies one, and must die of client-go's panic.
func TestMutationDetector(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INFORMER_TEST_MUTATE_IN="+ns, "KUBE_CACHE_MUTATION_DETECTOR=true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil || !strings.Contains(out.String(), "panic: cache *v1.ConfigMap modified") {
		t.Fatalf("a modified cache object went unnoticed (exit: %v):\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ALTERED!") {
		t.Errorf("no ALTERED diff in the output:\n%s", out.String())
	}
	demotest.NothingLeft(t, cs, ns)
}

// mutateCachedObject is TestMutationDetector's child: it does what Step 6
// says never to do, then waits for the detector, which compares every
// second. It returns only if the detector missed the change.
func mutateCachedObject(ns string) int {
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	cs := kubernetes.NewForConfigOrDie(config)
	ctx := context.Background()
	demo := &demoObjects{client: cs.CoreV1().ConfigMaps(ns), ns: ns}
	defer func() { _ = demo.deleteAll(ctx) }()
	if _, err := demo.create(ctx, "frontend"); err != nil {
		fmt.Println(err)
		return 1
	}
	configMaps, stop, err := startInformers(ctx, cs, ns, 0, newEventLog(&bytes.Buffer{}), 30*time.Second)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer stop()
	cm, err := configMaps.Lister().ConfigMaps(ns).Get(demo.names[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	// Cleanup cannot run after the panic: delete first, then mutate.
	if err := demo.deleteAll(ctx); err != nil {
		fmt.Println(err)
		return 1
	}
	cm.Data["tier"] = "modified in the cache" // the bug
	time.Sleep(10 * time.Second)
	fmt.Println("no panic within 10 s")
	return 0
}

// limitedKubeconfig returns a kubeconfig that impersonates user, who may
// do verbs on configmaps in ns and nothing else (but discovery).
func limitedKubeconfig(t *testing.T, cs kubernetes.Interface, ns, user string, verbs ...string) string {
	t.Helper()
	ctx := context.Background()
	_, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: verbs}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// RBAC reaches the authorizer through its informers: wait for the grant.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		review, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verbs[0], Resource: "configmaps"},
		}}, metav1.CreateOptions{})
		return err == nil && review.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("%s never got %s on configmaps", user, verbs[0])
	}
	return demotest.ImpersonatingKubeconfig(t, user)
}

func TestInformerErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-informer")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)
	// May create and delete ConfigMaps, but not list or watch them: the
	// informer cannot sync, and must say so instead of retrying for ever.
	noList := limitedKubeconfig(t, cs, ns, "informer-cannot-list", "create", "get", "update", "delete", "deletecollection")
	// May do everything with ConfigMaps, nothing with Secrets.
	cmOnly := limitedKubeconfig(t, cs, ns, "informer-configmaps-only", "create", "get", "list", "watch", "update", "delete", "deletecollection")
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `create configmap in namespace "` + ns + `": forbidden by RBAC: configmaps is forbidden: User "nobody" cannot create resource "configmaps"`, false},
		{"forbidden list and watch", []string{"-kubeconfig", noList, "-n", ns}, `wait for the informers: failed to sync all caches: *v1.ConfigMap: forbidden by RBAC: failed to list *v1.ConfigMap: configmaps is forbidden: User "informer-cannot-list" cannot list resource "configmaps" in API group "" in the namespace "` + ns + `"`, false},
		{"forbidden dynamic", []string{"-kubeconfig", cmOnly, "-n", ns, "-resource", "secrets"}, `sync the dynamic informer: forbidden by RBAC: failed to list /v1, Resource=secrets: secrets is forbidden: User "informer-configmaps-only" cannot list resource "secrets"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable}, `find resource "configmaps": Get "https://127.0.0.1:1/api?timeout=32s": dial tcp 127.0.0.1:1: connect: connection refused`, false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create configmap in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"unknown resource", []string{"-n", ns, "-resource", "foos"}, `-resource "foos": the server has no such resource (is its CRD installed?`, false},
		// Not the dynamicclient demo's crontabs.stable.example.com: make
		// test runs this package beside the others, which create that CRD.
		{"missing CRD", []string{"-n", ns, "-resource", "widgets.nothing.example.com"}, `-resource "widgets.nothing.example.com": the server has no such resource`, false},
		{"short resync", []string{"-resync", "10ms"}, `-resync 10ms: want 0 or at least 1s`, true},
		{"bad duration", []string{"-duration", "-1s"}, "-duration must not be negative", true},
		{"extra argument", []string{"configmaps"}, `unexpected arguments ["configmaps"]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// Ctrl-C while the informer syncs, while the demo changes objects, and in
// -watch's event loop: the demo's ConfigMaps are deleted anyway.
func TestInformerInterrupted(t *testing.T) {
	cs := demotest.Client(t)
	for _, tc := range []struct {
		name, marker string
		args         []string
		wantErr      bool
	}{
		{"during sync", "before the informer starts", nil, true},
		{"during changes", "-> update ", nil, true},
		{"during the event loop", "watching until Ctrl-C", []string{"-watch"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := demotest.Namespace(t, cs, "test-informer")
			server := watchServer(t, cs, ns)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &demotest.Output{Marker: tc.marker, Cancel: cancel}
			err := run(ctx, append([]string{"-n", ns}, tc.args...), out)
			if tc.wantErr && !errors.Is(err, context.Canceled) || !tc.wantErr && err != nil {
				t.Fatalf("err = %v, want context.Canceled: %v\n%s", err, tc.wantErr, out.String())
			}
			demotest.WaitFor(t, 30*time.Second, "the server's DELETED events", func() bool {
				a := server.count(watch.Added)
				return a >= 3 && server.count(watch.Deleted) == a
			})
			demotest.NothingLeft(t, cs, ns)
		})
	}
}
