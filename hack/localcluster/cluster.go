package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1" // the first address: the kubernetes Service
	nodeName    = "kwok-node-0"
)

// startOrder is also the reverse of the stop order.
var startOrder = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// cluster is one local control plane, described by its state directory.
type cluster struct {
	dir                               string
	apiserverPort, etcdPort, peerPort int
	out                               io.Writer
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}
func (c *cluster) serverURL() string { return fmt.Sprintf("https://127.0.0.1:%d", c.apiserverPort) }
func (c *cluster) etcdURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", c.etcdPort) }
func (c *cluster) kubeconfig() string {
	return c.path("admin.kubeconfig")
}
func (c *cluster) logFile(name string) string { return c.path("logs", name+".log") }

// args are the command lines of the components. Everything listens on
// 127.0.0.1; the controllers' and scheduler's own HTTPS endpoints are off.
func (c *cluster) args(name string) []string {
	switch name {
	case "etcd":
		return []string{
			"--data-dir=" + c.path("etcd"),
			"--listen-client-url=" + c.etcdURL(),
			fmt.Sprintf("--listen-peer-url=http://127.0.0.1:%d", c.peerPort),
		}
	case "kube-apiserver":
		return []string{
			"--etcd-servers=" + c.etcdURL(),
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(c.apiserverPort),
			"--tls-cert-file=" + c.path("pki", "apiserver.crt"),
			"--tls-private-key-file=" + c.path("pki", "apiserver.key"),
			"--client-ca-file=" + c.path("pki", "ca.crt"),
			// No anonymous user: a request without credentials gets 401.
			"--anonymous-auth=false",
			"--authorization-mode=Node,RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + c.path("pki", "sa.pub"),
			"--service-account-signing-key-file=" + c.path("pki", "sa.key"),
			"--service-cluster-ip-range=" + serviceCIDR,
			"--allow-privileged=true",
			// The kubernetes Service cannot point at a loopback address.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
			"--v=1",
		}
	case "kube-controller-manager":
		return []string{
			"--kubeconfig=" + c.path("controller-manager.kubeconfig"),
			"--secure-port=0",
			"--leader-elect=false",
			// Each controller acts as its own service account, with the
			// narrow bootstrap role RBAC gives it, as kubeadm sets up.
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + c.path("pki", "sa.key"),
			"--root-ca-file=" + c.path("pki", "ca.crt"),
			"--service-cluster-ip-range=" + serviceCIDR,
			"--profiling=false",
			"--v=1",
		}
	case "kube-scheduler":
		return []string{
			"--kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--authentication-kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--authorization-kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			"--leader-elect=false",
			"--profiling=false",
			"--v=1",
		}
	case "kwok":
		return []string{
			"--kubeconfig=" + c.path("kwok.kubeconfig"),
			"--config=" + c.path("kwok.yaml"),
			"--manage-single-node=" + nodeName,
			"--node-lease-duration-seconds=40",
			"--cidr=10.244.0.1/24",
			"--node-ip=127.0.0.1",
		}
	}
	return nil
}

