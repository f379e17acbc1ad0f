package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
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
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
)

// up starts its own executable once per component; under go test that is
// the test binary, so it must run the component too.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "component" {
		os.Exit(components[os.Args[2]](os.Args[3:]))
	}
	os.Exit(m.Run())
}

// sharedCluster is the control plane "make test" started (LOCALCLUSTER_DIR),
// or one this test starts on other ports.
func sharedCluster(t *testing.T) *cluster {
	t.Helper()
	if dir := os.Getenv("LOCALCLUSTER_DIR"); dir != "" {
		return &cluster{dir: dir, apiserverPort: 16443, etcdPort: 12379, peerPort: 12380, out: &bytes.Buffer{}}
	}
	return startCluster(t, t.TempDir(), 26443)
}

func startCluster(t *testing.T, dir string, port int) *cluster {
	t.Helper()
	var out bytes.Buffer
	c := &cluster{dir: dir, apiserverPort: port, etcdPort: port + 1, peerPort: port + 2, out: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

func clientFor(t *testing.T, c *cluster) *kubernetes.Clientset {
	t.Helper()
	cs, err := c.client()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestVersionAndDiscovery(t *testing.T) {
	c := sharedCluster(t)
	cs := clientFor(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := serverVersion(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	// make test links the release's version into this test binary too
	// (-ldflags), from the go.mod it builds with: go.mod v1.37.2,
	// go.1.36.mod v1.36.3, go.1.35.mod v1.35.4.
	release := version.Get()
	if !regexp.MustCompile(`^v1\.3[5-7]\.[0-9]+$`).MatchString(release.GitVersion) {
		t.Fatalf("this test binary is version %q: build it with make's -ldflags", release.GitVersion)
	}
	if v.GitVersion != release.GitVersion || v.Major != "1" || v.Minor != release.Minor {
		t.Errorf("/version = %s (major %q minor %q), want %s (minor %s)", v.GitVersion, v.Major, v.Minor, release.GitVersion, release.Minor)
	}
	if b, err := os.ReadFile(c.path("version")); err != nil || string(b) != release.GitVersion {
		t.Errorf("state directory's version file: %q, %v; want %s", b, err, release.GitVersion)
	}
	// GET /api and /apis, as ServerGroups does; ServerGroupsWithContext is
	// new in client-go v0.37 and this test builds with older ones too.
	var core metav1.APIVersions
	var groups metav1.APIGroupList
	for path, into := range map[string]any{"/api": &core, "/apis": &groups} {
		body, err := cs.Discovery().RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatal(err)
		}
	}
	groups.Groups = append(groups.Groups, metav1.APIGroup{Versions: []metav1.GroupVersionForDiscovery{{GroupVersion: strings.Join(core.Versions, ",")}}})
	want := map[string]bool{"apps/v1": false, "apiextensions.k8s.io/v1": false, "v1": false}
	for _, g := range groups.Groups {
		for _, gv := range g.Versions {
			if _, ok := want[gv.GroupVersion]; ok {
				want[gv.GroupVersion] = true
			}
		}
	}
	for gv, found := range want {
		if !found {
			t.Errorf("discovery does not list %s", gv)
		}
	}
}

// A Deployment needs kube-controller-manager (ReplicaSet, Pods), the
// scheduler (nodeName) and kwok (Running, an IP) to get to three Running Pods.
func TestDeploymentPodsRunOnFakeNode(t *testing.T) {
	cs := clientFor(t, sharedCluster(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "localcluster-test-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.17.1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns.Name).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := func(ctx context.Context) (int, error) {
		pods, err := cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == nodeName && p.Status.PodIP != "" {
				n++
			}
		}
		return n, nil
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := running(ctx)
		return n == 3, err
	})
	if err != nil {
		n, _ := running(ctx)
		t.Fatalf("want 3 Running pods on %s, have %d: %v", nodeName, n, err)
	}
	fg := metav1.DeletePropagationForeground
	if err := cs.AppsV1().Deployments(ns.Name).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, err
	})
	if err != nil {
		t.Fatalf("pods not garbage collected: %v", err)
	}
	// Namespace deletion needs the namespace controller to empty it and
	// remove the kubernetes finalizer.
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Fatalf("namespace %s was not removed: %v", ns.Name, err)
	}
}

