// Package demotest holds what the demos' tests share: a connection to the
// local control plane, a namespace per test, and checks that a demo left
// nothing behind. Only tests import it; demo code shares nothing.
//
// The tests run against the local control plane that `make test` starts
// (hack/localcluster), never against the cluster in the user's $KUBECONFIG:
// they create and delete namespaces. Without a running control plane they
// skip with a message, so `go test ./...` on a fresh clone says what to do;
// under `make test` (DEMO_TEST_REQUIRE_CLUSTER=1) that is a failure.
package demotest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// PartOf is the label every demo object carries.
const PartOf = "app.kubernetes.io/part-of=client-go-demo"

// Kubeconfig returns the local control plane's admin kubeconfig and points
// $KUBECONFIG at it for the rest of the test, so a demo's run() finds it as
// a user's shell would. $LOCALCLUSTER_KUBECONFIG overrides the default
// <repo>/.localcluster/admin.kubeconfig.
func Kubeconfig(t testing.TB) string {
	t.Helper()
	path, err := findControlPlane()
	if err != nil {
		msg := "no local control plane (" + err.Error() + "): run the tests with `make test`, which starts one"
		if os.Getenv("DEMO_TEST_REQUIRE_CLUSTER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Setenv("KUBECONFIG", path)
	return path
}

// K8sVersion is the Kubernetes release of the local control plane, as
// hack/localcluster recorded it beside the kubeconfig ("v1.36.3"), and its
// minor version (36). Tests use it to expect what that release does.
func K8sVersion(t testing.TB) (version string, minor int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(Kubeconfig(t)), "version"))
	if err != nil {
		t.Fatalf("the control plane's version: %v", err)
	}
	version = strings.TrimSpace(string(b))
	if _, err := fmt.Sscanf(version, "v1.%d.", &minor); err != nil {
		t.Fatalf("the control plane's version %q: %v", version, err)
	}
	return version, minor
}

// findControlPlane finds the kubeconfig and checks /readyz once per test
// binary; every helper below calls Kubeconfig, many times per test.
var findControlPlane = sync.OnceValues(func() (string, error) {
	path := os.Getenv("LOCALCLUSTER_KUBECONFIG")
	if path == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, ".localcluster", "admin.kubeconfig")
	}
	config, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return "", err
	}
	config.Timeout = 5 * time.Second // one probe request, not a watch
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		return "", err
	}
	_, err = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
	return path, err
})

// Config returns a rest.Config for the local control plane.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", Kubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// Client returns a clientset for the local control plane.
func Client(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	return kubernetes.NewForConfigOrDie(Config(t))
}

// Namespace creates a namespace named prefix-xxxxx for one test, waits
// until kube-controller-manager has published kube-root-ca.crt into it (so
// object counts are stable), and deletes it when the test ends.
func Namespace(t testing.TB, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := cs.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("kube-root-ca.crt never appeared in %s", ns.Name)
	}
	return ns.Name
}

// NothingLeft waits until no labelled Pod, Deployment, ReplicaSet,
// ConfigMap or Service is left in ns, and fails the test otherwise.
func NothingLeft(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	// seen is the last complete listing, so a failure names the objects
	// even when the last poll itself failed (a deadline, say).
	var seen, listErrs []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var left []string
		listErrs = nil
		opts := metav1.ListOptions{LabelSelector: PartOf}
		add := func(kind string, list runtime.Object, err error) {
			if err != nil {
				listErrs = append(listErrs, kind+": "+err.Error())
				return
			}
			_ = meta.EachListItem(list, func(o runtime.Object) error {
				if m, err := meta.Accessor(o); err == nil {
					left = append(left, kind+"/"+m.GetName())
				}
				return nil
			})
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, opts)
		add("pod", pods, err)
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, opts)
		add("deployment", deps, err)
		rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, opts)
		add("replicaset", rss, err)
		cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
		add("configmap", cms, err)
		svcs, err := cs.CoreV1().Services(ns).List(ctx, opts)
		add("service", svcs, err)
		if len(listErrs) > 0 {
			return false, nil
		}
		seen = left
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("left behind in %s: %v (last list errors: %v)", ns, seen, listErrs)
	}
}

// NamespaceStillThere fails if ns has gone, as a demo must never delete
// what it did not create.
func NamespaceStillThere(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s vanished", ns)
	}
}

