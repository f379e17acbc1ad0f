package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/klog/v2"

	"client-go-demo/internal/demotest"
)

// recorder keeps the events of a watch, and whether its channel closed:
// the test's own account, independent of the demo.
type recorder struct {
	mu     sync.Mutex
	events []watch.Event
	closed bool
}

func record(w watch.Interface) *recorder {
	r := &recorder{}
	go func() {
		for ev := range w.ResultChan() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
	}()
	return r
}

// watchServer records the server's events for the demo's objects in ns.
func watchServer(t *testing.T, cs kubernetes.Interface, ns string) (configMaps, pods *recorder) {
	t.Helper()
	opts := metav1.ListOptions{LabelSelector: demotest.PartOf}
	cw, err := cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cw.Stop)
	pw, err := cs.CoreV1().Pods(ns).Watch(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pw.Stop)
	return record(cw), record(pw)
}

func (r *recorder) list() []watch.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]watch.Event(nil), r.events...)
}

func (r *recorder) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *recorder) count(typ watch.EventType) int {
	n := 0
	for _, ev := range r.list() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// has reports whether an event of typ for name arrived.
func (r *recorder) has(typ watch.EventType, name string) bool {
	for _, ev := range r.list() {
		if m, err := meta.Accessor(ev.Object); err == nil && ev.Type == typ && m.GetName() == name {
			return true
		}
	}
	return false
}

// describe is one line per event, for the test's log.
func describe(ev watch.Event) string {
	if ev.Type == watch.Error {
		err := apierrors.FromObject(ev.Object)
		code := int32(0)
		if s, ok := ev.Object.(*metav1.Status); ok {
			code = s.Code
		}
		return fmt.Sprintf("ERROR event: %v (a %T, code %d, apierrors.IsResourceExpired %v)", err, ev.Object, code, apierrors.IsResourceExpired(err))
	}
	m, _ := meta.Accessor(ev.Object)
	return fmt.Sprintf("%s %s resourceVersion %s", ev.Type, m.GetName(), m.GetResourceVersion())
}

func TestWatch(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-watch")
	configMaps, pods := watchServer(t, cs, ns)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns, "-timeout", "2s"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	demotest.Match(t, got,
		`^Step 1: a raw Watch on the labelled ConfigMaps in namespace `+ns+` ends`,
		`^WATCH resourceVersion="" labelSelector=app.kubernetes.io/part-of=client-go-demo,app.kubernetes.io/name=watch timeoutSeconds=2$`,
		`^  ResultChan closed [\d.]+m?s after the WATCH: no ERROR event, no error`,
		`^  the change made between the two watches arrived$`,
		`^WATCH resourceVersion="1" timeoutSeconds=2 `,
		`^  ERROR    a \*v1.Status, code 410, reason Expired: apierrors.IsResourceExpired true$`,
		`^LIST resourceVersion="": 1 labelled ConfigMaps \[demo-watch-\w{5}\] at resourceVersion \d+$`,
		`^  NewRetryWatcherWithContext\(ctx, "", lw\): initial RV "" is not supported`,
		`^  NewRetryWatcherWithContext\(ctx, "0", lw\): initial RV "0" is not supported`,
		`^  the server ended the stream; the RetryWatcher watched again from the last resourceVersion it saw \(an event's or a BOOKMARK's\): WATCH #2 resourceVersion="\d+"\n  its ResultChan, which the reader holds, stayed open$`,
		`^  RetryWatcher from resourceVersion "1", as after a long outage:\n  ERROR    a \*v1.Status, code 410, reason Expired: apierrors.IsResourceExpired true\n  then its ResultChan closed`,
		`^  demo-watch-\w{5} is Running$`,
	)

	// On the server: two ConfigMaps, each created, updated once and
	// deleted; one Pod, created, Running, deleted.
	demotest.WaitFor(t, 30*time.Second, "the server's events of the demo's writes", func() bool {
		return configMaps.count(watch.Deleted) >= 2 && pods.count(watch.Deleted) >= 1
	})
	for typ, want := range map[watch.EventType]int{watch.Added: 2, watch.Modified: 2, watch.Deleted: 2} {
		if n := configMaps.count(typ); n != want {
			t.Errorf("the server sent %d %s events for ConfigMaps, want %d", n, typ, want)
		}
	}
	// Every ConfigMap event the server sent, the demo printed, at the same
	// resourceVersion: by its raw watch, the hand resume or the
	// RetryWatcher.
	var names []string
	for _, ev := range configMaps.list() {
		cm := ev.Object.(*corev1.ConfigMap)
		demotest.Match(t, got, fmt.Sprintf(`^  %-8s %s resourceVersion %s$`, ev.Type, cm.Name, cm.ResourceVersion))
		if ev.Type == watch.Added {
			names = append(names, cm.Name)
		}
	}
	// The hand resume started at the raw watch's last event, the first
	// ConfigMap's deletion; the RetryWatcher at the LIST's resourceVersion.
	evs := configMaps.list()
	if len(evs) == 6 {
		first := evs[2].Object.(*corev1.ConfigMap)
		demotest.Match(t, got, `^WATCH resourceVersion="`+first.ResourceVersion+`" timeoutSeconds=2 \(by hand`)
	}
	// The RetryWatcher's second WATCH resumes: from the first one's
	// resourceVersion or later (later once it saw the update, or a
	// BOOKMARK), never from "" or "0".
	if m := regexp.MustCompile(`WATCH #1 resourceVersion="(\d+)"(?s:.*)WATCH #2 resourceVersion="(\d+)"`).FindStringSubmatch(got); m == nil {
		t.Error("no WATCH #1 and WATCH #2 lines")
	} else if c, err := resourceversion.CompareResourceVersion(m[2], m[1]); err != nil || c < 0 {
		t.Errorf("WATCH #2 resourceVersion %s is before WATCH #1's, %s (%v)", m[2], m[1], err)
	}
	if m := regexp.MustCompile(`at resourceVersion (\d+)\n`).FindStringSubmatch(got); m == nil || !strings.Contains(got, `WATCH #1 resourceVersion="`+m[1]+`"`) {
		t.Errorf("the RetryWatcher did not start at the LIST's resourceVersion %v", m)
	}
	// The Pod got to Running on the server before the demo deleted it.
	running := false
	for _, ev := range pods.list() {
		if p := ev.Object.(*corev1.Pod); ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning {
			running = true
			demotest.Match(t, got, `^  `+p.Name+` is Running$`)
		}
	}
	if !running || pods.count(watch.Added) != 1 {
		t.Errorf("the server's Pod events show %d Pods created, Running: %v", pods.count(watch.Added), running)
	}
	if len(names) != 2 {
		t.Errorf("ConfigMaps created: %v, want 2", names)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}

func TestWatchErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-watch")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `watch configmaps: forbidden by RBAC: configmaps is forbidden: User "nobody" cannot watch resource "configmaps" in API group "" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable}, `watch configmaps: Get "https://127.0.0.1:1/api/v1/namespaces/default/configmaps?`, false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create configmap: namespaces "no-such-namespace" not found`, false},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"zero timeout", []string{"-timeout", "0s"}, `-timeout 0s: want whole seconds, at least 1s`, true},
		{"fractional timeout", []string{"-timeout", "1500ms"}, `-timeout 1.5s: want whole seconds, at least 1s`, true},
		{"bad wait", []string{"-wait", "-1s"}, `-wait -1s: want a positive duration`, true},
		{"unknown flag", []string{"-resume-from", "5"}, `flag provided but not defined: -resume-from`, true},
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

// A user with some of the verbs the demo needs: the first call refused
// ends the run with one line, and what was created is deleted. With
// exactly the verbs the README lists, the run succeeds.
func TestWatchRBAC(t *testing.T) {
	cs := demotest.Client(t)
	configMapVerbs := []string{"create", "update", "delete", "deletecollection", "list", "watch"}
	podVerbs := []string{"create", "delete", "deletecollection", "watch"}
	for _, tc := range []struct {
		name             string
		configMaps, pods []string
		want             string // "" for success
	}{
		{"no list of configmaps", []string{"create", "update", "delete", "deletecollection", "watch"}, nil, `list configmaps: forbidden by RBAC: configmaps is forbidden: User "watch-rbac" cannot list resource "configmaps" in API group "" in the namespace "test-watch-\w{5}"$`},
		{"no watch of pods", configMapVerbs, []string{"create", "delete", "deletecollection"}, `watch pods: forbidden by RBAC: pods "demo-watch-\w{5}" is forbidden: User "watch-rbac" cannot watch resource "pods"`},
		{"least privilege", configMapVerbs, podVerbs, ""},
	} {
		// Set up here: kubeconfigs set $KUBECONFIG, which parallel tests may not.
		ns := demotest.Namespace(t, cs, "test-watch")
		kubeconfig := demotest.ImpersonatingKubeconfig(t, "watch-rbac")
		grant(t, cs, ns, "watch-rbac", tc.configMaps, tc.pods)
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			configMaps, pods := watchServer(t, cs, ns)
			var out bytes.Buffer
			err := run(context.Background(), []string{"-kubeconfig", kubeconfig, "-n", ns, "-timeout", "2s"}, &out)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("run: %v\n%s", err, out.String())
			case tc.want != "" && (err == nil || !regexp.MustCompile(`^`+tc.want).MatchString(err.Error())):
				t.Fatalf("err = %v, want it to match %s\n%s", err, tc.want, out.String())
			}
			demotest.WaitFor(t, 30*time.Second, "a DELETED event for everything created", func() bool {
				created := configMaps.count(watch.Added) + pods.count(watch.Added)
				return created > 0 && configMaps.count(watch.Deleted)+pods.count(watch.Deleted) == created
			})
			demotest.NothingLeft(t, cs, ns)
		})
	}
}

