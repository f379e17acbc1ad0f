package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// The custom resource this demo defines: CronTab, the example of the
// Kubernetes documentation on CustomResourceDefinitions. A CRD's name is
// <plural>.<group>, so it is the same in every run and namespace.
var (
	crdGVR     = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crontabGVR = schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}
)

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

// createCRD creates the CronTab CRD and returns its name.
func createCRD(ctx context.Context, crds dynamic.ResourceInterface) (string, error) {
	crd := &unstructured.Unstructured{}
	if _, _, err := yaml.NewDecodingSerializer(unstructured.UnstructuredJSONScheme).Decode([]byte(crontabCRD), nil, crd); err != nil {
		return "", fmt.Errorf("decode CRD: %w", err)
	}
	_, err := crds.Create(ctx, crd, metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("CRD %s already exists (another run, or a leftover: kubectl delete crd -l %s): %w", crd.GetName(), partOf, err)
	}
	if err != nil {
		return "", fmt.Errorf("create CRD %s: %w", crd.GetName(), explain(err))
	}
	return crd.GetName(), nil
}

// waitEstablished polls the CRD until its Established condition is True,
// and stops early if its names are refused.
//
// Why Established and not NamesAccepted, in k8s.io/apiextensions-apiserver
// v0.37.2:
//   - The naming controller (pkg/controller/status/naming_controller.go)
//     sets NamesAccepted=True together with Established=False, reason
//     Installing.
//   - An API server serves the custom resource's URLs as soon as its own
//     informer sees NamesAccepted=True (crdHandler.ServeHTTP in
//     pkg/apiserver/customresource_handler.go). Other API servers of the
//     cluster may not have seen it yet and answer 404.
//   - The same handler then queues the CRD for the establishing controller
//     (pkg/controller/establish/establishing_controller.go): at once with
//     one API server, after 5 s with --apiserver-count > 1, so the others
//     can catch up. It sets Established=True.
//   - Discovery (customresource_discovery_controller.go) and the OpenAPI
//     controllers list the resource only once it is Established, so a
//     RESTMapper, kubectl, or anything that looks resources up in
//     discovery finds it only then.
//   - NamesAccepted can turn False again when the CRD's names are changed
//     to ones another CRD holds; the handler keeps serving a CRD that is
//     Established (it asks for NamesAccepted or Established).
//
// So Established is the condition that means "usable by every client".
func waitEstablished(ctx context.Context, crds dynamic.ResourceInterface, name string, timeout time.Duration) error {
	return poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conditions, err := crdConditions(crd)
		if err != nil {
			return false, err
		}
		// A name another CRD holds stays taken: waiting will not help.
		if c := meta.FindStatusCondition(conditions, "NamesAccepted"); c != nil && c.Status == metav1.ConditionFalse {
			return false, fmt.Errorf("names not accepted: %s: %s", c.Reason, c.Message)
		}
		return meta.IsStatusConditionTrue(conditions, "Established"), nil
	})
}

// crdConditions reads status.conditions without the apiextensions types:
// CRD conditions have the fields of a metav1.Condition that matter here
// (type, status, reason, message), and the converter fills only the fields
// of the struct it is given.
func crdConditions(crd *unstructured.Unstructured) ([]metav1.Condition, error) {
	var c struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crd.Object, &c); err != nil {
		return nil, fmt.Errorf("read status.conditions of CRD %s: %w", crd.GetName(), err)
	}
	return c.Status.Conditions, nil
}

// useCronTabs creates two CronTabs, lists and updates them, and shows the
// server enforcing the CRD's schema.
func useCronTabs(ctx context.Context, stdout io.Writer, crontabs dynamic.ResourceInterface, ns string) error {
	// A create in the 2 s after the Established condition changed waits 2 s
	// in the server, so that in a cluster of several API servers the others
	// serve the resource by the time the object is used
	// (customresource_handler.go, serveResource): here, the first create.
	for i, spec := range []string{"*/5 * * * *", "0 3 * * *"} {
		if _, err := crontabs.Create(ctx, crontab(ns, spec, int64(i+1)), metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("create crontab: %w", explain(err))
		}
	}
	list, err := crontabs.List(ctx, metav1.ListOptions{LabelSelector: partOf})
	if err != nil {
		return fmt.Errorf("list crontabs: %w", explain(err))
	}
	// Names are random; sorted by cronSpec the output reads the same every run.
	cronSpecs := map[string]string{}
	for _, ct := range list.Items {
		spec, found, err := unstructured.NestedString(ct.Object, "spec", "cronSpec")
		if err := fieldErr("spec.cronSpec", found, err); err != nil {
			return fmt.Errorf("crontab %s: %w", ct.GetName(), err)
		}
		cronSpecs[ct.GetName()] = spec
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return cronSpecs[list.Items[i].GetName()] < cronSpecs[list.Items[j].GetName()]
	})
	for _, ct := range list.Items {
		fmt.Fprintf(stdout, "  crontab %s: cronSpec %q\n", ct.GetName(), cronSpecs[ct.GetName()])
	}
	if len(list.Items) == 0 {
		return errors.New("list crontabs: none found")
	}

	first := list.Items[0].GetName()
	var updated *unstructured.Unstructured
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ct, err := crontabs.Get(ctx, first, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(ct.Object, int64(5), "spec", "replicas"); err != nil {
			return err
		}
		updated, err = crontabs.Update(ctx, ct, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update crontab %s: %w", first, explain(err))
	}
	replicas, found, err := unstructured.NestedInt64(updated.Object, "spec", "replicas")
	if err := fieldErr("spec.replicas", found, err); err != nil {
		return fmt.Errorf("crontab %s: %w", first, err)
	}
	fmt.Fprintf(stdout, "  updated %s: spec.replicas=%d\n", first, replicas)

	// The CRD's OpenAPI schema is enforced by the server, with its own words.
	_, err = crontabs.Create(ctx, crontab(ns, "every minute", 1), metav1.CreateOptions{FieldManager: fieldManager})
	if err == nil {
		return errors.New("the server accepted a CronTab that breaks the schema")
	}
	if !apierrors.IsInvalid(err) {
		return fmt.Errorf("create an invalid crontab: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  an invalid crontab is rejected: %v\n", err)
	return nil
}

// crontab builds a custom object: apiVersion and kind select the CRD.
func crontab(ns, cronSpec string, replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": crontabGVR.GroupVersion().String(),
		"kind":       "CronTab",
		"metadata": map[string]any{
			"generateName": fieldManager + "-",
			"namespace":    ns,
			"labels":       map[string]any{partOfKey: partOfValue},
		},
		"spec": map[string]any{"cronSpec": cronSpec, "image": "busybox:1.36", "replicas": replicas},
	}}
}

// deleteCronTabs removes the demo's CronTabs with one labelled
// DeleteCollection. Deleting the CRD would remove them too (its finalizer
// deletes every object of the resource), but slower and out of sight.
func deleteCronTabs(ctx context.Context, stdout io.Writer, crontabs dynamic.ResourceInterface) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	err := retry.OnError(retry.DefaultBackoff, transient, func() error {
		return crontabs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: partOf})
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete crontabs: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  crontabs with %s deleted\n", partOf)
	return nil
}
