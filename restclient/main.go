// Command restclient shows rest.RESTClient, the lowest-level client in
// client-go, in the five steps of our notes: decide the path, load the
// kubeconfig, set up the config, create the client, call the API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	partOf     = "app.kubernetes.io/part-of=client-go-demo"
	demoLabels = partOf + ",app.kubernetes.io/name=restclient"
)

func main() {
	// Ctrl-C, kill, or a closed pipe (go run ./restclient | head) cancel ctx, and
	// run cleans up before it returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "restclient:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("restclient", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current context)")
	var namespace string
	fs.StringVar(&namespace, "namespace", "", "namespace (default: the context's namespace)")
	fs.StringVar(&namespace, "n", "", "shorthand for -namespace")
	seed := fs.Int("pods", 5, "labelled Pods to create, listed 2 per page")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each request")
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
	if *seed < 1 {
		return usageError{fmt.Errorf("-pods %d: want at least 1", *seed)}
	}

	// Step 1: decide the resource and its path.
	// The core group has no name and lives under /api; every named group
	// lives under /apis/<group>. The version follows, then the namespace and
	// the resource (always the plural, lower-case name).
	fmt.Fprintln(stdout, "Step 1: decide the resource and its path")
	fmt.Fprintln(stdout, "  pods        group \"\" (core)  version v1  ->  /api/v1/namespaces/{namespace}/pods")
	fmt.Fprintln(stdout, "  deployments group apps       version v1  ->  /apis/apps/v1/namespaces/{namespace}/deployments")

	// Step 2: load the kubeconfig exactly as kubectl does.
	fmt.Fprintln(stdout, "Step 2: load the kubeconfig as kubectl does")
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
	fmt.Fprintf(stdout, "  server %s, namespace %s\n", config.Host, ns)

	// Step 3: set up the config for a RESTClient.
	// A RESTClient talks to one group/version under one API path, with one
	// serializer. scheme.Codecs knows every built-in type;
	// WithoutConversion decodes into exactly the version we asked for.
	fmt.Fprintln(stdout, "Step 3: set up the config: APIPath, GroupVersion, serializer, user agent, rate limit")
	config.Timeout = *timeout
	config.UserAgent = "client-go-demo-restclient"
	// The client-side rate limiter: 5 requests per second on average, bursts
	// of 10. A request over the limit waits in the client (klog says
	// "Waited for ... due to client-side throttling") instead of hitting
	// the server's own limits.
	config.QPS, config.Burst = 5, 10
	// Print every request client-go really sends, from the request itself.
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper { return printRequests{rt, stdout} })
	coreConfig := rest.CopyConfig(config)
	coreConfig.APIPath = "/api"
	coreConfig.GroupVersion = &corev1.SchemeGroupVersion
	coreConfig.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	fmt.Fprintf(stdout, "  APIPath %s, GroupVersion %s, ContentType %q (empty means JSON), QPS %v, Burst %d\n",
		coreConfig.APIPath, coreConfig.GroupVersion, coreConfig.ContentType, coreConfig.QPS, coreConfig.Burst)

	// Step 4: create the clients.
	// RESTClientFor needs a GroupVersion and a serializer, and builds URLs
	// as APIPath/group/version/... UnversionedRESTClientFor allows an empty
	// GroupVersion: the right one for paths outside any group, like /version
	// or /healthz.
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
	raw, err := rootClient.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return fmt.Errorf("get /version: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  /version: %s\n", strings.Join(strings.Fields(string(raw)), " "))

	// Step 5: call the API in the fluent style.
	fmt.Fprintln(stdout, "Step 5: call the API: create, get, list page by page, patch, delete")
	// Cleanup must run even after Ctrl-C has cancelled ctx.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}
	deletePod := func(name string) error {
		ctx, cancel := cleanupCtx()
		defer cancel()
		err := coreClient.Delete().Namespace(ns).Resource("pods").Name(name).Do(ctx).Error()
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	labels := map[string]string{"app.kubernetes.io/part-of": "client-go-demo", "app.kubernetes.io/name": "restclient"}
	var podNames []string
	for i := range *seed {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: "demo-restclient-",
				Labels:       labels,
			},
			Spec: corev1.PodSpec{
				Containers:                    []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
				TerminationGracePeriodSeconds: ptr.To[int64](0),
			},
		}
		var created corev1.Pod
		if i == 0 {
			fmt.Fprintln(stdout, "  create a Pod: Post().Namespace(ns).Resource(\"pods\").Body(pod)")
		}
		err := coreClient.Post().Namespace(ns).Resource("pods").Body(pod).Do(ctx).Into(&created)
		if err != nil {
			return fmt.Errorf("create pod in namespace %q: %w", ns, explain(err))
		}
		podNames = append(podNames, created.Name)
		defer func() { err = errors.Join(err, deletePod(created.Name)) }()
		if i == 0 {
			fmt.Fprintf(stdout, "  created pod %s (resourceVersion %s); %d more to list in pages:\n", created.Name, created.ResourceVersion, *seed-1)
		}
	}

	var pod corev1.Pod
	fmt.Fprintln(stdout, "  get it back: Get().Namespace(ns).Resource(\"pods\").Name(name).Do(ctx).Into(&pod)")
	if err := coreClient.Get().Namespace(ns).Resource("pods").Name(podNames[0]).Do(ctx).Into(&pod); err != nil {
		return fmt.Errorf("get pod %s: %w", podNames[0], explain(err))
	}
	fmt.Fprintf(stdout, "  got pod %s, phase %q, uid %s\n", pod.Name, pod.Status.Phase, pod.UID)

	// ListOptions become query parameters through the ParameterCodec. The
	// server returns at most Limit items and a Continue token for the rest.
	fmt.Fprintln(stdout, "  list with VersionedParams(&ListOptions{LabelSelector, Limit: 2}, scheme.ParameterCodec), following Continue")
	opts := metav1.ListOptions{LabelSelector: demoLabels, Limit: 2}
	var listed []string
	for page := 1; ; page++ {
		var list corev1.PodList
		err := coreClient.Get().Namespace(ns).Resource("pods").
			VersionedParams(&opts, scheme.ParameterCodec).Do(ctx).Into(&list)
		if err != nil {
			return fmt.Errorf("list pods (page %d): %w", page, explain(err))
		}
		for _, p := range list.Items {
			listed = append(listed, p.Name)
		}
		fmt.Fprintf(stdout, "  page %d: %d pods, continue token present: %v\n", page, len(list.Items), list.Continue != "")
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	fmt.Fprintf(stdout, "  listed %d pods in all\n", len(listed))

	// A JSON merge patch sends only what changes.
	fmt.Fprintln(stdout, "  patch a label: Patch(types.MergePatchType).Body(...)")
	patch := []byte(`{"metadata":{"labels":{"demo-step":"patched"}}}`)
	if err := coreClient.Patch(types.MergePatchType).Namespace(ns).Resource("pods").Name(pod.Name).
		Body(patch).Do(ctx).Into(&pod); err != nil {
		return fmt.Errorf("patch pod %s: %w", pod.Name, explain(err))
	}
	fmt.Fprintf(stdout, "  label demo-step=%s, resourceVersion now %s\n", pod.Labels["demo-step"], pod.ResourceVersion)

	fmt.Fprintln(stdout, "  delete it: Delete().Namespace(ns).Resource(\"pods\").Name(name)")
	if err := coreClient.Delete().Namespace(ns).Resource("pods").Name(pod.Name).Do(ctx).Error(); err != nil {
		return fmt.Errorf("delete pod %s: %w", pod.Name, explain(err))
	}

	// The same list, in JSON and in protobuf. Protobuf is smaller and faster
	// to decode; the Accept header lists JSON after it as the fallback for
	// servers (or custom resources) that cannot speak protobuf.
	fmt.Fprintln(stdout, "Content negotiation: the same list as JSON and as protobuf")
	protoConfig := rest.CopyConfig(coreConfig)
	protoConfig.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	protoConfig.ContentType = "application/vnd.kubernetes.protobuf"
	protoClient, err := rest.RESTClientFor(protoConfig)
	if err != nil {
		return fmt.Errorf("create protobuf REST client: %w", err)
	}
	for _, c := range []*rest.RESTClient{coreClient, protoClient} {
		var contentType string
		body, err := c.Get().Namespace(ns).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: demoLabels}, scheme.ParameterCodec).
			Do(ctx).ContentType(&contentType).Raw()
		if err != nil {
			return fmt.Errorf("list pods: %w", explain(err))
		}
		fmt.Fprintf(stdout, "  %-36s %6d bytes\n", contentType, len(body))
	}

	// Only the config changes for a named group: APIPath /apis and the
	// group's GroupVersion. The calls look the same.
	fmt.Fprintln(stdout, "A named group: the same calls for apps/v1 Deployments, only the config changes")
	appsConfig := rest.CopyConfig(coreConfig)
	appsConfig.APIPath = "/apis"
	appsConfig.GroupVersion = &appsv1.SchemeGroupVersion
	appsClient, err := rest.RESTClientFor(appsConfig)
	if err != nil {
		return fmt.Errorf("create apps/v1 REST client: %w", err)
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "demo-restclient-", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			// No replicas: the point is the URL, not the Pods.
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "restclient"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "restclient"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	var createdDeploy appsv1.Deployment
	if err := appsClient.Post().Namespace(ns).Resource("deployments").Body(deploy).Do(ctx).Into(&createdDeploy); err != nil {
		return fmt.Errorf("create deployment in namespace %q: %w", ns, explain(err))
	}
	defer func() {
		ctx, cancel := cleanupCtx()
		defer cancel()
		derr := appsClient.Delete().Namespace(ns).Resource("deployments").Name(createdDeploy.Name).Do(ctx).Error()
		if !apierrors.IsNotFound(derr) {
			err = errors.Join(err, derr)
		}
	}()
	fmt.Fprintf(stdout, "  created deployment %s\n", createdDeploy.Name)
	fmt.Fprintln(stdout, "Cleanup: delete everything this demo created")
	return nil
}

// printRequests prints each request client-go sends, and the same request
// as curl through `kubectl proxy` (which listens on 127.0.0.1:8001 and adds
// the credentials itself).
type printRequests struct {
	next http.RoundTripper
	out  io.Writer
}

func (p printRequests) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	fmt.Fprintf(p.out, "    %s %s\n", req.Method, u.String())
	u.Scheme, u.Host = "http", "127.0.0.1:8001"
	curl := "curl"
	if req.Method != http.MethodGet {
		curl += " -X " + req.Method
	}
	if accept := req.Header.Get("Accept"); strings.Contains(accept, "protobuf") {
		curl += fmt.Sprintf(" -H 'Accept: %s'", accept)
	}
	if req.Body != nil && req.Method != http.MethodDelete {
		curl += fmt.Sprintf(" -H 'Content-Type: %s' -d @body.json", req.Header.Get("Content-Type"))
	}
	fmt.Fprintf(p.out, "    curl: %s '%s'\n", curl, u.String())
	return p.next.RoundTrip(req)
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
