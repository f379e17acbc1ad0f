package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// showKubeconfig (-show kubeconfig) looks inside Step 2: the contexts of the
// loaded kubeconfig, a rest.Config made from kubeconfig bytes, and the
// in-cluster config the loader falls back to. It prints no credentials:
// only what kind they are.
func showKubeconfig(ctx context.Context, kube *kubeFlags, timeout time.Duration, stdout io.Writer) error {
	// The same loading rules as kube.load() in cli.go. RawConfig is the
	// merged kubeconfig as files hold it (every context, every user), where
	// ClientConfig resolves only the current context into a rest.Config.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kube.kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kube.context})
	raw, err := loader.RawConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	if len(raw.Contexts) == 0 {
		// RawConfig never falls back to the in-cluster config; only
		// ClientConfig does (tools/clientcmd/merged_client_builder.go), so
		// in a Pod without a kubeconfig there is nothing to list here.
		return errors.New("no kubeconfig contexts (in a Pod without a kubeconfig, the loader's ClientConfig uses the in-cluster config instead): pass -kubeconfig or set $KUBECONFIG")
	}
	current := raw.CurrentContext
	if kube.context != "" {
		current = kube.context
	}
	if raw.Contexts[current] == nil {
		return fmt.Errorf("context %q is not in the kubeconfig", current)
	}

	fmt.Fprintln(stdout, "Kubeconfig: the contexts of RawConfig(), as kubectl config get-contexts prints them")
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE")
	names := make([]string, 0, len(raw.Contexts))
	for name := range raw.Contexts {
		names = append(names, name)
	}
	sort.Strings(names) // a map: kubectl sorts them too
	for _, name := range names {
		c, mark := raw.Contexts[name], ""
		if name == current {
			mark = "*"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", mark, name, c.Cluster, c.AuthInfo, c.Namespace)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ctxt := raw.Contexts[current]
	fmt.Fprintf(stdout, "  context %s uses credentials of kind: %s\n", current, credentialKind(raw.AuthInfos[ctxt.AuthInfo]))

	// A kubeconfig held in a Secret (Cluster API stores one per cluster)
	// or in an environment variable arrives as bytes, not as a file. Here
	// the bytes come from the loaded kubeconfig: only the current context
	// (MinifyConfig), with certificate files read into the bytes
	// (FlattenConfig), as a Secret must hold them.
	fmt.Fprintln(stdout, "Kubeconfig from bytes: clientcmd.RESTConfigFromKubeConfig, for a kubeconfig in a Secret or an environment variable")
	raw.CurrentContext = current
	if err := clientcmdapi.MinifyConfig(&raw); err != nil {
		return fmt.Errorf("minify kubeconfig: %w", err)
	}
	if err := clientcmdapi.FlattenConfig(&raw); err != nil {
		return fmt.Errorf("flatten kubeconfig: %w", err)
	}
	kubeconfigBytes, err := clientcmd.Write(raw)
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	// Never print these bytes: they hold the credentials.
	fmt.Fprintf(stdout, "  the current context, minified and flattened: %d bytes (not printed: they hold credentials)\n", len(kubeconfigBytes))
	config, err := clientcmd.RESTConfigFromKubeConfig(kubeconfigBytes)
	if err != nil {
		return fmt.Errorf("read kubeconfig bytes: %w", err)
	}
	config.UserAgent = "client-go-demo-" + demoName
	fmt.Fprintf(stdout, "  rest.Config: server %s, client certificate %v, bearer token %v, exec plugin %v\n",
		config.Host, len(config.CertData) > 0 || config.CertFile != "", config.BearerToken != "" || config.BearerTokenFile != "", config.ExecProvider != nil)
	user, err := whoAmI(ctx, config, timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  SelfSubjectReview with that config: the server knows us as %s\n", user)

	// In a Pod, the loader finds no kubeconfig and falls back to the Pod's
	// service account (DeferredLoadingClientConfig.ClientConfig in
	// tools/clientcmd/merged_client_builder.go).
	fmt.Fprintln(stdout, "In-cluster config: rest.InClusterConfig, the loader's last resort")
	if _, err := rest.InClusterConfig(); errors.Is(err, rest.ErrNotInCluster) {
		fmt.Fprintf(stdout, "  not in a Pod: %v\n", err)
	} else if err != nil {
		fmt.Fprintf(stdout, "  in a Pod, but: %v\n", err)
	} else {
		fmt.Fprintln(stdout, "  in a Pod: the service account's token and CA from /var/run/secrets/kubernetes.io/serviceaccount")
	}
	return nil
}

// credentialKind names how a kubeconfig user authenticates, never the
// credential itself.
func credentialKind(u *clientcmdapi.AuthInfo) string {
	switch {
	case u == nil:
		return "none (no such user)"
	case u.Exec != nil:
		return "exec plugin " + u.Exec.Command + " (client-go runs it for a token or certificate)"
	case u.AuthProvider != nil:
		return "auth-provider " + u.AuthProvider.Name + " (client-go keeps only the oidc plugin, for programs that import it; gcp and azure were removed: use an exec plugin)"
	case len(u.ClientCertificateData) > 0:
		return "client certificate (embedded data)"
	case u.ClientCertificate != "":
		return "client certificate (file)"
	case u.TokenFile != "":
		return "bearer token file (re-read as it changes)"
	case u.Token != "":
		return "bearer token"
	case u.Username != "":
		return "basic auth"
	}
	return "none (anonymous)"
}

// whoAmI asks the server who config authenticates as: a SelfSubjectReview
// (authentication.k8s.io/v1), which every authenticated user may create.
func whoAmI(ctx context.Context, config *rest.Config, timeout time.Duration) (string, error) {
	c := rest.CopyConfig(config)
	c.APIPath = "/apis"
	c.GroupVersion = &authenticationv1.SchemeGroupVersion
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return "", fmt.Errorf("create authentication.k8s.io/v1 REST client: %w", err)
	}
	var review authenticationv1.SelfSubjectReview
	if err := client.Post().Resource("selfsubjectreviews").Body(&authenticationv1.SelfSubjectReview{}).
		Timeout(timeout).Do(ctx).Into(&review); err != nil {
		return "", fmt.Errorf("create selfsubjectreview: %w", explain(err))
	}
	return fmt.Sprintf("%s, groups %v", review.Status.UserInfo.Username, review.Status.UserInfo.Groups), nil
}