// ImpersonatingKubeconfig writes a copy of the admin kubeconfig that acts
// as user (by impersonation), who has no RBAC grants unless a test gives
// them: every demo must then fail with one Forbidden line.
func ImpersonatingKubeconfig(t testing.TB, user string, groups ...string) string {
	t.Helper()
	return ModifiedKubeconfig(t, func(c *clientcmdapi.Config) {
		for _, a := range c.AuthInfos {
			a.Impersonate, a.ImpersonateGroups = user, groups
		}
	})
}

// UnreachableKubeconfig writes a kubeconfig whose server refuses
// connections.
func UnreachableKubeconfig(t testing.TB) string {
	t.Helper()
	return ModifiedKubeconfig(t, func(c *clientcmdapi.Config) {
		for _, cl := range c.Clusters {
			cl.Server = "https://127.0.0.1:1"
		}
	})
}

// ModifiedKubeconfig writes a copy of the admin kubeconfig, changed by
// modify, into the test's temporary directory (mode 0600) and returns its
// path.
func ModifiedKubeconfig(t testing.TB, modify func(*clientcmdapi.Config)) string {
	t.Helper()
	raw, err := clientcmd.LoadFromFile(Kubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	modify(raw)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*raw, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Output is a goroutine-safe buffer for a demo's output. With Marker and
// Cancel set, it cancels the run once the output contains Marker, like a
// user pressing Ctrl-C at that point.
type Output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	Marker string
	Cancel context.CancelFunc
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if o.Cancel != nil && o.Marker != "" && strings.Contains(o.buf.String(), o.Marker) {
		o.Cancel()
	}
	return len(p), nil
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// WaitFor polls cond every 50 ms until it is true or timeout passes, and
// fails the test with what on timeout. Tests wait for states, never sleep.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Match fails the test for each regular expression (multi-line mode: ^ and
// $ match at every line) that got does not match, then logs got once.
func Match(t testing.TB, got string, res ...string) {
	t.Helper()
	failed := false
	for _, re := range res {
		if !regexp.MustCompile(`(?m)` + re).MatchString(got) {
			t.Errorf("output lacks %s", re)
			failed = true
		}
	}
	if failed {
		t.Logf("the output was:\n%s", got)
	}
}

// Cluster is a control plane of one test's own, for the tests that restart
// kube-apiserver or compact etcd: doing that to the shared one would break
// the other packages' tests.
type Cluster struct {
	bin, dir string
	port     int
}

// PrivateCluster starts a control plane from the same hack/localcluster
// binary ($LOCALCLUSTER, or <repo>/bin/localcluster) with kube-apiserver on
// port, etcd on port+1 and port+2, and takes it down when the test ends.
// Without the binary it skips, or fails under make test, as Kubeconfig does.
// Each package uses ports of its own, as make test runs some packages side
// by side, and below 32768: Linux gives outgoing connections local ports
// from 32768 to 60999 (net.ipv4.ip_local_port_range), and a port one of
// them holds cannot be listened on. (This failed once at 39444.)
func PrivateCluster(t testing.TB, port int) *Cluster {
	t.Helper()
	bin := os.Getenv("LOCALCLUSTER")
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(root, "bin", "localcluster")
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no hack/localcluster binary (%v): run the tests with `make test`, or set $LOCALCLUSTER", err)
		if os.Getenv("DEMO_TEST_REQUIRE_CLUSTER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c := &Cluster{bin: bin, dir: t.TempDir(), port: port}
	c.Run(t, "up")
	t.Cleanup(func() { c.Run(t, "down") })
	return c
}

// Run runs a localcluster command (up, down, restart-apiserver, compact,
// status) on the cluster, fails the test if it fails, and returns what it
// printed.
func (c *Cluster) Run(t testing.TB, cmd string) string {
	t.Helper()
	b, err := exec.Command(c.bin, "-dir", c.dir, "-apiserver-port", strconv.Itoa(c.port),
		"-etcd-port", strconv.Itoa(c.port+1), "-etcd-peer-port", strconv.Itoa(c.port+2), cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("localcluster %s: %v\n%s", cmd, err, b)
	}
	return strings.TrimSpace(string(b))
}

// Dir is the cluster's state directory (certificates, logs, pid files).
func (c *Cluster) Dir() string { return c.dir }

// Kubeconfig is the cluster's admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.dir, "admin.kubeconfig") }

// Config is the cluster's admin rest.Config, as Config is the shared one's.
func (c *Cluster) Config(t testing.TB) *rest.Config {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// Client is a clientset for the cluster, as Client is for the shared one.
func (c *Cluster) Client(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	return kubernetes.NewForConfigOrDie(c.Config(t))
}

// moduleRoot is the directory of this repository's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("find the module root: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}
