// Command restclient shows rest.RESTClient, the lowest-level client in
// client-go, in the five steps of our notes: decide the path, load the
// kubeconfig, set up the config, create the client, call the API.
// cli.go holds main() and the kubeconfig flags; printrequests.go prints
// every request as curl; objects.go builds the Pod and the Deployment.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

const demoName = "restclient"

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs, kube := newFlagSet()
	pods := fs.Int("pods", 5, "labelled Pods to create, listed 2 per page")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each request, sent to the server as ?timeout=")
	show := fs.String("show", "", "instead of the steps, show one topic: kubeconfig (contexts, config from bytes, in-cluster) or warnings")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *pods < 1 || *timeout <= 0 {
		return usagef("-pods %d -timeout %s: want at least 1 Pod and a positive timeout", *pods, *timeout)
	}
	if *show != "" {
		return showTopic(ctx, *show, kube, *timeout, stdout) // topics.go
	}

	// Step 1: a RESTClient builds URLs, it does not look them up: the
	// caller knows the group, the version and the plural resource name.
	fmt.Fprintln(stdout, "Step 1: decide the resource and its path")
	fmt.Fprintln(stdout, "  pods        group \"\" (core)  version v1  ->  /api/v1/namespaces/{namespace}/pods")
	fmt.Fprintln(stdout, "  deployments group apps       version v1  ->  /apis/apps/v1/namespaces/{namespace}/deployments")

	// Step 2: kubectl's rules (-kubeconfig, $KUBECONFIG, ~/.kube/config,
	// in-cluster), so the demo talks to the cluster kubectl talks to.
	fmt.Fprintln(stdout, "Step 2: load the kubeconfig as kubectl does")
	config, ns, err := kube.load() // cli.go
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  server %s, namespace %s\n", config.Host, ns)

	// Step 3: a RESTClient serves one group/version under one API path and
	// decodes with one serializer; the kubeconfig says none of that.
	fmt.Fprintln(stdout, "Step 3: set up the config: APIPath, GroupVersion, serializer, rate limit")
	// The client-side token bucket (these are client-go's defaults): over
	// it a request waits in the client rather than failing.
	config.QPS, config.Burst = 5, 10
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper { return printRequests{rt, stdout} })
	coreConfig := rest.CopyConfig(config)
	coreConfig.APIPath = "/api"
	coreConfig.GroupVersion = &corev1.SchemeGroupVersion
	// scheme.Codecs knows every built-in type; WithoutConversion decodes
	// into exactly the version asked for.
	coreConfig.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	fmt.Fprintf(stdout, "  APIPath %s, GroupVersion %s, ContentType %q (empty means JSON), QPS %v, Burst %d, UserAgent %s\n",
		coreConfig.APIPath, coreConfig.GroupVersion, coreConfig.ContentType, coreConfig.QPS, coreConfig.Burst, coreConfig.UserAgent)

	// Step 4: RESTClientFor requires a GroupVersion and puts APIPath/group/
	// version before every path; UnversionedRESTClientFor requires none, for
	// paths outside any group (/version, /healthz), set whole with AbsPath.
	fmt.Fprintln(stdout, "Step 4: create the clients with RESTClientFor and UnversionedRESTClientFor")
	coreClient, err := rest.RESTClientFor(coreConfig)
	if err != nil {
		return fmt.Errorf("create REST client: %w", err)
	}
	rootConfig := rest.CopyConfig(coreConfig)
	rootConfig.GroupVersion = nil
	rootClient, err := rest.UnversionedRESTClientFor(rootConfig)
	if err != nil {
		return fmt.Errorf("create unversioned REST client: %w", err)
	}
	// Request.Timeout bounds one request (a context deadline) and asks the
	// server to stop at the same time (?timeout=). Not rest.Config.Timeout:
	// it becomes http.Client.Timeout and would also cut every watch.
	raw, err := rootClient.Get().AbsPath("/version").Timeout(*timeout).Do(ctx).Raw()
	if err != nil {
		return fmt.Errorf("get /version: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  /version: %s\n", strings.Join(strings.Fields(string(raw)), " "))

	// Step 5: every call is verb, then where, then what, then Do: the
	// fluent Request builds the URL and encodes the body.
	fmt.Fprintln(stdout, "Step 5: call the API: create, get, list page by page, patch, delete")
	// A label unique to this run: the list and the cleanup below select by
	// it, so they never touch another run's Pods in the same namespace.
	runID := "demo-restclient-" + utilrand.String(5)
	selector := instanceKey + "=" + runID
	// One DeleteCollection for all of this run's Pods, deferred before the
	// first create: a create cut short (Ctrl-C, -timeout) may still have
	// reached the server.
	mayExist := false
	defer func() { err = errors.Join(err, deletePods(ctx, coreClient, ns, selector, mayExist, stdout)) }()
	fmt.Fprintln(stdout, `  create a Pod: Post().Namespace(ns).Resource("pods").Body(pod)`)
	// Into decodes onto the object it is given (JSON: maps merge, absent
	// fields keep old values), so each answer gets a fresh variable.
	var created corev1.Pod
	if err := coreClient.Post().Namespace(ns).Resource("pods").Body(newPod(runID)).Timeout(*timeout).Do(ctx).Into(&created); err != nil {
		return fmt.Errorf("create pod in namespace %q: %w", ns, explain(err))
	}
	mayExist = true
	name := created.Name
	fmt.Fprintf(stdout, "  created pod %s (resourceVersion %s); %d more to list in pages:\n", name, created.ResourceVersion, *pods-1)
	for range *pods - 1 {
		if err := coreClient.Post().Namespace(ns).Resource("pods").Body(newPod(runID)).Timeout(*timeout).Do(ctx).Error(); err != nil {
			return fmt.Errorf("create pod in namespace %q: %w", ns, explain(err))
		}
	}

	fmt.Fprintln(stdout, `  get it back: Get().Namespace(ns).Resource("pods").Name(name).Do(ctx).Into(&pod)`)
	var pod corev1.Pod
	if err := coreClient.Get().Namespace(ns).Resource("pods").Name(name).Timeout(*timeout).Do(ctx).Into(&pod); err != nil {
		return fmt.Errorf("get pod %s: %w", name, explain(err))
	}
	// Not the phase: it moves from Pending to Running while the scheduler
	// and the node work, so two runs would print different lines.
	fmt.Fprintf(stdout, "  got pod %s, uid %s, image %s\n", pod.Name, pod.UID, pod.Spec.Containers[0].Image)

	fmt.Fprintln(stdout, "  list with VersionedParams(&ListOptions{LabelSelector, Limit: 2}, scheme.ParameterCodec), following Continue")
	listed, err := listInPages(ctx, coreClient, ns, selector, *timeout, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  listed %d pods in all\n", listed)

	// A JSON merge patch sends only what changes; the server merges it.
	fmt.Fprintln(stdout, "  patch a label: Patch(types.MergePatchType).Body(...)")
	patch := []byte(`{"metadata":{"labels":{"demo-step":"patched"}}}`)
	var patched corev1.Pod
	if err := coreClient.Patch(types.MergePatchType).Namespace(ns).Resource("pods").Name(name).
		Body(patch).Timeout(*timeout).Do(ctx).Into(&patched); err != nil {
		return fmt.Errorf("patch pod %s: %w", name, explain(err))
	}
	fmt.Fprintf(stdout, "  label demo-step=%s, resourceVersion now %s\n", patched.Labels["demo-step"], patched.ResourceVersion)

	fmt.Fprintln(stdout, `  delete it: Delete().Namespace(ns).Resource("pods").Name(name)`)
	if err := coreClient.Delete().Namespace(ns).Resource("pods").Name(name).Timeout(*timeout).Do(ctx).Error(); err != nil {
		return fmt.Errorf("delete pod %s: %w", name, explain(err))
	}

	fmt.Fprintln(stdout, "Content negotiation: the same list as JSON and as protobuf")
	if err := compareEncodings(ctx, coreConfig, ns, selector, *timeout, stdout); err != nil {
		return err
	}

	// A named group differs only in the config: APIPath /apis and the
	// group's GroupVersion. The calls read the same.
	fmt.Fprintln(stdout, "A named group: the same calls for apps/v1 Deployments, only the config changes")
	appsConfig := rest.CopyConfig(coreConfig)
	appsConfig.APIPath = "/apis"
	appsConfig.GroupVersion = &appsv1.SchemeGroupVersion
	appsClient, err := rest.RESTClientFor(appsConfig)
	if err != nil {
		return fmt.Errorf("create apps/v1 REST client: %w", err)
	}
	var deploy appsv1.Deployment
	if err := appsClient.Post().Namespace(ns).Resource("deployments").Body(newDeployment(runID)).
		Timeout(*timeout).Do(ctx).Into(&deploy); err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	defer func() { err = errors.Join(err, deleteDeployment(ctx, appsClient, ns, deploy.Name)) }()
	fmt.Fprintf(stdout, "  created deployment %s\n", deploy.Name)
	fmt.Fprintln(stdout, "Cleanup: delete everything this demo created")
	return nil
}

// listInPages lists the Pods that match selector, two per request: the
// server returns at most Limit items and a Continue token for the rest,
// which goes into the next request until it comes back empty.
func listInPages(ctx context.Context, c *rest.RESTClient, ns, selector string, timeout time.Duration, stdout io.Writer) (int, error) {
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 2}
	listed := 0
	for page := 1; ; page++ {
		var list corev1.PodList
		// ListOptions become query parameters through the ParameterCodec.
		err := c.Get().Namespace(ns).Resource("pods").
			VersionedParams(&opts, scheme.ParameterCodec).Timeout(timeout).Do(ctx).Into(&list)
		if err != nil {
			return listed, fmt.Errorf("list pods (page %d): %w", page, explain(err))
		}
		listed += len(list.Items)
		fmt.Fprintf(stdout, "  page %d: %d pods, continue token present: %v\n", page, len(list.Items), list.Continue != "")
		if list.Continue == "" {
			return listed, nil
		}
		opts.Continue = list.Continue
	}
}

