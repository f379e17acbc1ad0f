package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"client-go-demo/internal/demotest"
)

// watchFrom starts a watch of what list lists, from its resourceVersion,
// and records its events until the test ends.
func watchFrom(t *testing.T, list func() (string, error), start func(rv string) (watch.Interface, error)) *events {
	t.Helper()
	rv, err := list()
	if err != nil {
		t.Fatal(err)
	}
	w, err := start(rv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return record(w)
}

func recordConfigMaps(t *testing.T, cs kubernetes.Interface, ns string) *events {
	opts := metav1.ListOptions{LabelSelector: partOf}
	return watchFrom(t, func() (string, error) {
		l, err := cs.CoreV1().ConfigMaps(ns).List(context.Background(), opts)
		if err != nil {
			return "", err
		}
		return l.ResourceVersion, nil
	}, func(rv string) (watch.Interface, error) {
		o := opts
		o.ResourceVersion = rv
		return cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), o)
	})
}

func recordDeployments(t *testing.T, cs kubernetes.Interface, ns string) *events {
	opts := metav1.ListOptions{LabelSelector: partOf}
	return watchFrom(t, func() (string, error) {
		l, err := cs.AppsV1().Deployments(ns).List(context.Background(), opts)
		if err != nil {
			return "", err
		}
		return l.ResourceVersion, nil
	}, func(rv string) (watch.Interface, error) {
		o := opts
		o.ResourceVersion = rv
		return cs.AppsV1().Deployments(ns).Watch(context.Background(), o)
	})
}

