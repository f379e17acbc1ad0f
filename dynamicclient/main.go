// Command dynamicclient shows the dynamic client: any resource, built-in or
// defined by a CustomResourceDefinition, as unstructured.Unstructured and a
// GroupVersionResource instead of generated Go types.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	demoName     = "dynamicclient"
	fieldManager = "demo-" + demoName
)

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs, kube := newFlagSet()
	crdTimeout := fs.Duration("crd-timeout", 30*time.Second, "how long to wait for the CRD to become Established")
	show := fs.String("show", "", "instead of the steps, show one topic: serialization (JSON and YAML) or metadata (the metadata client)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *show != "" {
		return showTopic(ctx, *show, kube, stdout) // topics.go
	}
	config, ns, err := kube.load()
	if err != nil {
		return err
	}

	// Step 1: one client serves every resource, so it needs no scheme and
	// no Go types: only the config and, per call, a GroupVersionResource.
	fmt.Fprintln(stdout, "Step 1: build the client with dynamic.NewForConfig")
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	// One cheap, bounded request first: an unreachable server or bad
	// credentials fail here with one line, before the cached discovery
	// client of Step 2 is used (it also logs its failures through klog).
	version, err := serverVersion(ctx, disco)
	if err != nil {
		return fmt.Errorf("reach the API server: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  connected to %s, Kubernetes %s, namespace %s\n", config.Host, version, ns)

	// Step 2: a manifest names a kind, but URLs name a resource. A
	// RESTMapper built from discovery translates, as kubectl apply does, so
	// no GroupVersionResource is hard-coded; the memory cache lets one round
	// of discovery answer every lookup.
	fmt.Fprintln(stdout, "Step 2: decode the nginx manifest into unstructured.Unstructured and map its kind to a resource")
	deploy := &unstructured.Unstructured{}
	_, gvk, err := yaml.NewDecodingSerializer(unstructured.UnstructuredJSONScheme).Decode(nginxManifest, nil, deploy)
	if err != nil {
		return fmt.Errorf("decode nginx-deployment.yaml: %w", err)
	}
	parts, err := describeManifest(deploy)
	if err != nil {
		return fmt.Errorf("read nginx-deployment.yaml: %w", err)
	}
	fmt.Fprintf(stdout, "  %s\n", parts)
	mapper := restmapper.NewDeferredDiscoveryRESTMapperWithContext(memory.NewMemCacheClientWithContext(disco))
	mapping, err := mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("map %s to a resource: %w", gvk, explain(err))
	}
	fmt.Fprintf(stdout, "  RESTMapper: kind %s in %s -> resource %q, scope %s\n",
		gvk.Kind, gvk.GroupVersion(), mapping.Resource.Resource, mapping.Scope.Name())

	// Step 3: the verbs of the typed clients, on maps. A generated name
	// keeps reruns from colliding, and -n wins over the manifest's namespace.
	fmt.Fprintln(stdout, "Step 3: create, get and list through Resource(gvr).Namespace(ns), update a nested field, convert to typed")
	deploy.SetName("")
	deploy.SetGenerateName(fieldManager + "-")
	deploy.SetNamespace(ns)
	deployments := client.Resource(mapping.Resource).Namespace(ns)
	created, err := deployments.Create(ctx, deploy, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	name := created.GetName()
	defer func() { err = errors.Join(err, deleteAndWait(ctx, stdout, deployments, "deployment", name)) }()
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
	got, err = setReplicas(ctx, deployments, name, 1)
	if err != nil {
		return fmt.Errorf("update spec.replicas: %w", explain(err))
	}
	// Reading a field gives its value, whether it was there, and an error
	// if it holds another type: check both instead of asserting types.
	replicas, found, err := unstructured.NestedInt64(got.Object, "spec", "replicas")
	if err := fieldErr("spec.replicas", found, err); err != nil {
		return err
	}
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
		typed.Name, ptr.Deref(typed.Spec.Replicas, 0), typed.Spec.Template.Spec.Containers[0].Image, len(back))

	// Step 4: an apply body holds only the fields this manager has an
	// opinion about. The server tells managers apart by name and operation
	// (BuildManagerIdentifier, apimachinery's managedfields), so our Create
	// and Update, "demo-dynamicclient (Update)", own the image, and our
	// Apply must Force to take it over.
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
	image, err := containerImage(applied, "nginx")
	if err != nil {
		return fmt.Errorf("read the applied deployment: %w", err)
	}
	fmt.Fprintf(stdout, "  applied image %s as %s with Force\n", image, fieldManager)
	fmt.Fprintf(stdout, "  our managedFields entries: %s\n", ourManagers(applied))

	// Step 5: a CRD is a resource too, so the same client creates it and
	// then its objects: no apiextensions Go module is needed. Clients wait
	// for Established, not NamesAccepted (see waitEstablished in crd.go).
	fmt.Fprintln(stdout, "Step 5: create a CustomResourceDefinition, wait until Established, then use CronTab objects")
	crds := client.Resource(crdGVR)
	crdName, err := createCRD(ctx, crds)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, deleteAndWait(ctx, stdout, crds, "CRD", crdName)) }()
	if err := waitEstablished(ctx, crds, crdName, *crdTimeout); err != nil {
		return fmt.Errorf("CRD %s did not become Established within %s: %w", crdName, *crdTimeout, explain(err))
	}
	fmt.Fprintf(stdout, "  CRD %s is Established: /apis/%s/%s/namespaces/%s/%s is served\n",
		crdName, crontabGVR.Group, crontabGVR.Version, ns, crontabGVR.Resource)
	crontabs := client.Resource(crontabGVR).Namespace(ns)
	defer func() { err = errors.Join(err, deleteCronTabs(ctx, stdout, crontabs)) }()
	if err := useCronTabs(ctx, stdout, crontabs, ns); err != nil {
		return err
	}

	// Step 6: the deletes are deferred, so they also run on an error or
	// Ctrl-C, last-in first-out: the CronTabs, the CRD, the Deployment.
	fmt.Fprintln(stdout, "Step 6: clean up the crontabs, the CRD and the deployment, and wait until they are gone")
	return nil
}