// deletePods deletes every Pod that matches selector with one request, a
// DELETE on the collection. It runs deferred, so its context outlives a
// cancelled ctx (Ctrl-C, a closed stdout).
//
// Its error counts once a Pod may exist: after a create the server refused
// (Forbidden, say), a failed cleanup would only repeat that error.
func deletePods(ctx context.Context, c *rest.RESTClient, ns, selector string, mayExist bool, stdout io.Writer) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	var deleted corev1.PodList
	err := c.Delete().Namespace(ns).Resource("pods").
		VersionedParams(&metav1.ListOptions{LabelSelector: selector}, scheme.ParameterCodec).Do(cctx).Into(&deleted)
	if err != nil && !mayExist && ctx.Err() == nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete pods -l %s: %w", selector, explain(err))
	}
	fmt.Fprintf(stdout, "  deleted %d pods with one DeleteCollection\n", len(deleted.Items))
	return nil
}

// deleteDeployment deletes the Deployment; the garbage collector then
// deletes its ReplicaSet, because a Deployment's default propagation is
// background. It runs deferred, with cleanupContext, so it still reaches
// the server after Ctrl-C.
func deleteDeployment(ctx context.Context, c *rest.RESTClient, ns, name string) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	err := c.Delete().Namespace(ns).Resource("deployments").Name(name).Do(cctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete deployment %s: %w", name, explain(err))
	}
	return nil
}

// compareEncodings lists the same Pods as JSON and as protobuf (smaller,
// and cheaper to decode) and prints the size of each response. The
// protobuf client keeps JSON in its Accept header as the fallback, for
// resources without a protobuf encoding (custom resources).
func compareEncodings(ctx context.Context, config *rest.Config, ns, selector string, timeout time.Duration, stdout io.Writer) error {
	protoConfig := rest.CopyConfig(config)
	protoConfig.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	protoConfig.ContentType = "application/vnd.kubernetes.protobuf"
	for _, c := range []*rest.Config{config, protoConfig} {
		client, err := rest.RESTClientFor(c)
		if err != nil {
			return fmt.Errorf("create REST client for %s: %w", c.ContentType, err)
		}
		var contentType string
		body, err := client.Get().Namespace(ns).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: selector}, scheme.ParameterCodec).
			Timeout(timeout).Do(ctx).ContentType(&contentType).Raw()
		if err != nil {
			return fmt.Errorf("list pods: %w", explain(err))
		}
		fmt.Fprintf(stdout, "  %-36s %6d bytes\n", contentType, len(body))
	}
	return nil
}
