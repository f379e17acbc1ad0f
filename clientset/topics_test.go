package main

import (
	"context"
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	appsv1apply "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv1apply "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"client-go-demo/internal/demotest"
)

// The -show topics, each run against the local control plane and checked
// there, from the test's own watches (record in main_test.go). Each runs
// as a user with exactly the RBAC rules the README lists for it (topicRBAC),
// which proves them enough; the test's watches act as the admin.

// -show selectors: every answer the server gave (the Pods printed for
// each selector) is what the library's own matching says of the Pods the
// server had; the bad selectors got 400; DeleteCollection took the web
// Pods and left the db Pod, which the deferred one took after.
func TestShowSelectors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	h := record(t, cs, ns)
	got := runTopic(t, cs, ns, "selectors")
	demotest.Match(t, got,
		`^Selectors 1: create three Pods`,
		`^  pods with app.kubernetes.io/instance=demo-clientset-\w{5},tier=web: 2 running$`,
		`^    \?labelSelector=app.kubernetes.io/instance=demo-clientset-\w{5},tier=web -> 2: web/dev web/prod$`,
		`^    \?labelSelector=app.kubernetes.io/instance=demo-clientset-\w{5},env notin \(dev,test\),tier in \(db,web\) -> 2: db/prod web/prod$`,
		`^    \?labelSelector=app.kubernetes.io/instance=demo-clientset-\w{5},canary -> 1: web/dev$`,
		`^    \?labelSelector=app.kubernetes.io/instance=demo-clientset-\w{5},!canary,env=prod,tier in \(db,web\) -> 2: db/prod web/prod$`,
		`^  NewRequirement\(tier In "web app"\): values\[0\]\[tier\]: Invalid value: "web app": a valid label must be`,
		`^  Parse\("tier in web"\): unable to parse requirement: found 'web' expected: '\('$`,
		`^  the server, \?labelSelector=tier in web: 400 unable to parse requirement: found 'web' expected: '\('$`,
		`fieldSelector=metadata.name=demo-clientset-\w{5} -> 1: web/prod$`,
		`fieldSelector=status.phase=Pending -> 1: db/prod$`,
		`fieldSelector=spec.nodeName=\S+,status.phase=Running -> 2: web/dev web/prod$`,
		`fieldSelector=spec.nodeName= -> 1: db/prod$`,
		`^  the server, \?fieldSelector=spec.priority=0: 400 field label not supported: spec.priority$`,
		`^  after Get: kind "", apiVersion ""; after List: list kind "", items' kind ""$`,
		`^  scheme.Scheme.ObjectKinds\(\*v1.Pod\) = \[/v1, Kind=Pod\]; after SetGroupVersionKind: kind "Pod", apiVersion "v1"$`,
		`^  DeleteCollection\(app.kubernetes.io/instance=demo-clientset-\w{5},tier=web, Background\)$`,
		`^  pods with app.kubernetes.io/instance=demo-clientset-\w{5},tier=web: none left$`,
		`^    \?labelSelector=app.kubernetes.io/instance=demo-clientset-\w{5} -> 1: db/prod\n$`,
	)
	demotest.WaitFor(t, time.Minute, "every Pod's DELETED event", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.pods) == 3 && len(h.podsDeleted) == 3
	})
	h.mu.Lock()
	defer h.mu.Unlock()

	// The last version of each Pod before it was deleted: what the
	// server's selectors saw (the web Pods Running on a node, the db Pod
	// Pending on none).
	last := map[string]*corev1.Pod{}
	var deletedOrder []string
	for _, p := range h.podVersions {
		if p.DeletionTimestamp == nil {
			last[p.Name] = p
		} else if !slices.Contains(deletedOrder, p.Name) {
			deletedOrder = append(deletedOrder, p.Name)
		}
	}
	lines := regexp.MustCompile(`\?(?:labelSelector=([^&\n]*))?(?:&fieldSelector=(\S*))? -> (\d+): ([^\n]*)`).FindAllStringSubmatch(got, -1)
	if len(lines) != 9 {
		t.Fatalf("%d selector lines, want 9", len(lines))
	}
	for _, m := range lines[:8] { // the last one lists what was left after the DeleteCollection
		ls, err := labels.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		fs, err := fields.ParseSelector(m[2])
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, p := range last {
			f := fields.Set{"metadata.name": p.Name, "status.phase": string(p.Status.Phase), "spec.nodeName": p.Spec.NodeName}
			if ls.Matches(labels.Set(p.Labels)) && fs.Matches(f) {
				want = append(want, p.Labels["tier"]+"/"+p.Labels["env"])
			}
		}
		slices.Sort(want)
		if m[3] != strconv.Itoa(len(want)) || m[4] != strings.Join(want, " ") {
			t.Errorf("%s: the server answered %s: %s, the Pods it had match %v", m[0], m[3], m[4], want)
		}
	}
	// DeleteCollection deleted the two web Pods first; the db Pod went
	// last, by the deferred cleanup.
	if len(deletedOrder) != 3 || last[deletedOrder[2]].Labels["tier"] != "db" {
		t.Errorf("deleted in the order %v, want the db Pod last", deletedOrder)
	}

	// The 400s, asked of the server directly.
	pods := cs.CoreV1().Pods(ns)
	if _, err := pods.List(context.Background(), metav1.ListOptions{LabelSelector: "tier in web"}); !apierrors.IsBadRequest(err) {
		t.Errorf("list with a bad label selector: err = %v, want 400", err)
	}
	if _, err := pods.List(context.Background(), metav1.ListOptions{FieldSelector: "spec.priority=0"}); !apierrors.IsBadRequest(err) {
		t.Errorf("list with an unsupported field: err = %v, want 400", err)
	}
	demotest.NothingLeft(t, cs, ns)
}