// up starts the control plane in the background and returns once it is ready
// for the demos: /readyz ok, the default namespace and its service account,
// and a Ready node. Each wait has a limit (etcd 30s, kube-apiserver 90s, the
// controllers and the node 60s) and each other request a deadline (15s, two
// of them), so up fails, naming a log file, after at most 3.5 minutes plus
// the time to stop what it started (stopComponent), instead of hanging.
func (c *cluster) up(ctx context.Context) error {
	start := time.Now()
	running := c.running()
	if len(running) == len(startOrder) {
		if err := c.waitReady(ctx, 10*time.Second); err != nil {
			return fmt.Errorf("every component in %s is running, but: %w; 'make cluster-down' stops them", c.dir, err)
		}
		if err := c.recordRunningVersion(ctx); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "local control plane is already running (%s)\n", c.dir)
		c.printAccess(ctx, 0)
		return nil
	}
	if len(running) > 0 {
		return fmt.Errorf("stale state in %s: %s still running but not the rest; run 'make cluster-down' (or kill them) and try again",
			c.dir, strings.Join(running, ", "))
	}
	// Nothing of ours runs: pid files left by a crash or a kill -9 are
	// stale, and would make a dead pid look like a component that failed.
	for _, n := range startOrder {
		_ = os.Remove(c.path(n + ".pid"))
	}
	// etcd's data and the certificates are made by one version; a state
	// directory of another version is refused rather than upgraded or, worse,
	// downgraded in place.
	if v, err := os.ReadFile(c.path("version")); err == nil && string(v) != version.Get().GitVersion {
		return c.otherRelease(string(v))
	}
	for _, p := range []int{c.apiserverPort, c.etcdPort, c.peerPort} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			if dir, v := holder(p); dir != "" && v != "" {
				return fmt.Errorf("port 127.0.0.1:%d is held by the Kubernetes %s control plane in %s; stop it first ('make cluster-down K8S=%s' stops it and removes its state)",
					p, v, dir, minorOf(v))
			} else if dir != "" {
				return fmt.Errorf("port 127.0.0.1:%d is held by the control plane in %s; stop it first ('bin/localcluster -dir %s stop')", p, dir, dir)
			}
			return fmt.Errorf("port 127.0.0.1:%d is busy (another cluster or a leftover process?): %w", p, err)
		}
		l.Close()
	}
	if err := os.MkdirAll(c.path("logs"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("version"), []byte(version.Get().GitVersion), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return err
	}
	if err := ensurePKI(c); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("kwok.yaml"), []byte(kwokConfig()), 0o600); err != nil {
		return err
	}
	err := c.startAndWait(ctx)
	if err != nil {
		c.stop()
		return err
	}
	c.printAccess(ctx, time.Since(start))
	return nil
}

func (c *cluster) startAndWait(ctx context.Context) error {
	if err := c.start("etcd"); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd", 30*time.Second, c.etcdHealthy); err != nil {
		return err
	}
	if err := c.markStart(ctx); err != nil {
		return err
	}
	if err := c.start("kube-apiserver"); err != nil {
		return err
	}
	if err := c.waitReady(ctx, 90*time.Second); err != nil {
		return err
	}
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		if err := c.start(name); err != nil {
			return err
		}
	}
	cs, err := c.client()
	if err != nil {
		return err
	}
	if err := registerNode(ctx, cs); err != nil {
		return err
	}
	// kwok takes over a node only once the node's lease is free. After a
	// restart the lease still names the previous kwok process and stays
	// held for its 40s duration, so Pods would wait that long to start.
	if err := deleteNodeLease(ctx, cs); err != nil {
		return err
	}
	if err := c.start("kwok"); err != nil {
		return err
	}
	// The service account controller in kube-controller-manager creates
	// "default"; kwok marks the node Ready. Both prove the components work.
	return c.waitFor(ctx, "kube-controller-manager", 60*time.Second, func(ctx context.Context) error {
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return err
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s is not Ready yet", nodeName)
	})
}

// registerNode creates the fake node that kwok manages. A real kubelet
// registers itself; kwok only drives the status of nodes that exist.
func registerNode(ctx context.Context, cs kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: nodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": nodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
	}
	_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func deleteNodeLease(ctx context.Context, cs kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := cs.CoordinationV1().Leases("kube-node-lease").Delete(ctx, nodeName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the stale node lease: %w", err)
	}
	return nil
}

// kwokConfig is kwok's configuration: the default node and pod Stages that
// kwok ships as Go packages, so no file is downloaded.
func kwokConfig() string {
	return strings.Join([]string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}, "\n---\n")
}

