package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
)

var deploymentsGVR = appsv1.SchemeGroupVersion.WithResource("deployments")

// showSerialization (-show serialization) turns objects into JSON and YAML
// and back with apimachinery's serializers: first a typed Deployment, then
// the same Deployment as the server returns it, unstructured, cleaned of
// what the server owns so that `kubectl apply -f` takes the output.
func showSerialization(ctx context.Context, client dynamic.Interface, ns string, stdout io.Writer) (err error) {
	// The scheme (client-go's scheme.Scheme knows every built-in kind)
	// creates objects when decoding and names their kind when encoding.
	yamlSerializer := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{Yaml: true})
	prettyJSON := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{Pretty: true})

	fmt.Fprintln(stdout, "Serialization: a typed appsv1.Deployment to YAML and JSON and back")
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{GenerateName: fieldManager + "-", Namespace: ns, Labels: map[string]string{partOfKey: partOfValue}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"run": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"run": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	// A Go struct has an empty TypeMeta; EncoderForVersion writes
	// apiVersion and kind from the scheme, as the typed clients do.
	yamlEncoder := scheme.Codecs.EncoderForVersion(yamlSerializer, appsv1.SchemeGroupVersion)
	yamlBytes, err := runtime.Encode(yamlEncoder, deploy)
	if err != nil {
		return fmt.Errorf("encode deployment as YAML: %w", err)
	}
	fmt.Fprintln(stdout, "  YAML from EncoderForVersion(json serializer with Yaml: true, apps/v1):")
	printIndented(stdout, yamlBytes)
	jsonBytes, err := runtime.Encode(scheme.Codecs.EncoderForVersion(prettyJSON, appsv1.SchemeGroupVersion), deploy)
	if err != nil {
		return fmt.Errorf("encode deployment as JSON: %w", err)
	}
	// UniversalDeserializer recognizes JSON, YAML and protobuf and returns
	// the Go type the scheme registered for the apiVersion and kind.
	for _, encoded := range []struct {
		format string
		data   []byte
	}{{"YAML", yamlBytes}, {"pretty JSON", jsonBytes}} {
		obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(encoded.data, nil, nil)
		if err != nil {
			return fmt.Errorf("decode the %s: %w", encoded.format, err)
		}
		decoded, ok := obj.(*appsv1.Deployment)
		if !ok {
			return fmt.Errorf("decode the %s: got a %T, want *appsv1.Deployment", encoded.format, obj)
		}
		decoded.TypeMeta = metav1.TypeMeta{} // the original has none
		fmt.Fprintf(stdout, "  %s, %d bytes, decoded by UniversalDeserializer: %T (%s), equal to the original: %v\n",
			encoded.format, len(encoded.data), obj, gvk, apiequality.Semantic.DeepEqual(decoded, deploy))
	}

	// The server's copy, unstructured: it adds status, managedFields, uid,
	// resourceVersion, generation, creationTimestamp and defaults.
	fmt.Fprintln(stdout, "Serialization: the server's copy as unstructured.Unstructured, ready for kubectl apply -f")
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(deploy)
	if err != nil {
		return fmt.Errorf("convert deployment to unstructured: %w", err)
	}
	u := &unstructured.Unstructured{Object: content}
	u.SetAPIVersion("apps/v1")
	u.SetKind("Deployment")
	deployments := client.Resource(deploymentsGVR).Namespace(ns)
	created, err := deployments.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	defer func() {
		err = errors.Join(err, deleteAndWait(ctx, stdout, deployments, "deployment", created.GetName()))
	}()
	removed := applyReady(created)
	fmt.Fprintf(stdout, "  created %s; removed what the server owns: %s\n", created.GetName(), strings.Join(removed, ", "))
	// The same serializer encodes unstructured objects: it has no Go type
	// to look up, so apiVersion and kind come from the map.
	var buf bytes.Buffer
	if err := yamlSerializer.Encode(created, &buf); err != nil {
		return fmt.Errorf("encode unstructured deployment as YAML: %w", err)
	}
	fmt.Fprintln(stdout, "  YAML (the server filled in the defaults; kubectl apply -f takes it as it is):")
	printIndented(stdout, buf.Bytes())
	back := &unstructured.Unstructured{}
	if _, _, err := yamlSerializer.Decode(buf.Bytes(), nil, back); err != nil {
		return fmt.Errorf("decode the unstructured YAML: %w", err)
	}
	fmt.Fprintf(stdout, "  decoded back into unstructured.Unstructured: equal: %v\n", apiequality.Semantic.DeepEqual(back.Object, created.Object))
	return nil
}

// applyReady removes from obj the fields a manifest must not carry: the
// server writes them, and apply would send them back as if they were ours
// (an old resourceVersion even makes the apply fail with a conflict). It
// returns what it removed, in a fixed order.
func applyReady(obj *unstructured.Unstructured) []string {
	var removed []string
	for _, path := range [][]string{
		{"status"},
		{"metadata", "managedFields"},
		{"metadata", "resourceVersion"},
		{"metadata", "uid"},
		{"metadata", "creationTimestamp"},
		{"metadata", "generation"},
		{"metadata", "generateName"},
		// Written by the deployment controller, once it has seen the object.
		{"metadata", "annotations", "deployment.kubernetes.io/revision"},
	} {
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, path...); found {
			unstructured.RemoveNestedField(obj.Object, path...)
			removed = append(removed, strings.Join(path, "."))
		}
	}
	if len(obj.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", "annotations")
	}
	return removed
}

// printIndented prints YAML or JSON indented by four spaces.
func printIndented(stdout io.Writer, b []byte) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintf(stdout, "    %s\n", line)
	}
}
