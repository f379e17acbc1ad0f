package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"client-go-demo/internal/demotest"
)

// The cache mutation detector (tools/cache/mutation_detector.go) keeps a
// copy of every object an informer delivers and panics when one changes:
// a controller that modifies a cached object fails its tests. client-go
// reads KUBE_CACHE_MUTATION_DETECTOR once, when the package initializes,
// before TestMain runs, so the test binary runs itself again with it set.
func TestMain(m *testing.M) {
	if os.Getenv("KUBE_CACHE_MUTATION_DETECTOR") == "" {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "KUBE_CACHE_MUTATION_DETECTOR=true")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The detector warns through klog at each informer's start, and the
	// tests' drops are logged too: keep the test output to the tests'.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// serviceLog records the server's own account of the Services in ns: a
// watch of the test's, independent of the demo's informers.
type serviceLog struct {
	mu     sync.Mutex
	events []watch.Event
}

func watchServices(t *testing.T, cs kubernetes.Interface, ns string) *serviceLog {
	t.Helper()
	w, err := cs.CoreV1().Services(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	s := &serviceLog{}
	go func() {
		for ev := range w.ResultChan() {
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
	}()
	return s
}

// list returns the events so far, without the MODIFIED events of a
// deletion in progress: a foreground deletion first sets the Service's
// deletionTimestamp and finalizer, then the garbage collector removes it.
func (s *serviceLog) list() []watch.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var events []watch.Event
	for _, ev := range s.events {
		if svc, ok := ev.Object.(*corev1.Service); ok && ev.Type == watch.Modified && svc.DeletionTimestamp != nil {
			continue
		}
		events = append(events, ev)
	}
	return events
}

// TestControllerDemo runs the default demo and checks, on the server's own
// watch, every state the Service went through, and the Events.
func TestControllerDemo(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	log := watchServices(t, cs, ns)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	demotest.Match(t, got,
		`^Step 1: one shared informer factory watches Deployments and Services in namespace `+ns+`$`,
		`^  caches synced: 0 Deployments, 0 Services`,
		`^  Add\("ns/a"\) three times: Len\(\) = 1;`,
		`^  Get\(\) gives it to a worker; Add\("ns/a"\) meanwhile: Len\(\) = 0,`,
		`^  Done\("ns/a"\): Len\(\) = 1,`,
		`^  AddRateLimited\(key\) after each failure waits \[5ms 10ms 20ms 40ms 80ms\]`,
		`^  Deployment (demo-controller-\w{5}) has its Service: selector app.kubernetes.io/name=web, ports http 8080/TCP -> http$`,
		`^  ownerReference: apps/v1 Deployment demo-controller-\w{5}, controller=true, blockOwnerDeletion=true; field managers: client-go-demo-controller \(Apply\)$`,
		`^  ports http 8080/TCP -> http again \(applied with Force\); annotation example.com/note="edited by hand" kept; field managers: client-go-demo-controller \(Apply\), kubectl-edit \(Update\)$`,
		`^-> removed label client-go-demo/expose: Service demo-controller-\w{5} is gone$`,
		`^-> labelled client-go-demo/expose=true: Service demo-controller-\w{5} is back`,
		`^-> deleted Deployment demo-controller-\w{5} \(propagationPolicy Foreground\): Service demo-controller-\w{5} is gone; writes by the controller: 4 before, 4 after$`,
		`^  Normal  ServiceCreated  Apply   client-go-demo-controller: created Service`,
		`^  Normal  ServiceUpdated  Apply   client-go-demo-controller: put back Service`,
		`^  Normal  ServiceDeleted  Delete  client-go-demo-controller: deleted Service`,
		`^Step 9: stopped: the queue drained \(Len 0\), the workers returned; the controller made 4 writes$`,
	)
	name := regexp.MustCompile(`Deployment (demo-controller-\w{5}) has its Service`).FindStringSubmatch(got)
	if name == nil {
		t.FailNow()
	}

	// On the server: created with the right spec and owner, edited by
	// hand, put back with the annotation kept, deleted, created again,
	// deleted by the garbage collector.
	demotest.WaitFor(t, 30*time.Second, "the last DELETED event", func() bool {
		n := 0
		for _, ev := range log.list() {
			if ev.Type == watch.Deleted {
				n++
			}
		}
		return n == 2
	})
	var states []string
	for _, ev := range log.list() {
		svc := ev.Object.(*corev1.Service)
		if svc.Name != name[1] {
			t.Errorf("a Service of another name: %s", svc.Name)
		}
		ref := metav1.GetControllerOf(svc)
		if ref == nil || ref.Name != name[1] || ref.Kind != "Deployment" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("%s %s: controller reference %+v", ev.Type, svc.Name, ref)
		}
		if svc.Spec.Selector["app.kubernetes.io/name"] != "web" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 {
			t.Errorf("%s: selector %v, ports %+v", ev.Type, svc.Spec.Selector, svc.Spec.Ports)
		}
		states = append(states, string(ev.Type)+" "+svc.Spec.Ports[0].TargetPort.String()+" "+svc.Annotations["example.com/note"])
	}
	want := []string{"ADDED http ", "MODIFIED 9090 edited by hand", "MODIFIED http edited by hand", "DELETED http edited by hand", "ADDED http ", "DELETED http "}
	if strings.Join(states, "|") != strings.Join(want, "|") {
		t.Errorf("the Service went through\n%q\nwant\n%q", states, want)
	}
	// The Events, on the server, regarding the Deployment.
	list, err := cs.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.Name == name[1] && e.ReportingController == fieldManager {
			reasons[e.Reason]++
		}
	}
	if reasons["ServiceCreated"] != 2 || reasons["ServiceUpdated"] != 1 || reasons["ServiceDeleted"] != 1 || len(reasons) != 3 {
		t.Errorf("Events by reason %v", reasons)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

// -fail-first 3: three 503s, retried after 5, 10 and 20 ms; one Service.
func TestControllerRetriesWithBackOff(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	log := watchServices(t, cs, ns)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-fail-first", "3", "-workers", "1"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	demotest.Match(t, out.String(),
		`(?s)^-> create a Deployment.*\n  `+ns+`/demo-controller-\w{5}: retry 3, \d+ms after the failure\n  Deployment demo-controller-\w{5} has its Service`,
		`apply service demo-controller-\w{5}: write 1 of the first 3 fails \(-fail-first\); AddRateLimited: back-off 5ms \(NumRequeues 0\)$`,
		`write 2 of the first 3 fails \(-fail-first\); AddRateLimited: back-off 10ms \(NumRequeues 1\)$`,
		`write 3 of the first 3 fails \(-fail-first\); AddRateLimited: back-off 20ms \(NumRequeues 2\)$`,
		`^Step 9: .*the controller made 4 writes$`,
	)
	demotest.NothingLeft(t, cs, ns)
	if added := strings.Count(eventTypes(log), "ADDED"); added != 2 {
		t.Errorf("%d ADDED events, want 2 (the Step 4 Service and the Step 6 one)", added)
	}
}

func eventTypes(s *serviceLog) string {
	var types []string
	for _, ev := range s.list() {
		types = append(types, string(ev.Type))
	}
	return strings.Join(types, " ")
}

// After -max-retries the key is dropped; the scripted run ends with that
// error and cleans up.
func TestControllerDropsAfterMaxRetries(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-n", ns, "-fail-first", "3", "-max-retries", "2"}, &out)
	if err == nil || !regexp.MustCompile(`^reconcile `+ns+`/demo-controller-\w{5}: gave up after 2 retries: apply service demo-controller-\w{5}: write 3 of the first 3 fails`).MatchString(err.Error()) {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if svcs, _ := cs.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{}); len(svcs.Items) != 0 {
		t.Errorf("a Service was created: %v", svcs.Items)
	}
	demotest.NothingLeft(t, cs, ns)
}

// -serve reconciles what a user labels, leaves alone a Service it does not
// own, and ends on Ctrl-C with nothing but its own objects gone.
func TestControllerServe(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	ctx := context.Background()
	// A Deployment that was there before the controller started: its
	// key comes from the informer's initial list.
	early := createDeployment(t, cs, ns, true)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &demotest.Output{}
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"-n", ns, "-serve"}, out) }()
	waitForOwnedService(t, cs, ns, early)
	unlabelled := createDeployment(t, cs, ns, false)
	labelled := createDeployment(t, cs, ns, true)
	waitForOwnedService(t, cs, ns, labelled)
	// A Service of the name of a labelled Deployment, made by someone else:
	// the controller warns and leaves it alone.
	foreign := newDeployment()
	foreign.Name, foreign.GenerateName = "taken", ""
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "taken", Labels: map[string]string{partOfKey: partOfValue}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 1234}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	demotest.WaitFor(t, 30*time.Second, "the ServiceNotOurs Event and the failure", func() bool {
		list, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=ServiceNotOurs"})
		return err == nil && len(list.Items) > 0 && strings.Contains(out.String(), "  reconcile "+ns+"/taken failed")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	demotest.Match(t, got,
		`^serving until Ctrl-C; try: kubectl -n `+ns+` label deployment NAME client-go-demo/expose=true$`,
		`^  controller: created Service `+ns+`/`+early.Name+` \(ports http 8080/TCP -> http\)$`,
		`^  controller: created Service `+ns+`/`+labelled.Name+` `,
		`^  reconcile `+ns+`/taken failed: service taken exists and is not controlled by deployment taken;`,
		`^stopped: the queue drained; writes: 2$`,
	)
	if _, err := cs.CoreV1().Services(ns).Get(ctx, unlabelled.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the unlabelled Deployment got a Service: %v", err)
	}
	taken, err := cs.CoreV1().Services(ns).Get(ctx, "taken", metav1.GetOptions{})
	if err != nil || taken.Spec.Ports[0].Port != 1234 || len(taken.OwnerReferences) != 0 {
		t.Errorf("the foreign Service changed: %+v, %v", taken, err)
	}
	// -serve leaves the user's objects in place: the test deletes them.
	for _, name := range []string{early.Name, unlabelled.Name, labelled.Name, "taken"} {
		_ = cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{})
	}
	_ = cs.CoreV1().Services(ns).Delete(ctx, "taken", metav1.DeleteOptions{})
	demotest.NothingLeft(t, cs, ns)
}

