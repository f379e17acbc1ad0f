package main

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"client-go-demo/internal/demotest"
)

// -show kubeconfig: every context is listed, the current one marked; the
// rest.Config made from the kubeconfig's bytes carries the user (here an
// impersonated one, so the server's SelfSubjectReview answer proves it);
// and no credential reaches the output.
func TestShowKubeconfig(t *testing.T) {
	kubeconfig := demotest.ModifiedKubeconfig(t, func(c *clientcmdapi.Config) {
		for _, a := range c.AuthInfos {
			a.Impersonate, a.ImpersonateGroups = "alice", []string{"team-a"}
		}
		cur := c.Contexts[c.CurrentContext]
		c.Contexts["zz-other"] = &clientcmdapi.Context{Cluster: cur.Cluster, AuthInfo: "tokenuser", Namespace: "elsewhere"}
		c.AuthInfos["tokenuser"] = &clientcmdapi.AuthInfo{TokenFile: "/does/not/exist"}
	})
	out := &demotest.Output{}
	if err := run(context.Background(), []string{"-kubeconfig", kubeconfig, "-show", "kubeconfig"}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	got := out.String()
	demotest.Match(t, got,
		`^  CURRENT +NAME +CLUSTER +AUTHINFO +NAMESPACE$`,
		`^  \* +localcluster +localcluster +kubernetes-admin +default$`,
		`^ +zz-other +localcluster +tokenuser +elsewhere$`,
		`^  context localcluster uses credentials of kind: client certificate \(embedded data\)$`,
		`^  the current context, minified and flattened: \d+ bytes \(not printed: they hold credentials\)$`,
		`^  rest.Config: server `+demotest.Config(t).Host+`, client certificate true, bearer token false, exec plugin false$`,
		// The server's answer: the bytes kept the impersonation.
		`^  SelfSubjectReview with that config: the server knows us as alice, groups \[team-a system:authenticated\]$`,
		`^  not in a Pod: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined$`,
	)
	noCredentials(t, got)

	// -context picks another current context: the star moves.
	out = &demotest.Output{}
	err := run(context.Background(), []string{"-kubeconfig", kubeconfig, "-context", "zz-other", "-show", "kubeconfig"}, out)
	demotest.Match(t, out.String(), `^  \* +zz-other +localcluster +tokenuser +elsewhere$`,
		`^  context zz-other uses credentials of kind: bearer token file \(re-read as it changes\)$`)
	// Its token file does not exist: the bytes cannot become a config.
	if err == nil || !strings.Contains(err.Error(), "/does/not/exist") {
		t.Errorf("err = %v, want the missing token file named", err)
	}
}

// noCredentials fails if out holds any part of the admin kubeconfig's
// certificates, keys or tokens, raw or base64.
func noCredentials(t *testing.T, out string) {
	t.Helper()
	cfg := demotest.Config(t)
	var secrets [][]byte
	for _, b := range [][]byte{cfg.CertData, cfg.KeyData, cfg.CAData, []byte(cfg.BearerToken)} {
		if len(b) > 0 {
			secrets = append(secrets, b, []byte(base64.StdEncoding.EncodeToString(b)))
		}
	}
	for _, f := range []string{cfg.CertFile, cfg.KeyFile} {
		if b, err := os.ReadFile(f); f != "" && err == nil {
			secrets = append(secrets, b)
		}
	}
	for _, s := range secrets {
		// Any 40-byte run of a credential is too much.
		for i := 0; i+40 <= len(s); i += 40 {
			if strings.Contains(out, string(s[i:i+40])) {
				t.Fatal("the output contains part of a credential")
			}
		}
	}
}

// -show warnings: the server warned and created the ConfigMap without the
// unknown field, refused the Strict create (nothing else was added), and
// the ConfigMap is gone again.
func TestShowWarnings(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-restclient-warn")
	list, err := cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: partOf})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: partOf, ResourceVersion: list.ResourceVersion})
	cms := record(t, w, err)

	out := &demotest.Output{}
	if err := run(context.Background(), []string{"-n", ns, "-show", "warnings"}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	demotest.Match(t, out.String(),
		`^  warning from the server \(code 299, agent "-"\): unknown field "spec"$`,
		`^  created configmap demo-restclient-\w{5}: data map\[greeting:hello\], field spec stored: false$`,
		`^  refused, 400 Bad Request: .*strict decoding error: unknown field "spec"$`,
	)
	demotest.WaitFor(t, 30*time.Second, "one ConfigMap added with data greeting=hello, then deleted", func() bool {
		added, deleted := cms.names(watch.Added), cms.names(watch.Deleted)
		return len(added) == 1 && sameKeys(added, deleted)
	})
	for _, ev := range cms.all() {
		if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type == watch.Added && cm.Data["greeting"] != "hello" {
			t.Errorf("the ConfigMap on the server has data %v", cm.Data)
		}
	}
	demotest.NothingLeft(t, cs, ns)
}

func TestShowErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-restclient-show-errors")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"bad topic", []string{"-show", "everything"}, `-show "everything": want kubeconfig or warnings`, true},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist", "-show", "kubeconfig"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"missing context", []string{"-context", "nope", "-show", "kubeconfig"}, `context "nope" is not in the kubeconfig`, false},
		{"unreachable", []string{"-kubeconfig", demotest.UnreachableKubeconfig(t), "-timeout", "5s", "-show", "kubeconfig"}, "connect: connection refused", false},
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns, "-show", "warnings"}, `forbidden by RBAC: configmaps is forbidden: User "nobody" cannot create resource "configmaps" in API group "" in the namespace "` + ns + `"`, false},
		{"missing namespace", []string{"-n", "no-such-namespace", "-show", "warnings"}, `namespaces "no-such-namespace" not found`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &demotest.Output{})
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to end with %q", err, tc.want)
			}
			if errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("usage error (exit 2) = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	demotest.NothingLeft(t, cs, ns)
}

// Ctrl-C after the ConfigMap was created: the deferred delete still runs.
func TestShowWarningsInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-restclient-warn-int")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &demotest.Output{Marker: "created configmap", Cancel: cancel}
	if err := run(ctx, []string{"-n", ns, "-show", "warnings"}, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, out)
	}
	demotest.NothingLeft(t, cs, ns)
	demotest.NamespaceStillThere(t, cs, ns)
}
