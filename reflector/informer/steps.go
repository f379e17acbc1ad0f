package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// payload makes each ConfigMap about 1 KiB, which Step 8's metadata-only
// informer leaves out.
var payload = strings.Repeat("x", 1024)

// demoObjects are the ConfigMaps the demo creates, by name in the order of
// creation (deleted ones stay in the list).
type demoObjects struct {
	client typedcorev1.ConfigMapInterface
	ns     string
	names  []string
}

func (d *demoObjects) create(ctx context.Context, tier string) (*corev1.ConfigMap, error) {
	cm, err := d.client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "demo-" + demoName + "-",
			Labels:       map[string]string{partOfKey: partOfValue, "app.kubernetes.io/name": demoName},
		},
		Data: map[string]string{"tier": tier, "payload": payload},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create configmap in namespace %q: %w", d.ns, explain(err))
	}
	d.names = append(d.names, cm.Name)
	return cm, nil
}

// createInitial creates three ConfigMaps before the informer starts.
func (d *demoObjects) createInitial(ctx context.Context, out io.Writer) error {
	var made []string
	for _, tier := range []string{"frontend", "frontend", "backend"} {
		cm, err := d.create(ctx, tier)
		if err != nil {
			return err
		}
		made = append(made, fmt.Sprintf("%s (tier=%s)", cm.Name, tier))
	}
	fmt.Fprintf(out, "  created %s, before the informer starts\n", strings.Join(made, ", "))
	return nil
}

// change creates, updates and deletes one ConfigMap each; both handlers
// report every change.
func (d *demoObjects) change(ctx context.Context, out io.Writer, events *eventLog) error {
	fmt.Fprintln(out, "-> create a ConfigMap (tier=backend)")
	if _, err := d.create(ctx, "backend"); err != nil {
		return err
	}
	if err := events.print(ctx, 2); err != nil {
		return err
	}
	fmt.Fprintf(out, "-> update %s: tier frontend -> backend\n", d.names[0])
	cm, err := d.client.Get(ctx, d.names[0], metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get %s: %w", d.names[0], explain(err))
	}
	cm.Data["tier"] = "backend"
	if _, err := d.client.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s: %w", d.names[0], explain(err))
	}
	if err := events.print(ctx, 2); err != nil {
		return err
	}
	fmt.Fprintf(out, "-> delete %s\n", d.names[2])
	if err := d.client.Delete(ctx, d.names[2], metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", d.names[2], explain(err))
	}
	return events.print(ctx, 2)
}

// deleteAll deletes the demo's ConfigMaps with one labelled
// DeleteCollection. When nothing was created, its error is ignored: the
// create's error already says what is wrong (a missing namespace, say).
func (d *demoObjects) deleteAll(ctx context.Context) error {
	err := d.client.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector})
	if len(d.names) == 0 {
		return nil
	}
	return err
}

// compareReads reads the same ConfigMap through the lister and through the
// clientset, and counts the requests each sends.
func compareReads(ctx context.Context, out io.Writer, config *rest.Config, requests *requestLog, lister listerscorev1.ConfigMapLister, ns, name string) error {
	const reads = 100
	before := requests.count()
	all, err := lister.ConfigMaps(ns).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list from the cache: %w", err)
	}
	_, missing := lister.ConfigMaps(ns).Get("no-such-configmap")
	fmt.Fprintf(out, "  lister.ConfigMaps(ns).List: %d objects; Get of a name not in the cache: %v (apierrors.IsNotFound: %v)\n",
		len(all), missing, apierrors.IsNotFound(missing))
	start := time.Now()
	for range reads {
		if _, err := lister.ConfigMaps(ns).Get(name); err != nil {
			return fmt.Errorf("get %s from the cache: %w", name, err)
		}
	}
	perCall := time.Since(start) / reads
	fmt.Fprintf(out, "  %d lister Gets:    %d requests, %s per call\n", reads, requests.count()-before, perCall)

	// client-go's default client-side rate limit (QPS 5, Burst 10) would
	// make 100 Gets take 18 s: raise it for this comparison.
	fast := rest.CopyConfig(config) // keeps the counting transport
	fast.QPS, fast.Burst = 1000, 1000
	clientset, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	before = requests.count()
	start = time.Now()
	for range reads {
		if _, err := clientset.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("get %s: %w", name, explain(err))
		}
	}
	perCall = time.Since(start) / reads
	fmt.Fprintf(out, "  %d clientset Gets: %d requests, %s per call (client-side rate limit raised to QPS 1000 for this)\n", reads, requests.count()-before, perCall)
	return nil
}

// printIndex asks our index and the namespace index the factory adds.
func printIndex(out io.Writer, indexer cache.TypedIndexer[*corev1.ConfigMap], ns string) error {
	for _, tier := range []string{"frontend", "backend"} {
		cms, err := indexer.ByTypedIndex(tierIndex, tier)
		if err != nil {
			return fmt.Errorf("read index %s: %w", tierIndex, err)
		}
		fmt.Fprintf(out, "  ByIndex(%q, %q): %v\n", tierIndex, tier, names(cms))
	}
	cms, err := indexer.ByTypedIndex(cache.NamespaceIndex, ns)
	if err != nil {
		return fmt.Errorf("read index %s: %w", cache.NamespaceIndex, err)
	}
	fmt.Fprintf(out, "  ByIndex(cache.NamespaceIndex, %q): %d objects (the index every informer of a factory has)\n", ns, len(cms))
	return nil
}

func names(cms []*corev1.ConfigMap) []string {
	var n []string
	for _, cm := range cms {
		n = append(n, cm.Name)
	}
	slices.Sort(n)
	return n
}