func TestSecurity(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()

	// The kubeconfig verifies the serving certificate against our CA.
	raw, err := clientcmd.LoadFromFile(c.kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, cl := range raw.Clusters {
		if cl.InsecureSkipTLSVerify || len(cl.CertificateAuthorityData) == 0 {
			t.Errorf("cluster %s: insecure=%v, CA data %d bytes", name, cl.InsecureSkipTLSVerify, len(cl.CertificateAuthorityData))
		}
	}
	for _, f := range []string{c.kubeconfig(), c.path("pki", "ca.key"), c.path("pki", "apiserver.key"), c.path("pki", "sa.key")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	// A client that does not trust our CA fails the TLS handshake.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(c.serverURL() + "/version"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("request with the system roots: err = %v, want a certificate error", err)
	}

	// No credentials: 401.
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	anon := rest.AnonymousClientConfig(cfg)
	anonCS := kubernetes.NewForConfigOrDie(anon)
	_, err = anonCS.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Errorf("anonymous list: err = %v, want 401 Unauthorized", err)
	}

	// A valid certificate for a user with no RBAC grants: 403.
	caKey, caCert, err := loadCA(c)
	if err != nil {
		t.Fatal(err)
	}
	tmp := &cluster{dir: t.TempDir(), apiserverPort: c.apiserverPort}
	if err := writeUserKubeconfig(tmp, "nobody", "nobody", nil, caKey, caCert); err != nil {
		t.Fatal(err)
	}
	nobody, err := clientcmd.BuildConfigFromFlags("", tmp.path("nobody.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kubernetes.NewForConfigOrDie(nobody).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "nobody"`) {
		t.Errorf("list as nobody: err = %v, want 403 Forbidden for user nobody", err)
	}
}

// Start, stop and start again on the same state directory: the
// certificates, kubeconfig and etcd data are reused.
func TestStartStopStartSameState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second control plane")
	}
	dir := t.TempDir()
	c := startCluster(t, dir, 27443)
	cs := clientFor(t, c)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survives-restart"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfigBefore, _ := os.ReadFile(c.kubeconfig())

	// A second up while it runs is a no-op.
	if err := c.up(ctx); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if out := c.out.(*bytes.Buffer).String(); !strings.Contains(out, "already running") {
		t.Errorf("second up printed %q, want 'already running'", out)
	}

	c.stop()
	if r := c.running(); len(r) != 0 {
		t.Fatalf("after stop, still running: %v", r)
	}
	// A pid file left by a crash names a process that is long gone.
	if err := os.WriteFile(c.path("kwok.pid"), []byte("999999"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := startCluster(t, dir, 27443)
	kubeconfigAfter, _ := os.ReadFile(c2.kubeconfig())
	if !bytes.Equal(kubeconfigBefore, kubeconfigAfter) {
		t.Error("kubeconfig changed across restart")
	}
	got, err := clientFor(t, c2).CoreV1().ConfigMaps("default").Get(ctx, "survives-restart", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("configmap after restart: %v %v", got, err)
	}

	// A running control plane started before there was a version file
	// gets one from its /version.
	if err := os.Remove(c2.path("version")); err != nil {
		t.Fatal(err)
	}
	if err := c2.up(ctx); err != nil {
		t.Fatalf("up on a running control plane: %v", err)
	}
	if b, err := os.ReadFile(c2.path("version")); err != nil || string(b) != version.Get().GitVersion {
		t.Errorf("version file of a running control plane: %q, %v; want %s", b, err, version.Get().GitVersion)
	}

	// A busy port is named, with the control plane that holds it.
	other := &cluster{dir: filepath.Join(t.TempDir(), "x"), apiserverPort: 27443, etcdPort: 27444, peerPort: 27445, out: &bytes.Buffer{}}
	wantErr := "port 127.0.0.1:27443 is held by the Kubernetes " + version.Get().GitVersion + " control plane in " + dir +
		"; stop it first ('make cluster-down K8S=" + minorOf(version.Get().GitVersion) + "' stops it and removes its state)"
	if err := other.up(ctx); err == nil || err.Error() != wantErr {
		t.Errorf("up on a busy port:\n err = %v\nwant %s", err, wantErr)
	}
	// A port held by someone else is named too.
	l, err := net.Listen("tcp", "127.0.0.1:27446")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	third := &cluster{dir: filepath.Join(t.TempDir(), "y"), apiserverPort: 27446, etcdPort: 27447, peerPort: 27448, out: &bytes.Buffer{}}
	if err := third.up(ctx); err == nil || !strings.Contains(err.Error(), "127.0.0.1:27446 is busy") {
		t.Errorf("up on a busy port: err = %v, want it to name the port", err)
	}

	// A state directory of another release is refused.
	c2.stop()
	if err := os.WriteFile(c2.path("version"), []byte("v1.34.2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c2.up(ctx); err == nil || !strings.Contains(err.Error(), "holds a Kubernetes v1.34.2 control plane and this binary is "+version.Get().GitVersion) ||
		!strings.Contains(err.Error(), "make cluster-down K8S=1.34") {
		t.Errorf("up on another release's state: err = %v", err)
	}
	if err := os.WriteFile(c2.path("version"), []byte(version.Get().GitVersion), 0o600); err != nil {
		t.Fatal(err)
	}

	// A stale, incomplete state directory is named, not a puzzle later.
	if err := os.Remove(c2.path("scheduler.kubeconfig")); err != nil {
		t.Fatal(err)
	}
	if err := c2.up(ctx); err == nil || !strings.Contains(err.Error(), "stale or incomplete state directory") {
		t.Errorf("up on an incomplete state directory: err = %v", err)
	}

	if err := c2.down(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("down left %s behind", dir)
	}
}

// A component that accepts connections but never answers (wedged, or
// stopped with SIGSTOP) must not make up hang: every probe carries a
// deadline, so waitFor gives up when its own time is up. No control plane
// is needed: a listener that accepts and then stays silent plays the
// component.
func TestProbesGiveUpOnSilentServer(t *testing.T) {
	c := &cluster{dir: t.TempDir(), out: io.Discard}
	var apiserverConns, etcdConns func() int
	c.apiserverPort, apiserverConns = silentServer(t)
	c.etcdPort, etcdConns = silentServer(t)
	// waitReady needs the admin kubeconfig, pointing at the silent port.
	if err := ensurePKI(c); err != nil {
		t.Fatal(err)
	}
	for _, probe := range []struct {
		name  string
		wait  func(ctx context.Context, timeout time.Duration) error
		conns func() int
	}{
		{"etcd", func(ctx context.Context, timeout time.Duration) error {
			return c.waitFor(ctx, "etcd", timeout, c.etcdHealthy)
		}, etcdConns},
		{"kube-apiserver", c.waitReady, apiserverConns},
	} {
		t.Run(probe.name, func(t *testing.T) {
			t.Parallel()
			// Room for a second probe after the first has given up, and
			// shorter than client-go's 10s TLS handshake timeout, so
			// only probeTimeout can end the first probe in time.
			timeout := probeTimeout + 4*time.Second
			done := make(chan error, 1)
			go func() { done <- probe.wait(context.Background(), timeout) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(timeout + time.Minute):
				// Not a timing assertion: a probe that ignores its
				// context never returns, and this says so instead of
				// waiting for go test's own -timeout.
				t.Fatalf("%s wait still running a minute after its %s limit: a probe ignores its deadline", probe.name, timeout)
			}
			if err == nil || !strings.Contains(err.Error(), "not ready after") {
				t.Fatalf("err = %v, want %q", err, probe.name+" not ready after ...")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want the last probe cut by its deadline (context.DeadlineExceeded)", err)
			}
			// Each probe gave up after probeTimeout and the next one
			// dialled again: the server saw more than one connection.
			// (Poll: the last connect may not be accepted yet.)
			err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true,
				func(context.Context) (bool, error) { return probe.conns() >= 2, nil })
			if err != nil {
				t.Errorf("the silent %s saw %d connection(s) in %s, want one per probe of at most %s", probe.name, probe.conns(), timeout, probeTimeout)
			}
		})
	}
}

// silentServer listens on a free loopback port, accepts every connection
// and never writes a byte. It returns the port and a count of the
// connections accepted so far.
func silentServer(t *testing.T) (port int, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port, func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}
