package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// printWarnings is a rest.WarningHandlerWithContext: client-go calls it
// with each Warning header of a response (code 299, agent "-", the text).
// Without one, client-go logs warnings through klog (rest.WarningLogger);
// kubectl prints them as "Warning: ...".
type printWarnings struct{ out io.Writer }

func (p printWarnings) HandleWarningHeaderWithContext(_ context.Context, code int, agent, text string) {
	fmt.Fprintf(p.out, "  warning from the server (code %d, agent %q): %s\n", code, agent, text)
}

// showWarnings (-show warnings) provokes a warning: a ConfigMap with a field
// ConfigMaps do not have, sent with ?fieldValidation=Warn, which the server
// drops with a Warning header. The same body with Strict is refused.
func showWarnings(ctx context.Context, config *rest.Config, ns string, timeout time.Duration, stdout io.Writer) (err error) {
	fmt.Fprintln(stdout, "Warnings: a rest.WarningHandlerWithContext in the rest.Config prints what the server warns about")
	c := rest.CopyConfig(config)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	// WarningHandlerWithContext wins over WarningHandler when both are set
	// (maybeSetWarningHandler in rest/config.go).
	c.WarningHandlerWithContext = printWarnings{stdout}
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return fmt.Errorf("create REST client: %w", err)
	}
	// Raw JSON, because a Go struct cannot carry a field its type lacks.
	body := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"demo-restclient-","labels":{"` +
		partOfKey + `":"` + partOfValue + `"}},"data":{"greeting":"hello"},"spec":{"replicas":1}}`)

	fmt.Fprintln(stdout, `  create a ConfigMap with an unknown field "spec", ?fieldValidation=Warn`)
	var created corev1.ConfigMap
	if err := client.Post().Namespace(ns).Resource("configmaps").Param("fieldValidation", "Warn").
		Body(body).Timeout(timeout).Do(ctx).Into(&created); err != nil {
		return fmt.Errorf("create configmap in namespace %q: %w", ns, explain(err))
	}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		derr := client.Delete().Namespace(ns).Resource("configmaps").Name(created.Name).Do(cctx).Error()
		if derr != nil && !apierrors.IsNotFound(derr) {
			err = fmt.Errorf("delete configmap %s: %w", created.Name, explain(derr))
		}
	}()
	var got corev1.ConfigMap
	raw, err := client.Get().Namespace(ns).Resource("configmaps").Name(created.Name).Timeout(timeout).Do(ctx).Raw()
	if err != nil {
		return fmt.Errorf("get configmap %s: %w", created.Name, explain(err))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("decode configmap %s: %w", created.Name, err)
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		return fmt.Errorf("decode configmap %s: %w", created.Name, err)
	}
	_, hasSpec := fields["spec"]
	fmt.Fprintf(stdout, "  created configmap %s: data %v, field spec stored: %v\n", got.Name, got.Data, hasSpec)

	// Strict is kubectl's default (--validate=strict) and answers 400.
	// client-go sends no fieldValidation unless asked, and then the server
	// warns (fieldValidation in apiserver's endpoints/handlers/rest.go).
	fmt.Fprintln(stdout, "  the same body with ?fieldValidation=Strict")
	err = client.Post().Namespace(ns).Resource("configmaps").Param("fieldValidation", "Strict").
		Body(body).Timeout(timeout).Do(ctx).Error()
	switch {
	case err == nil:
		// Not expected; the labelled DeleteCollection of the run's cleanup
		// (restclient's Step 5) does not run for a topic, so say how.
		return fmt.Errorf("create configmap with fieldValidation=Strict: the server accepted an unknown field (remove it: kubectl delete cm -l %s)", partOf)
	case !apierrors.IsBadRequest(err):
		return fmt.Errorf("create configmap with fieldValidation=Strict: %w", explain(err))
	}
	fmt.Fprintf(stdout, "  refused, 400 Bad Request: %v\n", err)
	return nil
}