// grant lets user do the given verbs on ConfigMaps and Pods in ns, and
// waits until the API server's authorizer says so.
func grant(t *testing.T, cs kubernetes.Interface, ns, user string, configMaps, pods []string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: configMaps},
	}}
	if len(pods) > 0 {
		role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: pods})
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	demotest.WaitFor(t, 30*time.Second, "the grant to take effect", func() bool {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: configMaps[0], Resource: "configmaps"},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed
	})
}

// Ctrl-C in the middle of an event loop: what the demo created is deleted
// anyway.
func TestWatchInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	for _, tc := range []struct{ name, marker string }{
		{"raw watch", "  MODIFIED demo-watch-"},       // Step 1, a ConfigMap exists
		{"retry watcher", "WATCH #1 resourceVersion"}, // Step 3, the second ConfigMap exists
		{"until with sync", "  UntilWithSync: "},      // Step 4, the Pod exists
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := demotest.Namespace(t, cs, "test-watch")
			configMaps, pods := watchServer(t, cs, ns)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &demotest.Output{Marker: tc.marker, Cancel: cancel}
			err := run(ctx, []string{"-n", ns, "-timeout", "2s"}, out)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled\n%s", err, out.String())
			}
			// It did create something before the cancel, and deleted it.
			demotest.WaitFor(t, 30*time.Second, "a DELETED event for everything created", func() bool {
				created := configMaps.count(watch.Added) + pods.count(watch.Added)
				return created > 0 && configMaps.count(watch.Deleted)+pods.count(watch.Deleted) == created
			})
			demotest.NothingLeft(t, cs, ns)
		})
	}
}

