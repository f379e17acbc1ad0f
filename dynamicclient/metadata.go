package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stypes "k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
)

var configMapsGVR = corev1.SchemeGroupVersion.WithResource("configmaps")

// metadataObjects is how many ConfigMaps -show metadata lists; each
// carries 8 KiB of data the metadata client never downloads.
const metadataObjects = 5

// showMetadata (-show metadata) lists and watches with the metadata client
// (k8s.io/client-go/metadata): names, labels, annotations, owners and
// resourceVersions of any resource, as PartialObjectMetadata, without spec,
// data or status. Garbage collectors and quota controllers work this way.
func showMetadata(ctx context.Context, config *rest.Config, ns string, timeout time.Duration, stdout io.Writer) (err error) {
	fmt.Fprintln(stdout, "Metadata client: metadata.NewForConfig lists and watches PartialObjectMetadata of any resource")
	// Each client counts the bytes of the responses it reads.
	var dynBytes, metaBytes atomic.Int64
	dynConfig, metaConfig := rest.CopyConfig(config), rest.CopyConfig(config)
	dynConfig.Wrap(countBytes(&dynBytes))
	metaConfig.Wrap(countBytes(&metaBytes))
	dyn, err := dynamic.NewForConfig(dynConfig)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	meta, err := metadata.NewForConfig(metaConfig)
	if err != nil {
		return fmt.Errorf("create metadata client: %w", err)
	}

	// This run's ConfigMaps carry a label of their own, so the lists, the
	// watch and the cleanup never see another run's.
	runID := fieldManager + "-" + utilrand.String(5)
	selector := "app.kubernetes.io/instance=" + runID
	configMaps := dyn.Resource(configMapsGVR).Namespace(ns)
	// The metadata client deletes too: one DeleteCollection, deferred
	// before the first create, which a Ctrl-C may cut after it reached
	// the server. Its error counts once a ConfigMap may exist: after a
	// refused create it would only repeat that error.
	mayExist := false
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		derr := meta.Resource(configMapsGVR).Namespace(ns).DeleteCollection(cctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector})
		switch {
		case derr != nil && (mayExist || ctx.Err() != nil):
			err = errors.Join(err, fmt.Errorf("delete configmaps -l %s: %w", selector, explain(derr)))
		case derr == nil && mayExist:
			fmt.Fprintln(stdout, "  deleted the rest with one DeleteCollection through the metadata client")
		}
	}()
	for range metadataObjects {
		cm := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{
				"generateName": fieldManager + "-",
				"labels":       map[string]any{partOfKey: partOfValue, "app.kubernetes.io/instance": runID},
			},
			"data": map[string]any{"payload": strings.Repeat("x", 8<<10)},
		}}
		if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("create configmap in namespace %q: %w", ns, explain(err))
		}
		mayExist = true
	}
	fmt.Fprintf(stdout, "  created %d ConfigMaps with 8 KiB of data each\n", metadataObjects)

	// Count only the two lists: the creates' answers were whole objects.
	dynBytes.Store(0)
	metaBytes.Store(0)
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full, err := configMaps.List(lctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return fmt.Errorf("list configmaps: %w", explain(err))
	}
	partial, err := meta.Resource(configMapsGVR).Namespace(ns).List(lctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return fmt.Errorf("list configmaps' metadata: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  the same list, dynamic client:  %d items, %d bytes (JSON, whole objects)\n", len(full.Items), dynBytes.Load())
	fmt.Fprintf(stdout, "  the same list, metadata client: %d items, %d bytes (protobuf, PartialObjectMetadata)\n", len(partial.Items), metaBytes.Load())
	if len(full.Items) != metadataObjects || len(partial.Items) != metadataObjects {
		return fmt.Errorf("list configmaps -l %s: %d and %d items, want %d: does someone else delete them?",
			selector, len(full.Items), len(partial.Items), metadataObjects)
	}
	first := partial.Items[0]
	fmt.Fprintf(stdout, "  an item: %T %s, labels %d, resourceVersion %s; no data, no spec, no status\n",
		&first, first.Name, len(first.Labels), first.ResourceVersion)

	// A watch from the list's resourceVersion sees every later change, as
	// PartialObjectMetadata; a change to data alone arrives as a MODIFIED
	// with only a new resourceVersion.
	fmt.Fprintln(stdout, "  watch from the list's resourceVersion, then label one ConfigMap and delete another")
	w, err := meta.Resource(configMapsGVR).Namespace(ns).Watch(lctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: partial.ResourceVersion})
	if err != nil {
		return fmt.Errorf("watch configmaps' metadata: %w", explain(err))
	}
	defer w.Stop()
	labelPatch := []byte(`{"metadata":{"labels":{"demo-step":"watched"}}}`)
	if _, err := meta.Resource(configMapsGVR).Namespace(ns).Patch(lctx, first.Name, k8stypes.MergePatchType, labelPatch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("patch configmap %s: %w", first.Name, explain(err))
	}
	second := partial.Items[1].Name
	if err := meta.Resource(configMapsGVR).Namespace(ns).Delete(lctx, second, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete configmap %s: %w", second, explain(err))
	}
	for seen := 0; seen < 2; {
		select {
		case <-lctx.Done():
			return fmt.Errorf("watch configmaps' metadata: %w", lctx.Err())
		case ev, ok := <-w.ResultChan():
			if !ok {
				return errors.New("watch configmaps' metadata: the server closed the watch")
			}
			if ev.Type == watch.Error { // a *metav1.Status, e.g. 410 Gone
				return fmt.Errorf("watch configmaps' metadata: %w", apierrors.FromObject(ev.Object))
			}
			obj, ok := ev.Object.(*metav1.PartialObjectMetadata)
			if !ok {
				return fmt.Errorf("watch configmaps' metadata: %s event with a %T", ev.Type, ev.Object)
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			fmt.Fprintf(stdout, "  %s %T %s, label demo-step=%q\n", ev.Type, obj, obj.Name, obj.Labels["demo-step"])
			seen++
		}
	}
	return nil
}

// countBytes returns a rest.Config.Wrap function whose transport adds the
// bytes of every response body read to n. They are counted after Go's
// transport has undone any gzip (the API server compresses large answers
// only; these are small).
func countBytes(n *atomic.Int64) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(req)
			if err == nil {
				resp.Body = &countingBody{resp.Body, n}
			}
			return resp, err
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