func createDeployment(t *testing.T, cs kubernetes.Interface, ns string, expose bool) *appsv1.Deployment {
	t.Helper()
	d := newDeployment()
	if !expose {
		delete(d.Labels, exposeLabel)
	}
	d, err := cs.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitForOwnedService waits until d's Service exists on the server,
// controlled by d.
func waitForOwnedService(t *testing.T, cs kubernetes.Interface, ns string, d *appsv1.Deployment) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	demotest.WaitFor(t, 30*time.Second, "the Service of "+d.Name, func() bool {
		s, err := cs.CoreV1().Services(ns).Get(context.Background(), d.Name, metav1.GetOptions{})
		svc = s
		return err == nil && metav1.IsControlledBy(s, d)
	})
	return svc
}

// Two copies with -leader-elect: only the holder of the Lease reconciles;
// when it stops (Ctrl-C, which releases the Lease), the other takes over.
func TestControllerLeaderFailover(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	ctx := context.Background()
	args := []string{"-n", ns, "-serve", "-leader-elect", "-lease-duration", "2s", "-renew-deadline", "1500ms", "-retry-period", "250ms"}
	type copyOf struct {
		out    *demotest.Output
		cancel context.CancelFunc
		done   chan error
		id     string
	}
	start := func() *copyOf {
		c := &copyOf{out: &demotest.Output{}, done: make(chan error, 1)}
		var rctx context.Context
		rctx, c.cancel = context.WithCancel(ctx)
		go func() { c.done <- run(rctx, args, c.out) }()
		demotest.WaitFor(t, 30*time.Second, "the copy's identity", func() bool {
			m := regexp.MustCompile(`this copy is (\S+);`).FindStringSubmatch(c.out.String())
			if m != nil {
				c.id = m[1]
			}
			return m != nil
		})
		return c
	}
	a := start()
	demotest.WaitFor(t, 30*time.Second, "the first copy to lead", func() bool { return strings.Contains(a.out.String(), "this copy holds the Lease") })
	b := start()
	defer func() { a.cancel(); b.cancel() }()
	demotest.WaitFor(t, 30*time.Second, "the second copy to see the leader", func() bool {
		return strings.Contains(b.out.String(), "the Lease is held by "+a.id+": this copy waits")
	})
	holder := func() string {
		lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}
	if h := holder(); h != a.id {
		t.Fatalf("Lease holder %q, want the first copy %q", h, a.id)
	}
	first := createDeployment(t, cs, ns, true)
	waitForOwnedService(t, cs, ns, first)
	if strings.Contains(b.out.String(), "controller:") {
		t.Errorf("the standby wrote:\n%s", b.out.String())
	}
	// The copy prints its line after the apply's response and the Event;
	// the Service can be seen on the server before that.
	demotest.WaitFor(t, 10*time.Second, "the first copy's created line", func() bool {
		return regexp.MustCompile(`(?m)^  controller: created Service ` + ns + `/` + first.Name).MatchString(a.out.String())
	})

	// Stop the leader: it releases the Lease; the standby takes it.
	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatalf("first copy: %v\n%s", err, a.out.String())
	}
	demotest.WaitFor(t, 30*time.Second, "the second copy to lead", func() bool { return strings.Contains(b.out.String(), "this copy holds the Lease") })
	demotest.WaitFor(t, 10*time.Second, "the second copy in the Lease", func() bool { return holder() == b.id })
	second := createDeployment(t, cs, ns, true)
	waitForOwnedService(t, cs, ns, second)
	// The copy prints its line after the apply's response and the Event;
	// the Service can be seen on the server before that.
	demotest.WaitFor(t, 10*time.Second, "the second copy's created line", func() bool {
		return regexp.MustCompile(`(?m)^  controller: created Service ` + ns + `/` + second.Name).MatchString(b.out.String())
	})
	if strings.Contains(a.out.String(), second.Name) {
		t.Errorf("the stopped copy reconciled %s", second.Name)
	}
	// The last copy releases the Lease and, as nobody holds it, deletes it.
	b.cancel()
	if err := <-b.done; err != nil {
		t.Fatalf("second copy: %v\n%s", err, b.out.String())
	}
	demotest.Match(t, b.out.String(), `^  released and deleted Lease demo-controller: nobody else held it$`)
	if _, err := cs.CoordinationV1().Leases(ns).Get(ctx, leaseName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Lease is still there: %v", err)
	}
	for _, d := range []*appsv1.Deployment{first, second} {
		_ = cs.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{})
	}
	demotest.NothingLeft(t, cs, ns)
}

func TestControllerErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	// Users allowed all but one resource the demo needs.
	noServices := grantAllBut(t, cs, ns, "no-services", "services")
	noLeases := grantAllBut(t, cs, ns, "no-leases", "leases")
	unreachable := demotest.UnreachableKubeconfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `forbidden by RBAC: `, false},
		{"forbidden services", []string{"-kubeconfig", noServices, "-n", ns}, `list and watch services: forbidden by RBAC: failed to list *v1.Service: services is forbidden: User "no-services" cannot list resource "services"`, false},
		{"forbidden leases", []string{"-kubeconfig", noLeases, "-n", ns, "-leader-elect"}, `get lease demo-controller: forbidden by RBAC: leases.coordination.k8s.io "demo-controller" is forbidden: User "no-leases" cannot get resource "leases"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable}, `reach the API server: Get "https://127.0.0.1:1/version": dial tcp 127.0.0.1:1: connect: connection refused`, false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"no workers", []string{"-workers", "0"}, "-workers 0: want at least 1", true},
		{"negative", []string{"-fail-first", "-1"}, "must not be negative", true},
		{"renew deadline", []string{"-leader-elect", "-renew-deadline", "20s"}, "-lease-duration 15s, -renew-deadline 20s, -retry-period 2s: leaseDuration must be greater than renewDeadline", true},
		{"retry period", []string{"-leader-elect", "-renew-deadline", "2s", "-retry-period", "2s"}, "renewDeadline must be greater than retryPeriod*JitterFactor", true},
		{"lease seconds", []string{"-leader-elect", "-lease-duration", "1500ms", "-renew-deadline", "1s", "-retry-period", "100ms"}, "-lease-duration 1.5s: the Lease stores whole seconds", true},
		{"extra argument", []string{"deployments"}, `unexpected arguments ["deployments"]`, true},
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

// grantAllBut writes a kubeconfig impersonating user, who may do in ns all
// the demo does except on resource.
func grantAllBut(t *testing.T, cs kubernetes.Interface, ns, user, resource string) string {
	t.Helper()
	ctx := context.Background()
	all := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"list", "watch", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list", "watch", "create", "patch", "delete"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"list", "create", "patch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "delete"}},
	}
	var rules []rbacv1.PolicyRule
	for _, r := range all {
		if r.Resources[0] != resource {
			rules = append(rules, r)
		}
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := demotest.ImpersonatingKubeconfig(t, user)
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	as := kubernetes.NewForConfigOrDie(config)
	// RBAC reaches the authorizer through its informers: wait for it.
	demotest.WaitFor(t, 30*time.Second, "the grant to "+user, func() bool {
		_, err := as.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return err == nil
	})
	return kubeconfig
}

// Ctrl-C once the Service exists: the Deployment is deleted on the way out,
// and the garbage collector deletes the Service.
func TestControllerInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-controller")
	log := watchServices(t, cs, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{Marker: "has its Service", Cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out.String())
	}
	demotest.WaitFor(t, 30*time.Second, "the Service to be created and garbage-collected", func() bool {
		return eventTypes(log) == "ADDED DELETED"
	})
	demotest.NothingLeft(t, cs, ns)
}

// Faults: kube-apiserver restarts and etcd is compacted while the
// controller runs; changes made meanwhile must all be reconciled, with no
// Service lost or doubled. Restarting the shared API server would break the
// other packages' tests, so this test starts a control plane of its own
// from the same binary, on other ports, and takes it down after.
func TestControllerRecovery(t *testing.T) {
	lc := demotest.PrivateCluster(t, 25443)
	kubeconfig := lc.Kubeconfig()
	cs := lc.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-kubeconfig", kubeconfig, "-serve"}, out) }()
	var ds []*appsv1.Deployment
	for range 3 {
		d := createDeployment(t, cs, "default", true)
		ds = append(ds, d)
		waitForOwnedService(t, cs, "default", d)
	}

	lc.Run(t, "restart-apiserver")
	lc.Run(t, "compact")
	// Right after the restart, while the informers reconnect: a new
	// labelled Deployment, a label removed, a Service deleted by hand.
	ds = append(ds, createDeployment(t, cs, "default", true))
	if _, err := cs.AppsV1().Deployments("default").Patch(ctx, ds[0].Name, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+exposeLabel+`":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Services("default").Delete(ctx, ds[1].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds[1:] {
		waitForOwnedService(t, cs, "default", d)
	}
	demotest.WaitFor(t, 30*time.Second, "the unlabelled Deployment's Service to go", func() bool {
		_, err := cs.CoreV1().Services("default").Get(ctx, ds[0].Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("the output was:\n%s", out.String())
	// Exactly one Service per labelled Deployment, no other.
	list, err := cs.CoreV1().Services("default").List(context.Background(), metav1.ListOptions{LabelSelector: demotest.PartOf})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range list.Items {
		names = append(names, svc.Name)
	}
	slices.Sort(names)
	want := []string{ds[1].Name, ds[2].Name, ds[3].Name}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("Services %v, want %v", names, want)
	}
}