// nginxManifest is the Deployment of our notes, with its five parts.
//
//go:embed nginx-deployment.yaml
var nginxManifest []byte

// setReplicas is a read-modify-write on the map. The deployment controller
// writes the object's status meanwhile, so an Update can meet a newer
// resourceVersion (409 Conflict): RetryOnConflict then reads and tries again.
func setReplicas(ctx context.Context, deployments dynamic.ResourceInterface, name string, replicas int64) (*unstructured.Unstructured, error) {
	var updated *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(d.Object, replicas, "spec", "replicas"); err != nil {
			return err
		}
		updated, err = deployments.Update(ctx, d, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	return updated, err
}

// describeManifest names the five parts of a manifest as the map holds
// them: apiVersion, kind and metadata have accessors; spec and status are
// plain nested maps.
func describeManifest(obj *unstructured.Unstructured) (string, error) {
	replicas, found, err := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if err := fieldErr("spec.replicas", found, err); err != nil {
		return "", err
	}
	status, found, err := unstructured.NestedMap(obj.Object, "status")
	if err := fieldErr("status", found, err); err != nil {
		return "", err
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("apiVersion %s, kind %s, metadata.name %s, spec.replicas %d, status %s (the server ignores status on create)",
		obj.GetAPIVersion(), obj.GetKind(), obj.GetName(), replicas, statusJSON), nil
}

// containerImage reads the image of one container of a Pod template:
// NestedSlice gives []any, and each element is checked before use.
func containerImage(obj *unstructured.Unstructured, container string) (string, error) {
	containers, found, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if err := fieldErr("spec.template.spec.containers", found, err); err != nil {
		return "", err
	}
	for i, c := range containers {
		c, ok := c.(map[string]any)
		if !ok {
			return "", fmt.Errorf("spec.template.spec.containers[%d] is not an object", i)
		}
		name, found, err := unstructured.NestedString(c, "name")
		if err := fieldErr("name", found, err); err != nil {
			return "", fmt.Errorf("spec.template.spec.containers[%d]: %w", i, err)
		}
		if name == container {
			image, found, err := unstructured.NestedString(c, "image")
			return image, fieldErr("image of container "+container, found, err)
		}
	}
	return "", fmt.Errorf("no container %q", container)
}

// ourManagers lists this demo's managedFields entries. Controllers add
// their own (kube-controller-manager for status) whenever they get to it,
// so printing every entry would change from run to run.
func ourManagers(obj *unstructured.Unstructured) string {
	var managers []string
	for _, m := range obj.GetManagedFields() {
		if m.Manager == fieldManager {
			managers = append(managers, fmt.Sprintf("%s (%s)", m.Manager, m.Operation))
		}
	}
	sort.Strings(managers) // the server keeps them in the order of writes
	return strings.Join(managers, "; ")
}

// fieldErr turns the found and err results of the unstructured.Nested*
// helpers into one error: a missing field, or one of another type.
func fieldErr(field string, found bool, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("field %s: %w", field, err)
	case !found:
		return fmt.Errorf("field %s is missing", field)
	}
	return nil
}