// -show patches: the server stored the containers each patch type says.
func TestShowPatches(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	h := record(t, cs, ns)
	out := runTopic(t, cs, ns, "patches")
	demotest.Match(t, out,
		`^  demo-clientset-\w{5}: containers nginx=nginx:1.17.1, sidecar=busybox:1.36$`,
		`^  -> containers nginx=nginx:1.19.10, sidecar=busybox:1.36\nPatches 3:`,
		`^  -> containers nginx=nginx:1.20.2, sidecar=busybox:1.36\nPatches 4:`,
		`^  -> containers nginx=nginx:1.20.2\nPatches 5:`,
		`^  Apply as sidecar-injector -> containers nginx=nginx:1.20.2, sidecar=busybox:1.36\n$`,
	)
	demotest.WaitFor(t, time.Minute, "the Deployment's DELETED event", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.deleted
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	var seen []string
	for _, d := range h.deployments {
		if c := containers(d); len(seen) == 0 || seen[len(seen)-1] != c {
			seen = append(seen, c)
		}
	}
	want := []string{
		"containers nginx=nginx:1.17.1, sidecar=busybox:1.36",
		"containers nginx=nginx:1.19.10, sidecar=busybox:1.36",
		"containers nginx=nginx:1.20.2, sidecar=busybox:1.36",
		"containers nginx=nginx:1.20.2",
		"containers nginx=nginx:1.20.2, sidecar=busybox:1.36",
	}
	if !slices.Equal(seen, want) {
		t.Errorf("the server stored, in order:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	// The applied sidecar is sidecar-injector's; nginx is not.
	final := h.deployments[len(h.deployments)-1]
	owned, err := appsv1apply.ExtractDeployment(final, "sidecar-injector")
	if err != nil {
		t.Fatal(err)
	}
	if container(owned, "sidecar") == nil || container(owned, "nginx") != nil {
		t.Errorf("sidecar-injector owns %+v, want the sidecar container only", owned.Spec)
	}
	demotest.NothingLeft(t, cs, ns)
}

// -show subresources: the server saw replicas 3, 2, 1 and never 5; our
// condition only after UpdateStatus; the ephemeral container on the Pod.
// And a plain Update cannot add an ephemeral container.
func TestShowSubresources(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	h := record(t, cs, ns)
	out := runTopic(t, cs, ns, "subresources")
	demotest.Match(t, out,
		`^  GetScale: spec.replicas 3, status.selector app.kubernetes.io/instance=demo-clientset-\w{5},run=nginx$`,
		`^  UpdateScale to 2: the Deployment's spec.replicas is 2$`,
		`^  ApplyScale to 1 as demo-autoscaler: spec.replicas 1$`,
		`^  Update with condition example.com/Checked in status: stored false$`,
		`^  UpdateStatus with condition example.com/Checked and spec.replicas 5: condition stored true, spec.replicas 1$`,
		`^  status writers in managedFields: demo-clientset \(Update\); kube-controller-manager \(Update\)$`,
		`^  pods with app.kubernetes.io/instance=demo-clientset-\w{5}: 1 running$`,
		`^  pod demo-clientset-\w{5}: ephemeral container debugger, image busybox:1.36, target nginx\n$`,
	)
	demotest.WaitFor(t, time.Minute, "the Deployment's and the Pods' DELETED events", h.allDeleted)
	h.mu.Lock()
	var replicas []int32
	checkedAt := -1
	for i, d := range h.deployments {
		if r := *d.Spec.Replicas; len(replicas) == 0 || replicas[len(replicas)-1] != r {
			replicas = append(replicas, r)
		}
		if checkedAt < 0 && hasCondition(d, "example.com/Checked") {
			checkedAt = i
		}
	}
	if !slices.Equal(replicas, []int32{3, 2, 1}) {
		t.Errorf("spec.replicas on the server over time: %v, want [3 2 1]", replicas)
	}
	if checkedAt < 0 || !slices.ContainsFunc(h.deployments[checkedAt].ManagedFields, func(m metav1.ManagedFieldsEntry) bool {
		return m.Manager == fieldManager && m.Subresource == "status"
	}) {
		t.Errorf("the condition came at version %d, not with a status write of %s", checkedAt, fieldManager)
	}
	if !slices.ContainsFunc(h.podVersions, func(p *corev1.Pod) bool {
		return len(p.Spec.EphemeralContainers) == 1 && p.Spec.EphemeralContainers[0].Name == "debugger" &&
			p.Spec.EphemeralContainers[0].TargetContainerName == "nginx"
	}) {
		t.Error("no Pod on the server ever had the ephemeral container debugger")
	}
	h.mu.Unlock()

	// What the README says of ApplyScale: the creator owns spec.replicas,
	// so another manager's apply of the scale conflicts without Force.
	ctx := context.Background()
	deployments := cs.AppsV1().Deployments(ns)
	d, err := deployments.Create(ctx, nginxDeployment(), metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		t.Fatal(err)
	}
	_, err = deployments.ApplyScale(ctx, d.Name, autoscalingv1apply.Scale().WithSpec(autoscalingv1apply.ScaleSpec().WithReplicas(1)),
		metav1.ApplyOptions{FieldManager: "demo-autoscaler"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "`+fieldManager+`"`) {
		t.Errorf("ApplyScale without Force: err = %v, want a Conflict with %s", err, fieldManager)
	}
	if err := deployments.Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// A plain Update that adds one is refused: only the subresource may.
	pods := cs.CoreV1().Pods(ns)
	p, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "eph-", Labels: map[string]string{partOfKey: partOfValue}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.17.1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kube-scheduler and kwok write the new Pod too: retry Conflicts.
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		p, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: "busybox:1.36", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
		}}}
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "pod updates may not change fields other than") {
		t.Errorf("Update adding an ephemeral container: err = %v, want 422 Invalid: pod updates may not change fields", err)
	}
	if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	demotest.NothingLeft(t, cs, ns)
}

func TestShowErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-clientset")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{name: "unknown topic", args: []string{"-show", "nope"}, want: `-show "nope": want selectors, patches or subresources`, usage: true},
		{name: "selectors forbidden", args: []string{"-kubeconfig", nobody, "-n", ns, "-show", "selectors"},
			want: `create pod in namespace "` + ns + `": forbidden by RBAC: pods is forbidden: User "nobody" cannot create resource "pods"`},
		{name: "patches forbidden", args: []string{"-kubeconfig", nobody, "-n", ns, "-show", "patches"},
			want: `create deployment in namespace "` + ns + `": forbidden by RBAC`},
		{name: "subresources missing namespace", args: []string{"-n", "no-such-namespace", "-show", "subresources"},
			want: `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard)
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
}

// Ctrl-C in the middle of each topic leaves nothing behind.
func TestShowInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	for _, tc := range []struct{ topic, marker string }{
		{"selectors", "Selectors 3:"},
		{"patches", "Patches 3:"},
		{"subresources", "Subresources 3:"},
		{"subresources", "running"}, // waiting for the Pod of Subresources 4
	} {
		t.Run(tc.topic+" at "+tc.marker, func(t *testing.T) {
			ns := demotest.Namespace(t, cs, "test-clientset")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &demotest.Output{Marker: tc.marker, Cancel: cancel}
			err := run(ctx, []string{"-n", ns, "-show", tc.topic}, out)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled\n%s", err, out.String())
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			demotest.NothingLeft(t, cs, ns)
		})
	}
}

// topicRBAC is the RBAC the README lists for each topic.
var topicRBAC = map[string][]rbacv1.PolicyRule{
	"selectors": {{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "deletecollection"}}},
	"patches":   {{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create", "patch", "delete"}}},
	"subresources": {
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create", "get", "update", "delete"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/status"}, Verbs: []string{"update"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"update"}},
	},
}

// runTopic runs -show topic in ns as a user who has only topicRBAC[topic]
// there.
func runTopic(t *testing.T, cs kubernetes.Interface, ns, topic string) string {
	ctx := context.Background()
	user := "show-" + topic
	rules := topicRBAC[topic]
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer learns of the binding from its informer: wait until
	// it allows the last rule.
	last := rules[len(rules)-1]
	resource, sub, _ := strings.Cut(last.Resources[0], "/")
	demotest.WaitFor(t, 30*time.Second, "the RoleBinding to take effect", func() bool {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Group: last.APIGroups[0], Resource: resource, Subresource: sub, Verb: last.Verbs[0],
			},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed
	})
	var out demotest.Output
	if err := run(ctx, []string{"-kubeconfig", demotest.ImpersonatingKubeconfig(t, user), "-n", ns, "-show", topic}, &out); err != nil {
		t.Fatalf("run -show %s as %s: %v\noutput:\n%s", topic, user, err, out.String())
	}
	return out.String()
}