// client is the admin client. It sets no rest.Config.Timeout: every call
// here carries a context with a deadline instead (probeTimeout,
// requestTimeout, or the caller's), which is what bounds it.
func (c *cluster) client() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// etcdHealthy is etcd's readiness probe: GET /health on the client URL
// answers 200 once the member has a leader and serves requests.
func (c *cluster) etcdHealthy(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.etcdURL()+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("etcd /health: %s %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// waitReady polls /readyz with the admin client certificate.
func (c *cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	return c.waitFor(ctx, "kube-apiserver", timeout, func(ctx context.Context) error {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if body = bytes.TrimSpace(body); err != nil && len(body) > 0 {
			return fmt.Errorf("/readyz: %w: %s", err, body)
		} else if err != nil {
			return fmt.Errorf("/readyz: %w", err)
		}
		_, err = cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// probeTimeout bounds one readiness probe, requestTimeout one request that
// is not retried. A component that accepts connections but does not answer
// (wedged, or stopped with SIGSTOP) then costs one probe, not the whole
// wait, and no request outlives the limit of the step that makes it.
const (
	probeTimeout   = 5 * time.Second
	requestTimeout = 15 * time.Second
)

// waitFor polls check until it succeeds or timeout has passed, failing
// early, with the log file named, if a component's process has exited.
// Each call of check gets a context that ends after probeTimeout at most;
// check must honour it, so waitFor returns by its timeout.
func (c *cluster) waitFor(ctx context.Context, name string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		probeCtx, probeCancel := context.WithTimeout(ctx, probeTimeout)
		last = check(probeCtx)
		probeCancel()
		if last == nil {
			return nil
		}
		for _, n := range startOrder {
			if pid := c.pid(n); pid != 0 && !alive(pid) {
				return fmt.Errorf("%s exited during start-up; see %s:\n%s", n, c.logFile(n), tail(c.logFile(n), 15))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last check: %w); see %s", name, timeout, last, c.logFile(name))
		case <-time.After(50 * time.Millisecond): // cheap probes; every poll saved is start-up time
		}
	}
}

// start launches one component as a child of this binary in its own
// session, so it outlives "make cluster-up" and a Ctrl-C in that terminal.
func (c *cluster) start(name string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(c.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"component", name}, c.args(name)...)...)
	// argv[0] is the component's name: it becomes the default user agent
	// and field manager ("kube-controller-manager", not "localcluster").
	cmd.Args[0] = name
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	// Reap the child if this process lives long enough (tests); otherwise
	// init adopts it.
	go func() { _ = cmd.Wait() }()
	return os.WriteFile(c.path(name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
}

// pid returns the recorded pid of a component, or 0.
func (c *cluster) pid(name string) int {
	b, err := os.ReadFile(c.path(name + ".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// running lists the components whose recorded process is alive and is
// really ours (a recycled pid belongs to someone else).
func (c *cluster) running() []string {
	var names []string
	for _, n := range startOrder {
		if pid := c.pid(n); pid != 0 && alive(pid) && isComponent(pid, n) {
			names = append(names, n)
		}
	}
	return names
}

func alive(pid int) bool {
	// A zombie still answers signal 0; read its state instead.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// recordRunningVersion asks a running control plane for its version and
// writes it to the state directory when the file is missing (a control
// plane started before there was one); the tests read it. A control plane
// of another release than this binary is an error, as for a stopped one.
func (c *cluster) recordRunningVersion(ctx context.Context) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, err := serverVersion(ctx, cs)
	if err != nil {
		return fmt.Errorf("read /version: %w", err)
	}
	if mine := version.Get().GitVersion; strings.HasPrefix(mine, "v1.") && v.GitVersion != mine {
		return c.otherRelease(v.GitVersion)
	}
	if _, err := os.Stat(c.path("version")); errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(c.path("version"), []byte(v.GitVersion), 0o600)
	}
	return nil
}

// otherRelease refuses a control plane, stopped or running, of another
// release than this binary's.
func (c *cluster) otherRelease(theirs string) error {
	return fmt.Errorf("%s holds a Kubernetes %s control plane and this binary is %s: use the binary of that version, or 'make cluster-down K8S=%s' to remove it",
		c.dir, theirs, version.Get().GitVersion, minorOf(theirs))
}

// holder finds the localcluster component that serves port, from the
// command lines in /proc, and returns its state directory (the process's
// working directory) and the version recorded there.
func holder(port int) (dir, version string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("component\x00")) || !bytes.Contains(b, []byte(":"+strconv.Itoa(port))) &&
			!bytes.Contains(b, []byte("="+strconv.Itoa(port)+"\x00")) {
			continue
		}
		d, err := os.Readlink(filepath.Join(filepath.Dir(p), "cwd"))
		if err != nil {
			continue
		}
		v, _ := os.ReadFile(filepath.Join(d, "version"))
		return d, string(v)
	}
	return "", ""
}

// minorOf turns v1.36.3 into 1.36, the value of make's K8S.
func minorOf(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

func isComponent(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte("component\x00"+name+"\x00"))
}

// stopComponent sends SIGTERM, waits up to 3s, then SIGKILL. kube-apiserver
// stops serving at once on SIGTERM but can linger in its shutdown hooks;
// its state is in etcd, so nothing is lost by not waiting.
func (c *cluster) stopComponent(name string) {
	pid := c.pid(name)
	defer os.Remove(c.path(name + ".pid"))
	if pid == 0 || !alive(pid) || !isComponent(pid, name) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		// SIGKILL cannot be caught; only a process stuck in the kernel
		// (uninterruptible I/O) outlives it for a while. Do not hang on it.
		deadline = time.Now().Add(10 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stop ends every component, newest first, and keeps the state.
func (c *cluster) stop() {
	for i := len(startOrder) - 1; i >= 0; i-- {
		c.stopComponent(startOrder[i])
	}
}

// down stops everything and removes the state directory.
func (c *cluster) down() error {
	c.stop()
	if err := os.RemoveAll(c.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// restartAPIServer stops kube-apiserver alone and starts it again; etcd
// keeps its data, and clients see their watches break.
func (c *cluster) restartAPIServer(ctx context.Context) error {
	if c.pid("kube-apiserver") == 0 {
		return fmt.Errorf("kube-apiserver is not running (state %s)", c.dir)
	}
	start := time.Now()
	c.stopComponent("kube-apiserver")
	if err := c.start("kube-apiserver"); err != nil {
		return err
	}
	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "kube-apiserver restarted in %s\n", time.Since(start).Round(10*time.Millisecond))
	return nil
}

// status prints which components run and their memory. RSS counts the
// pages of the one shared binary in every process; PSS divides shared pages
// among the processes that map them, so the PSS total is what the control
// plane as a whole holds in memory.
func (c *cluster) status() {
	fmt.Fprintf(c.out, "state: %s\nversion: %s\nrunning: %v\n", c.dir, version.Get().GitVersion, c.running())
	var rss, pss int
	for _, n := range c.running() {
		r, p := memory(c.pid(n))
		rss, pss = rss+r, pss+p
		fmt.Fprintf(c.out, "  %-24s pid %-7d RSS %4d MiB  PSS %4d MiB\n", n, c.pid(n), r>>10, p>>10)
	}
	if pss > 0 {
		fmt.Fprintf(c.out, "  %-24s             RSS %4d MiB  PSS %4d MiB\n", "total", rss>>10, pss>>10)
	}
}

// memory reads a process's RSS and PSS, in KiB.
func memory(pid int) (rss, pss int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

func (c *cluster) printAccess(ctx context.Context, took time.Duration) {
	if took > 0 {
		version := "unknown version"
		if cs, err := c.client(); err == nil {
			ctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			if v, err := serverVersion(ctx, cs); err == nil {
				version = v.GitVersion
			}
		}
		fmt.Fprintf(c.out, "local control plane ready in %.1fs: Kubernetes %s at %s\n", took.Seconds(), version, c.serverURL())
	}
	fmt.Fprintf(c.out, "kubeconfig: %s\n", c.kubeconfig())
	fmt.Fprintf(c.out, "  export KUBECONFIG=%s\n", c.kubeconfig())
}

// serverVersion reads /version. This file builds with the client-go of
// each release (go.mod, go.1.36.mod, go.1.35.mod): ServerVersionWithContext
// is new in v0.37, and ServerVersion takes no context.
func serverVersion(ctx context.Context, cs kubernetes.Interface) (*apimachineryversion.Info, error) {
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/version").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var v apimachineryversion.Info
	return &v, json.Unmarshal(body, &v)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// markStart writes one key to etcd before kube-apiserver starts, so that
// etcd's revision is past 1 when the watch caches fill. A fresh etcd is at
// revision 1, and a watch cache filled there still serves a watch from
// resourceVersion 1, which on any cluster that has lived a little is long
// gone: kube-apiserver answers 410 for a resourceVersion older than the
// revision its watch cache filled at (k8s.io/apiserver@v0.37.2
// pkg/storage/cacher/watch_cache_history.go, GetIntervalLocked: "too old
// resource version"). The watch demo uses resourceVersion 1 for "from
// before an outage".
func (c *cluster) markStart(ctx context.Context) error {
	return c.withEtcd(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		if _, err := cli.Put(ctx, "/localcluster/last-start", time.Now().UTC().Format(time.RFC3339)); err != nil {
			return fmt.Errorf("write to etcd: %w", err)
		}
		return nil
	})
}
