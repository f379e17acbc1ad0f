package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// These tests run the demo against a real API server: the one in $KUBECONFIG,
// which `make test` points at the local control plane from hack/localcluster.
func clients(t *testing.T) (*kubernetes.Clientset, *dynamic.DynamicClient) {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run the tests with `make test`, which starts a local control plane")
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(config), dynamic.NewForConfigOrDie(config)
}

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-dynamicclient-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

// assertNothingLeft checks that the CRD and the Deployment are gone.
func assertNothingLeft(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, ns string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(crdGVR).Get(ctx, "crontabs.stable.example.com", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, nil
		}
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(deps.Items) == 0, err
	})
	if err != nil {
		t.Fatalf("the CRD or a deployment was left behind in %s: %v", ns, err)
	}
}

func TestDynamicclientDemo(t *testing.T) {
	cs, dyn := clients(t)
	ns := namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Watch, on the server, the Deployments in ns and the CRD.
	dw, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cw, err := dyn.Resource(crdGVR).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=crontabs.stable.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var deployments []*appsv1.Deployment
	var crdEvents []watch.EventType
	go func() {
		for ev := range dw.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				mu.Lock()
				deployments = append(deployments, d)
				mu.Unlock()
			}
		}
	}()
	go func() {
		for ev := range cw.ResultChan() {
			if _, ok := ev.Object.(*unstructured.Unstructured); ok {
				mu.Lock()
				if len(crdEvents) == 0 || crdEvents[len(crdEvents)-1] != ev.Type {
					crdEvents = append(crdEvents, ev.Type)
				}
				mu.Unlock()
			}
		}
	}()

	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", ns}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, re := range []string{
		`Step 1: build the client with dynamic.NewForConfig`,
		`Step 2: decode the nginx manifest`,
		`apiVersion apps/v1, kind Deployment, metadata.name nginx, spec.replicas 3, status present: false`,
		`RESTMapper: kind Deployment in apps/v1 -> resource "deployments", scope namespace`,
		`Step 3: create, get and list`,
		`created demo-dynamicclient-\w+, resourceVersion \d+`,
		`listed 1 deployment\(s\) with app.kubernetes.io/part-of=client-go-demo, kind DeploymentList`,
		`SetNestedField spec.replicas=1`,
		`typed: appsv1.Deployment demo-dynamicclient-\w+, replicas 1, image nginx:1.17.1`,
		`Step 4: server-side apply`,
		`applied image nginx:1.19.10 as demo-dynamicclient with Force`,
		`managedFields: demo-dynamicclient \(Apply\)`,
		`Step 5: create a CustomResourceDefinition`,
		`CRD crontabs.stable.example.com is Established: /apis/stable.example.com/v1/namespaces/` + ns + `/crontabs is served`,
		`crontab demo-dynamicclient-\w+: cronSpec "\*/5 \* \* \* \*"`,
		`crontab demo-dynamicclient-\w+: cronSpec "0 3 \* \* \*"`,
		`updated demo-dynamicclient-\w+: spec.replicas=5`,
		`an invalid crontab is rejected: CronTab.stable.example.com "demo-dynamicclient-\w+" is invalid: spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match`,
		`Step 6: clean up`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output lacks %s", re)
		}
	}
	assertNothingLeft(t, cs, dyn, ns)

	// The server saw the manifest's Deployment, scaled to 1, then applied.
	time.Sleep(200 * time.Millisecond) // let the watches deliver the last events
	mu.Lock()
	defer mu.Unlock()
	var sawFromManifest, sawScaled, sawApplied bool
	for _, d := range deployments {
		c := d.Spec.Template.Spec.Containers[0]
		sawFromManifest = sawFromManifest || (*d.Spec.Replicas == 3 && c.Image == "nginx:1.17.1" && c.Ports[0].Name == "nginx-port" && d.Spec.Selector.MatchLabels["run"] == "nginx")
		sawScaled = sawScaled || *d.Spec.Replicas == 1
		for _, m := range d.ManagedFields {
			sawApplied = sawApplied || (c.Image == "nginx:1.19.10" && m.Manager == fieldManager && m.Operation == metav1.ManagedFieldsOperationApply)
		}
	}
	if !sawFromManifest || !sawScaled || !sawApplied {
		t.Errorf("server saw: manifest=%v scaled=%v applied=%v", sawFromManifest, sawScaled, sawApplied)
	}
	if want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}; !containsSeq(crdEvents, want) {
		t.Errorf("CRD events %v, want %v in order", crdEvents, want)
	}
}

func containsSeq(got, want []watch.EventType) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestDynamicclientErrors(t *testing.T) {
	cs, dyn := clients(t)
	ns := namespace(t, cs)
	raw, err := clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range raw.AuthInfos {
		a.Impersonate = "nobody"
	}
	nobody := filepath.Join(t.TempDir(), "nobody.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, nobody); err != nil {
		t.Fatal(err)
	}
	raw, _ = clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
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
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"missing namespace", []string{"-n", "no-such-namespace"}, `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		// Discovery is allowed to everyone; creating is not.
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns}, `forbidden by RBAC: deployments.apps is forbidden: User "nobody" cannot create resource "deployments" in API group "apps" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable}, "dial tcp 127.0.0.1:1: connect: connection refused", false},
		{"never established", []string{"-n", ns, "-crd-timeout", "1ns"}, "CRD crontabs.stable.example.com did not become Established within 1ns", false},
		{"bad flag", []string{"-crd-timeout"}, "flag needs an argument: -crd-timeout (see -h)", true},
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
	assertNothingLeft(t, cs, dyn, ns)
}

// Ctrl-C after the CRD exists: the deferred deletes remove the custom
// objects, the CRD and the Deployment.
func TestDynamicclientInterruptedCleansUp(t *testing.T) {
	cs, dyn := clients(t)
	ns := namespace(t, cs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{marker: "is Established", cancel: cancel}
	err := run(ctx, []string{"-n", ns}, out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out.buf.String())
	}
	assertNothingLeft(t, cs, dyn, ns)
}

type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}
