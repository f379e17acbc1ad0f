package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"client-go-demo/internal/demotest"
)

// TestInformerTombstone makes an informer miss a delete, for real: the
// informer reaches its API server through a proxy the test can cut. While
// it is cut, the test deletes one of the demo's ConfigMaps. The cut ends
// the informer's watch with an error (an unexpected EOF within its first
// second: "very short watch"), so the Reflector's ListAndWatch returns, and
// its next run is a WatchList from the last resourceVersion: once the proxy
// lets it through, the server answers with its current state, without the
// ConfigMap, and both handlers get a cache.DeletedFinalStateUnknown. The
// test also restarts kube-apiserver (whose new watch cache holds no history
// before the restart) and compacts etcd (which then holds none either), for
// the case where the watch ended without an error: the Reflector would then
// resume it from its last resourceVersion and get the delete as an event;
// this way it gets a 410 and fills its cache again in the same way.
// Restarting the shared API server would break the other packages' tests,
// so this test runs a control plane of its own, from the same binary, on
// other ports.
func TestInformerTombstone(t *testing.T) {
	start := time.Now()
	lc := demotest.PrivateCluster(t, 24443)
	t.Logf("up after %s", time.Since(start))
	admin := lc.Kubeconfig()
	cs := lc.Client(t)

	p := startProxy(t, "127.0.0.1:24443")
	raw, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range raw.Clusters {
		c.Server = "https://" + p.addr() // the serving certificate names 127.0.0.1, any port
	}
	proxied := filepath.Join(t.TempDir(), "proxied.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, proxied); err != nil {
		t.Fatal(err)
	}
	ns := contextNamespace(raw)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-kubeconfig", proxied, "-watch"}, out) }()
	demotest.WaitFor(t, 30*time.Second, "the demo to start watching", func() bool {
		return strings.Contains(out.String(), "watching until Ctrl-C")
	})
	m := regexp.MustCompile(`created (demo-informer-\w+) .*, (demo-informer-\w+) .*, (demo-informer-\w+) \(tier=backend\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no created line:\n%s", out.String())
	}
	victim := m[3]

	p.cut()
	if err := cs.CoreV1().ConfigMaps(ns).Delete(context.Background(), victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lc.Run(t, "restart-apiserver")
	lc.Run(t, "compact")
	p.heal()
	t.Logf("healed after %s", time.Since(start))

	typed := `typed   DeleteFunc ` + victim + `: FinalStateUnknown set (key ` + ns + `/` + victim + `)`
	classic := `classic DeleteFunc cache.DeletedFinalStateUnknown key ` + ns + `/` + victim + `, Obj: the last state seen, resourceVersion `
	demotest.WaitFor(t, 90*time.Second, "both handlers' tombstones", func() bool {
		got := out.String()
		return strings.Contains(got, typed) && strings.Contains(got, classic)
	})
	t.Logf("tombstones after %s", time.Since(start))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Logf("the output was:\n%s", got)
	// The delete never arrived as an event: no DeleteFunc with the final
	// state for the victim.
	if strings.Contains(got, "DeleteFunc "+victim+": OptionalObj") || strings.Contains(got, "DeleteFunc *v1.ConfigMap "+victim) {
		t.Error("the informer saw the delete as a watch event; the test meant it to miss it")
	}
	// It filled itself again (a second WatchList or LIST) after the cut.
	demotest.Match(t, got, `^  request: (WATCH|LIST) /api/v1/namespaces/`+ns+`/configmaps .*resourceVersion=\d+`)
	// On the server: the victim is gone, and the cleanup removed the rest.
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), victim, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get %s: %v, want NotFound", victim, err)
	}
	demotest.NothingLeft(t, cs, ns)
}

func contextNamespace(c *clientcmdapi.Config) string {
	if ctx := c.Contexts[c.CurrentContext]; ctx != nil && ctx.Namespace != "" {
		return ctx.Namespace
	}
	return metav1.NamespaceDefault
}

// proxy forwards TCP connections to target until cut, which closes every
// open connection and refuses new ones (it accepts and closes them) until
// heal: a network partition between the demo and its API server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
	wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
