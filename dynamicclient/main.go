// Command dynamicclient shows the dynamic client: any resource, built-in or
// defined by a CustomResourceDefinition, as unstructured.Unstructured and a
// GroupVersionResource instead of generated Go types.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/yaml"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

//go:embed nginx-deployment.yaml
var nginxManifest []byte

const (
	partOf       = "app.kubernetes.io/part-of=client-go-demo"
	fieldManager = "demo-dynamicclient"
)

// The custom resource this demo defines: CronTab, the example of the
// Kubernetes documentation on CustomResourceDefinitions.
var (
	crdGVR     = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crontabGVR = schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}
)

func main() {
	// Ctrl-C, kill, or a closed pipe (go run ./dynamicclient | head) cancel ctx, and
	// run cleans up before it returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dynamicclient:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("dynamicclient", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current context)")
	var namespace string
	fs.StringVar(&namespace, "namespace", "", "namespace (default: the context's namespace)")
	fs.StringVar(&namespace, "n", "", "shorthand for -namespace")
	crdTimeout := fs.Duration("crd-timeout", 30*time.Second, "how long to wait for the CRD to become Established")
	klog.InitFlags(fs)       // -v=6 logs every request, -v=8 their bodies, as kubectl does
	fs.SetOutput(io.Discard) // a bad flag is one line of error; -h prints the flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError{fmt.Errorf("%w (see -h)", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}

	// Step 1: build the dynamic client from the kubeconfig, loaded as kubectl does.
	fmt.Fprintln(stdout, "Step 1: build the client with dynamic.NewForConfig")
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, then ~/.kube/config
	rules.ExplicitPath = *kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: *kubeContext}
	overrides.Context.Namespace = namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	config, err := loader.ClientConfig() // falls back to the in-cluster config
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no kubeconfig: pass -kubeconfig, set $KUBECONFIG, or create ~/.kube/config")
	}
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return fmt.Errorf("read namespace from kubeconfig: %w", err)
	}
	config.UserAgent = "client-go-demo-dynamicclient"
	config.Timeout = 30 * time.Second
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	// One cheap request first: an unreachable server or bad credentials
	// fail here with one clear line, before the cached discovery client
	// (which logs its own errors) is used.
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	version, err := disco.ServerVersionWithContext(ctx)
	if err != nil {
		return fmt.Errorf("reach the API server: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  connected to %s, Kubernetes %s, namespace %s\n", config.Host, version.GitVersion, ns)
	// Cleanup runs on every way out, Ctrl-C included, so it gets a context
	// that the signal does not cancel.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	}

	// Step 2: from manifest to object, and from kind to resource.
	fmt.Fprintln(stdout, "Step 2: decode the nginx manifest into unstructured.Unstructured and map its kind to a resource")
	deploy := &unstructured.Unstructured{}
	_, gvk, err := yaml.NewDecodingSerializer(unstructured.UnstructuredJSONScheme).Decode(nginxManifest, nil, deploy)
	if err != nil {
		return fmt.Errorf("decode nginx-deployment.yaml: %w", err)
	}
	// An Unstructured is a map[string]any holding the five parts of a manifest.
	replicas, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas")
	_, hasStatus := deploy.Object["status"]
	fmt.Fprintf(stdout, "  apiVersion %s, kind %s, metadata.name %s, spec.replicas %d, status present: %v\n",
		deploy.GetAPIVersion(), deploy.GetKind(), deploy.GetName(), replicas, hasStatus)
	// A manifest names a kind; URLs name a resource. The RESTMapper, built
	// from discovery, translates, exactly as kubectl apply does. The memory
	// cache means one round of discovery for all lookups.
	mapper := restmapper.NewDeferredDiscoveryRESTMapperWithContext(memory.NewMemCacheClientWithContext(disco))
	mapping, err := mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("map %s to a resource: %w", gvk, explain(err))
	}
	fmt.Fprintf(stdout, "  RESTMapper: kind %s in %s -> resource %q, scope %s\n",
		gvk.Kind, gvk.GroupVersion(), mapping.Resource.Resource, mapping.Scope.Name())
	deployments := client.Resource(mapping.Resource).Namespace(ns)

	// Step 3: create, get, list, update and convert.
	fmt.Fprintln(stdout, "Step 3: create, get and list through Resource(gvr).Namespace(ns), update a nested field, convert to typed")
	deploy.SetName("")
	deploy.SetGenerateName("demo-dynamicclient-")
	deploy.SetNamespace(ns)
	created, err := deployments.Create(ctx, deploy, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	name := created.GetName()
	defer func() {
		ctx, cancel := cleanupCtx()
		defer cancel()
		err = errors.Join(err, deleteAndWait(ctx, deployments, name))
	}()
	got, err := deployments.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  created %s, resourceVersion %s\n", got.GetName(), got.GetResourceVersion())
	list, err := deployments.List(ctx, metav1.ListOptions{LabelSelector: partOf})
	if err != nil {
		return fmt.Errorf("list deployments: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  listed %d deployment(s) with %s, kind %s\n", len(list.Items), partOf, list.GetKind())
	// Read-modify-write on a map: SetNestedField. RetryOnConflict re-reads
	// and retries if someone wrote in between.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(d.Object, int64(1), "spec", "replicas"); err != nil {
			return err
		}
		got, err = deployments.Update(ctx, d, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update spec.replicas: %w", explain(err))
	}
	replicas, _, _ = unstructured.NestedInt64(got.Object, "spec", "replicas")
	fmt.Fprintf(stdout, "  SetNestedField spec.replicas=%d, resourceVersion %s\n", replicas, got.GetResourceVersion())
	// The converter moves between the map and the generated struct.
	var typed appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &typed); err != nil {
		return fmt.Errorf("convert to appsv1.Deployment: %w", err)
	}
	back, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&typed)
	if err != nil {
		return fmt.Errorf("convert back to unstructured: %w", err)
	}
	fmt.Fprintf(stdout, "  typed: appsv1.Deployment %s, replicas %d, image %s; back to a map with %d top-level keys\n",
		typed.Name, *typed.Spec.Replicas, typed.Spec.Template.Spec.Containers[0].Image, len(back))

	// Step 4: server-side apply. The body is a partial object with only the
	// fields this manager has an opinion about. Our Create and Update own
	// the image (as an "Update" manager), so taking it over with Apply needs
	// Force, as `kubectl apply --server-side --force-conflicts` does when
	// an object moves from client-side to server-side apply.
	fmt.Fprintln(stdout, "Step 4: server-side apply with the dynamic client")
	patch := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "nginx", "image": "nginx:1.19.10"}},
		}}},
	}}
	applied, err := deployments.Apply(ctx, name, patch, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply deployment %s: %w", name, explain(err))
	}
	containers, _, _ := unstructured.NestedSlice(applied.Object, "spec", "template", "spec", "containers")
	image, _, _ := unstructured.NestedString(containers[0].(map[string]any), "image")
	var managers []string
	for _, m := range applied.GetManagedFields() {
		managers = append(managers, fmt.Sprintf("%s (%s)", m.Manager, m.Operation))
	}
	sort.Strings(managers) // the server keeps them in the order of writes, which varies
	fmt.Fprintf(stdout, "  applied image %s as %s with Force\n", image, fieldManager)
	fmt.Fprintf(stdout, "  managedFields: %s\n", strings.Join(managers, "; "))

	// Step 5: custom resources. A CRD is itself a resource, so the same
	// client creates it; no apiextensions Go module is needed.
	fmt.Fprintln(stdout, "Step 5: create a CustomResourceDefinition, wait until Established, then use CronTab objects")
	crds := client.Resource(crdGVR)
	crd := &unstructured.Unstructured{}
	if _, _, err := yaml.NewDecodingSerializer(unstructured.UnstructuredJSONScheme).Decode([]byte(crontabCRD), nil, crd); err != nil {
		return fmt.Errorf("decode CRD: %w", err)
	}
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("CRD %s already exists (another run, or a leftover: kubectl delete crd -l %s): %w", crd.GetName(), partOf, err)
		}
		return fmt.Errorf("create CRD %s: %w", crd.GetName(), explain(err))
	}
	defer func() {
		ctx, cancel := cleanupCtx()
		defer cancel()
		err = errors.Join(err, deleteAndWait(ctx, crds, crd.GetName()))
	}()
	// The API server serves the new resource only once the CRD's names are
	// accepted; until Established, requests for it get 404.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, *crdTimeout, true, func(ctx context.Context) (bool, error) {
		c, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conditions, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		for _, cond := range conditions {
			m := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s did not become Established within %s: %w", crd.GetName(), *crdTimeout, err)
	}
	fmt.Fprintf(stdout, "  CRD %s is Established: /apis/%s/%s/namespaces/%s/%s is served\n",
		crd.GetName(), crontabGVR.Group, crontabGVR.Version, ns, crontabGVR.Resource)

	crontabs := client.Resource(crontabGVR).Namespace(ns)
	defer func() {
		// Deleting the CRD would delete its objects too; deleting them
		// first shows DeleteCollection by label.
		ctx, cancel := cleanupCtx()
		defer cancel()
		derr := crontabs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: partOf})
		if derr != nil && !apierrors.IsNotFound(derr) {
			err = errors.Join(err, derr)
		}
	}()
	for i, spec := range []string{"*/5 * * * *", "0 3 * * *"} {
		ct := crontab(ns, spec, int64(i+1))
		if _, err := crontabs.Create(ctx, ct, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("create crontab: %w", explain(err))
		}
	}
	cts, err := crontabs.List(ctx, metav1.ListOptions{LabelSelector: partOf})
	if err != nil {
		return fmt.Errorf("list crontabs: %w", explain(err))
	}
	// Names are random; sort by cronSpec so the output reads the same every run.
	sort.Slice(cts.Items, func(i, j int) bool {
		a, _, _ := unstructured.NestedString(cts.Items[i].Object, "spec", "cronSpec")
		b, _, _ := unstructured.NestedString(cts.Items[j].Object, "spec", "cronSpec")
		return a < b
	})
	for _, ct := range cts.Items {
		cron, _, _ := unstructured.NestedString(ct.Object, "spec", "cronSpec")
		fmt.Fprintf(stdout, "  crontab %s: cronSpec %q\n", ct.GetName(), cron)
	}
	first := cts.Items[0]
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ct, err := crontabs.Get(ctx, first.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(ct.Object, int64(5), "spec", "replicas"); err != nil {
			return err
		}
		_, err = crontabs.Update(ctx, ct, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update crontab %s: %w", first.GetName(), explain(err))
	}
	fmt.Fprintf(stdout, "  updated %s: spec.replicas=5\n", first.GetName())
	// The CRD's OpenAPI schema is enforced by the server.
	_, err = crontabs.Create(ctx, crontab(ns, "every minute", 1), metav1.CreateOptions{})
	if err == nil {
		return errors.New("the server accepted a CronTab that breaks the schema")
	}
	if !apierrors.IsInvalid(err) {
		return fmt.Errorf("create an invalid crontab: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  an invalid crontab is rejected: %v\n", err)

	// Step 6: clean up. The deferred deletes run in reverse order: the
	// CronTabs, the CRD, then the Deployment, each waited for.
	fmt.Fprintln(stdout, "Step 6: clean up the crontabs, the CRD and the deployment, and wait until they are gone")
	return nil
}

// crontab builds a custom object: apiVersion and kind select the CRD.
func crontab(ns, cronSpec string, replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "stable.example.com/v1",
		"kind":       "CronTab",
		"metadata": map[string]any{
			"generateName": "demo-dynamicclient-",
			"namespace":    ns,
			"labels":       map[string]any{"app.kubernetes.io/part-of": "client-go-demo"},
		},
		"spec": map[string]any{"cronSpec": cronSpec, "image": "busybox:1.36", "replicas": replicas},
	}}
}

// deleteAndWait deletes one object and waits until the server no longer
// has it (finalizers, such as a CRD's cleanup of its objects, take a moment).
func deleteAndWait(ctx context.Context, r dynamic.ResourceInterface, name string) error {
	err := r.Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := r.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// explain turns the API errors a user meets into words.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		// The message names the user, verb, resource and namespace.
		return fmt.Errorf("forbidden by RBAC: %w", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the server did not accept our credentials: %w", err)
	}
	return err
}

// crontabCRD defines CronTab with a schema the server validates.
const crontabCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
  labels:
    app.kubernetes.io/part-of: client-go-demo
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [client-go-demo]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
`