// TestWatchFaults runs a raw watch, a hand resume and a RetryWatcher
// against a control plane of the test's own (restarting the shared API
// server would break the other packages' tests), restarts kube-apiserver
// under them and compacts etcd, and checks what each does. The calls are
// the ones the demo teaches; the log is quoted in the README.
func TestWatchFaults(t *testing.T) {
	lc := demotest.PrivateCluster(t, 23443)
	localcluster := func(cmd string) {
		t.Helper()
		t.Logf("-> localcluster %s: %s", cmd, lc.Run(t, cmd))
	}
	cs := lc.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// What the RetryWatcher logs (klog.FromContext) goes to the test's log.
	ctx = klog.NewContext(ctx, funcr.New(func(prefix, args string) { t.Logf("RetryWatcher log: %s", args) }, funcr.Options{}))
	configMaps := cs.CoreV1().ConfigMaps("default")
	labelled := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": demoName}}}
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		opts.LabelSelector = selector
		return configMaps.Watch(ctx, opts)
	}}

	cm, err := configMaps.Create(ctx, labelled("before-restart"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The raw watch and the RetryWatcher start from the same resourceVersion.
	w, err := configMaps.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: cm.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	raw := record(w)
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, cm.ResourceVersion, lw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rw.Stop(); <-rw.Done() }()
	retry := record(rw)
	start := cm.ResourceVersion
	cm.Data = map[string]string{"step": "updated"}
	if cm, err = configMaps.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	demotest.WaitFor(t, 30*time.Second, "the update through both watches", func() bool {
		return raw.has(watch.Modified, cm.Name) && retry.has(watch.Modified, cm.Name)
	})
	t.Logf("raw watch from resourceVersion %s: %s", start, w0(raw))
	t.Logf("RetryWatcher from resourceVersion %s: %s", start, w0(retry))
	lastSeen := cm.ResourceVersion
	// A write neither watch sees (no label): etcd's revision moves past
	// the last resourceVersion both saw, as it does on any live cluster.
	if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	localcluster("restart-apiserver")
	// The raw watch: its channel closed, with no ERROR event.
	demotest.WaitFor(t, 30*time.Second, "the raw watch's channel to close", raw.isClosed)
	for _, ev := range raw.list() {
		if ev.Type == watch.Error {
			t.Errorf("the raw watch got %s", describe(ev))
		}
	}
	t.Logf("raw watch: ResultChan closed after %d events, none of them an ERROR", len(raw.list()))
	localcluster("compact")

	// The hand resume from the last resourceVersion seen: 410 Gone, as an
	// ERROR event carrying a *metav1.Status.
	resumed, err := configMaps.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: lastSeen})
	if err != nil {
		t.Fatalf("resume from %s: %v", lastSeen, err)
	}
	defer resumed.Stop()
	hand := record(resumed)
	demotest.WaitFor(t, 30*time.Second, "the hand resume's first event", func() bool { return len(hand.list()) > 0 })
	first := hand.list()[0]
	status, ok := first.Object.(*metav1.Status)
	if first.Type != watch.Error || !ok || status.Code != 410 || !apierrors.IsResourceExpired(apierrors.FromObject(first.Object)) {
		t.Errorf("hand resume from resourceVersion %s: got %s, want an ERROR event with a 410 Status", lastSeen, describe(first))
	}
	t.Logf("hand resume from resourceVersion %s: %s", lastSeen, describe(first))

	// The RetryWatcher watched again on its own once the API server was
	// back, from the same resourceVersion: it passes the 410 on, closes
	// its channel and stops. The one ERROR event is its last.
	demotest.WaitFor(t, 60*time.Second, "the RetryWatcher to stop", retry.isClosed)
	select {
	case <-rw.Done():
	default:
		t.Error("the RetryWatcher's channel closed, but Done() did not")
	}
	evs := retry.list()
	last := evs[len(evs)-1]
	if s, ok := last.Object.(*metav1.Status); last.Type != watch.Error || !ok || s.Code != 410 {
		t.Errorf("the RetryWatcher's last event is %s, want an ERROR event with a 410 Status", describe(last))
	}
	var lines []string
	for _, ev := range evs {
		lines = append(lines, describe(ev))
		if ev.Type == watch.Error && ev != last {
			t.Errorf("the RetryWatcher passed on %s before its last event", describe(ev))
		}
	}
	t.Logf("RetryWatcher: %s; then ResultChan closed and Done()", strings.Join(lines, "; "))

	// Only a fresh LIST helps: from its resourceVersion a new
	// RetryWatcher sees what happens next.
	list, err := configMaps.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	again, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, lw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { again.Stop(); <-again.Done() }()
	fresh := record(again)
	after, err := configMaps.Create(ctx, labelled("after-restart"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	demotest.WaitFor(t, 30*time.Second, "after-restart through the new RetryWatcher", func() bool { return fresh.has(watch.Added, after.Name) })
	t.Logf("LIST: %d labelled ConfigMaps at resourceVersion %s; a new RetryWatcher from there: %s", len(list.Items), list.ResourceVersion, describe(fresh.list()[0]))
	if retry.has(watch.Added, after.Name) {
		t.Error("the stopped RetryWatcher delivered an event")
	}
}

// w0 is the first event of a recorder, described.
func w0(r *recorder) string {
	if evs := r.list(); len(evs) > 0 {
		return describe(evs[0])
	}
	return "no event"
}

// giveUpOn ends Step 4's wait only on errors retrying cannot cure; what an
// API server restart looks like to a client (a refused or reset
// connection, EOF, 503) is left to the Reflector's retries.
func TestGiveUpOn(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		err    error
		giveUp bool
	}{
		{nil, false},
		{&url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, false},
		{&url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: syscall.ECONNRESET}, false},
		{io.EOF, false},
		{apierrors.NewServiceUnavailable("restarting"), false},
		{apierrors.NewTooManyRequests("slow down", 1), false},
		{apierrors.NewInternalError(errors.New("boom")), false},
		{apierrors.NewResourceExpired("too old"), false},
		{apierrors.NewUnauthorized("who are you"), true},
		{apierrors.NewForbidden(gr, "p", errors.New("no")), true},
		{apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "gone"), true},
		{apierrors.NewBadRequest("bad selector"), true},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "p", nil), true},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		giveUpOn(cancel, "watch pods", tc.err)
		if gaveUp := context.Cause(ctx) != nil; gaveUp != tc.giveUp {
			t.Errorf("giveUpOn(%v): gave up %v, want %v", tc.err, gaveUp, tc.giveUp)
		}
		cancel(nil)
	}
}