// showResync waits for one resync of every cached object in both
// handlers, and counts the requests meanwhile.
func showResync(ctx context.Context, out io.Writer, events *eventLog, requests *requestLog, lister listerscorev1.ConfigMapNamespaceLister, resync time.Duration) error {
	if resync == 0 {
		fmt.Fprintln(out, "Step 5: resync is off (-resync 0): UpdateFunc is called for changes only")
		return nil
	}
	fmt.Fprintf(out, "Step 5: resync every %s: each handler's UpdateFunc gets every cached object again\n", resync)
	cms, err := lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list from the cache: %w", err)
	}
	before, start := events.resyncCounts(), requests.count()
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 3*resync+10*time.Second, true, func(context.Context) (bool, error) {
		now := events.resyncCounts()
		for _, h := range []string{"typed", "classic"} {
			for _, cm := range cms {
				if now[h][cm.Name] <= before[h][cm.Name] {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for a resync: %w", err)
	}
	fmt.Fprintf(out, "  both handlers' UpdateFunc got all %d cached objects with old.ResourceVersion == new.ResourceVersion: no change, so they skip them\n", len(cms))
	fmt.Fprintf(out, "  requests meanwhile: %d: a resync replays the cache to the handlers; it does not list again\n", requests.count()-start)
	return nil
}

// updateFromCopy changes a ConfigMap the right way: a deep copy of the
// cached object, changed and sent. The cache replaces its object when the
// watch event arrives; the one read before stays as it was.
func updateFromCopy(ctx context.Context, out io.Writer, clientset kubernetes.Interface, lister listerscorev1.ConfigMapNamespaceLister, events *eventLog, name string) error {
	cached, err := lister.Get(name)
	if err != nil {
		return fmt.Errorf("get %s from the cache: %w", name, err)
	}
	cm := cached.DeepCopy() // cached is shared with every other reader of the cache
	cm.Data["updatedBy"] = "step-6"
	updated, err := clientset.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update %s: %w", name, explain(err))
	}
	fmt.Fprintf(out, "-> lister Get %s, DeepCopy, set data[\"updatedBy\"] on the copy, Update: resourceVersion %s\n", name, updated.ResourceVersion)
	if err := events.print(ctx, 2); err != nil {
		return err
	}
	now, err := lister.Get(name)
	if err != nil {
		return fmt.Errorf("get %s from the cache: %w", name, err)
	}
	_, changed := cached.Data["updatedBy"]
	fmt.Fprintf(out, "  the lister now returns a new object at resourceVersion %s; the one it returned before is unchanged (resourceVersion %s, data[\"updatedBy\"] set: %v)\n",
		now.ResourceVersion, cached.ResourceVersion, changed)
	return nil
}

// explainFill says which calls filled the cache (the informer's requests
// of Step 1) and what sits between the Reflector and the cache.
func explainFill(out io.Writer, informerRequests []*request) {
	gates := clientfeatures.FeatureGates()
	path := "LIST, then WATCH from the list's resourceVersion"
	if len(informerRequests) > 0 && informerRequests[0].url.Query().Get("sendInitialEvents") == "true" {
		path = "WatchList: one WATCH with sendInitialEvents=true, ended by the k8s.io/initial-events-end bookmark"
	}
	fmt.Fprintf(out, "  this run: %s (WatchListClient feature gate: %v)\n", path, gates.Enabled(clientfeatures.WatchListClient))
	fmt.Fprintf(out, "  Reflector -> RealFIFO (InOrderInformers: %v, AtomicFIFO: %v) -> indexer, then each handler's own buffer and goroutine\n",
		gates.Enabled(clientfeatures.InOrderInformers), gates.Enabled(clientfeatures.AtomicFIFO))
	fmt.Fprintln(out, "  with KUBE_FEATURE_WatchListClient=false: LIST resourceVersion=0 limit=500, then WATCH from the list's resourceVersion")
}

// compareWithServer checks that the lister holds what a fresh consistent
// LIST returns, names and resourceVersions, for a few seconds if the
// informer is a moment behind.
func compareWithServer(ctx context.Context, clientset kubernetes.Interface, ns string, lister listerscorev1.ConfigMapNamespaceLister) (n int, rv string, err error) {
	var mismatch error
	perr := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cached, err := lister.List(labels.Everything())
		if err != nil {
			return false, fmt.Errorf("list from the cache: %w", err)
		}
		list, err := clientset.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			if transient(err) {
				return false, nil
			}
			return false, fmt.Errorf("list configmaps to check the cache: %w", explain(err))
		}
		server := map[string]string{}
		for _, cm := range list.Items {
			server[cm.Name] = cm.ResourceVersion
		}
		mismatch = nil
		for _, cm := range cached {
			if server[cm.Name] != cm.ResourceVersion {
				mismatch = fmt.Errorf("%s has resourceVersion %q in the cache, %q on the server", cm.Name, cm.ResourceVersion, server[cm.Name])
			}
		}
		if mismatch == nil && len(cached) != len(server) {
			mismatch = fmt.Errorf("%d objects in the cache, %d on the server", len(cached), len(server))
		}
		n, rv = len(cached), list.ResourceVersion
		return mismatch == nil, nil
	})
	switch {
	case perr != nil && mismatch != nil:
		return 0, "", fmt.Errorf("the cache differs from the server: %w", mismatch)
	case perr != nil:
		return 0, "", perr
	}
	return n, rv, nil
}

// transient reports the errors that retrying may cure: the server is busy,
// restarting or slow (5xx, 429, timeouts).
func transient(err error) bool {
	var netErr net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		errors.As(err, &netErr) && netErr.Timeout()
}