// -show serialization: the typed round trips are equal, the Deployment was
// created and deleted on the server, and the YAML printed for it is taken
// by a real `kubectl apply -f`, which creates the same Deployment again.
func TestShowSerialization(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-dynamicclient-serial")
	deploys := recordDeployments(t, cs, ns)
	out := &demotest.Output{}
	if err := run(context.Background(), []string{"-n", ns, "-show", "serialization"}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	got := out.String()
	demotest.Match(t, got,
		`^  YAML, \d+ bytes, decoded by UniversalDeserializer: \*v1.Deployment \(apps/v1, Kind=Deployment\), equal to the original: true$`,
		`^  pretty JSON, \d+ bytes, decoded by UniversalDeserializer: \*v1.Deployment \(apps/v1, Kind=Deployment\), equal to the original: true$`,
		`^  created demo-dynamicclient-\w{5}; removed what the server owns: status, metadata.managedFields, metadata.resourceVersion, metadata.uid, metadata.creationTimestamp, metadata.generation, metadata.generateName$`,
		`^  decoded back into unstructured.Unstructured: equal: true$`,
	)
	name := regexp.MustCompile(`created (demo-dynamicclient-\w{5});`).FindStringSubmatch(got)
	if name == nil {
		t.Fatal("no created line")
	}
	demotest.WaitFor(t, 30*time.Second, "the Deployment added and deleted on the server", func() bool {
		return deploys.count(watch.Added) == 1 && deploys.count(watch.Deleted) == 1
	})

	// The apply-ready YAML: between its heading and the decode line.
	_, rest, _ := strings.Cut(got, "kubectl apply -f takes it as it is):\n")
	manifest, _, _ := strings.Cut(rest, "  decoded back")
	manifest = regexp.MustCompile(`(?m)^    `).ReplaceAllString(manifest, "")
	for _, field := range []string{"status:", "managedFields", "resourceVersion", "uid:", "creationTimestamp", "generation:"} {
		if strings.Contains(manifest, field) {
			t.Errorf("the apply-ready YAML has %s:\n%s", field, manifest)
		}
	}
	apply := exec.Command(kubectl(t), "apply", "-f", "-", "--kubeconfig", demotest.Kubeconfig(t))
	apply.Stdin = strings.NewReader(manifest)
	if b, err := apply.CombinedOutput(); err != nil || !strings.Contains(string(b), "deployment.apps/"+name[1]+" created") {
		t.Fatalf("kubectl apply -f: %v\n%s\nmanifest:\n%s", err, b, manifest)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name[1], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.27" || d.Labels[partOfKey] != partOfValue {
		t.Errorf("applied Deployment: image %s, labels %v", img, d.Labels)
	}
	if err := cs.AppsV1().Deployments(ns).Delete(context.Background(), name[1], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	demotest.WaitFor(t, 30*time.Second, "the applied Deployment gone", func() bool {
		_, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name[1], metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	demotest.NothingLeft(t, cs, ns)
}

// kubectl returns $KUBECTL (the kubectl `make test` builds), else
// bin/kubectl, else kubectl from $PATH.
func kubectl(t *testing.T) string {
	if k := os.Getenv("KUBECTL"); k != "" {
		return k
	}
	if k := filepath.Join("..", "bin", "kubectl"); fileExists(k) {
		return k
	}
	k, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("no kubectl: run `make kubectl`")
	}
	return k
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// -show metadata: five ConfigMaps were created, the first labelled through
// the metadata client (the watch saw it), the second deleted, and the rest
// removed by the metadata client's DeleteCollection; the metadata list read
// far fewer bytes than the dynamic one.
func TestShowMetadata(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-dynamicclient-meta")
	cms := recordConfigMaps(t, cs, ns)
	out := &demotest.Output{}
	if err := run(context.Background(), []string{"-n", ns, "-show", "metadata"}, out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	got := out.String()
	demotest.Match(t, got,
		`^  an item: \*v1.PartialObjectMetadata demo-dynamicclient-\w{5}, labels 2, resourceVersion \d+; no data, no spec, no status$`,
		`^  MODIFIED \*v1.PartialObjectMetadata (demo-dynamicclient-\w{5}), label demo-step="watched"$`,
		`^  DELETED \*v1.PartialObjectMetadata demo-dynamicclient-\w{5}, label demo-step=""$`,
		`^  deleted the rest with one DeleteCollection through the metadata client$`,
	)
	size := func(client string) int {
		m := regexp.MustCompile(`(?m)^  the same list, ` + client + ` client: +5 items, (\d+) bytes`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("no size line for the %s client:\n%s", client, got)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// 5 x 8 KiB of data: the dynamic list carries it, the metadata one not.
	if dyn, meta := size("dynamic"), size("metadata"); dyn < 5*8<<10 || meta <= 0 || meta*10 > dyn {
		t.Errorf("dynamic %d bytes, metadata %d bytes: want the metadata list under a tenth", dyn, meta)
	}
	demotest.WaitFor(t, 30*time.Second, "5 ConfigMaps added, one labelled demo-step=watched, all 5 deleted", func() bool {
		labelled := false
		for _, ev := range cms.get() {
			if o, ok := ev.Object.(metav1.Object); ok && ev.Type == watch.Modified && o.GetLabels()["demo-step"] == "watched" {
				labelled = true
			}
		}
		return cms.count(watch.Added) == 5 && labelled && cms.count(watch.Deleted) == 5
	})
	demotest.NothingLeft(t, cs, ns)
}

func TestShowErrors(t *testing.T) {
	cs := demotest.Client(t)
	ns := demotest.Namespace(t, cs, "test-dynamicclient-show")
	nobody := demotest.ImpersonatingKubeconfig(t, "nobody")
	unreachable := demotest.UnreachableKubeconfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"bad topic", []string{"-show", "all"}, `-show "all": want serialization or metadata`, true},
		{"missing kubeconfig", []string{"-kubeconfig", "/does/not/exist", "-show", "metadata"}, "load kubeconfig: stat /does/not/exist: no such file or directory", false},
		{"missing namespace", []string{"-n", "no-such-namespace", "-show", "serialization"}, `create deployment in namespace "no-such-namespace": namespaces "no-such-namespace" not found`, false},
		{"forbidden", []string{"-kubeconfig", nobody, "-n", ns, "-show", "metadata"}, `forbidden by RBAC: configmaps is forbidden: User "nobody" cannot create resource "configmaps" in API group "" in the namespace "` + ns + `"`, false},
		{"unreachable", []string{"-kubeconfig", unreachable, "-show", "serialization"}, `dial tcp 127.0.0.1:1: connect: connection refused`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out demotest.Output
			err := run(context.Background(), tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q\noutput:\n%s", err, tc.want, out.String())
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

// Ctrl-C once the objects exist: the deferred deletes still remove them.
func TestShowInterruptedCleansUp(t *testing.T) {
	cs := demotest.Client(t)
	for _, tc := range []struct{ topic, marker string }{
		{"metadata", "created 5 ConfigMaps"},
		{"serialization", "removed what the server owns"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			ns := demotest.Namespace(t, cs, "test-dynamicclient-int")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &demotest.Output{Marker: tc.marker, Cancel: cancel}
			err := run(ctx, []string{"-n", ns, "-show", tc.topic}, out)
			// After its create, serialization sends no request but the
			// deferred delete, which outlives the cancel: it may succeed.
			if !errors.Is(err, context.Canceled) && (tc.topic != "serialization" || err != nil) {
				t.Fatalf("err = %v, want context.Canceled\n%s", err, out)
			}
			if tc.topic == "serialization" && !strings.Contains(out.String(), " is gone\n") {
				t.Errorf("the deferred delete did not report the Deployment gone:\n%s", out)
			}
			demotest.NothingLeft(t, cs, ns)
			demotest.NamespaceStillThere(t, cs, ns)
		})
	}
}
