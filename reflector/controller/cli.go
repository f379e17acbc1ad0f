// cli.go is the same, byte for byte, in every demo folder (a test compares
// the copies): what every demo needs around its lesson. main() and its exit
// codes, the flags kubectl users expect, loading the kubeconfig as kubectl
// does, and the words for the API errors a user meets. main.go holds the
// lesson and names the demo (demoName). Copy a folder and this file with it.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// The label every object a demo creates carries, so leftovers are found
// with kubectl get ... -l app.kubernetes.io/part-of=client-go-demo.
const (
	partOfKey   = "app.kubernetes.io/part-of"
	partOfValue = "client-go-demo"
	partOf      = partOfKey + "=" + partOfValue
)

func main() {
	// Ctrl-C and kill cancel ctx; run cleans up before it returns, because
	// os.Exit below skips deferred calls. SIGPIPE is deliberately not in this
	// list: a program that asks for SIGPIPE gets it for every broken socket
	// too (a dropped API server connection), not only for stdout.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Once cancelled, signals are ours again: a second Ctrl-C during a slow
	// cleanup ends the program at once.
	context.AfterFunc(ctx, stop)
	// Ignoring SIGPIPE turns a write to a closed stdout (go run ./demo | head)
	// into an EPIPE error instead of killing the process mid-run, and
	// stdoutWriter turns that error into a cancel, so cleanup still runs.
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancelCause(ctx)
	err := run(ctx, os.Args[1:], stdoutWriter{os.Stdout, cancel})
	// Say why the run was cancelled: a signal, or a closed stdout. (The
	// signal's cause also answers errors.Is(cause, context.Canceled).)
	if cause := context.Cause(ctx); errors.Is(err, context.Canceled) && cause != nil && cause != context.Canceled {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	cancel(nil)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", demoName, err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// stdoutWriter cancels the run when the output cannot be written, as when
// the reader of a pipe has gone: the demo then stops and cleans up, as on
// Ctrl-C.
type stdoutWriter struct {
	w      io.Writer
	cancel context.CancelCauseFunc
}

func (s stdoutWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.cancel(fmt.Errorf("write output: %w", err))
	}
	return n, err
}

// usageError is a bad flag or argument: one line of error, exit status 2.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// kubeFlags are the flags every demo shares with kubectl.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

// newFlagSet returns the demo's flag set with -kubeconfig, -context,
// -namespace (-n) and klog's flags (-v=6 logs every request, -v=8 their
// bodies, as in kubectl). The demo adds its own flags, then calls parseFlags.
func newFlagSet() (*flag.FlagSet, *kubeFlags) {
	fs := flag.NewFlagSet(demoName, flag.ContinueOnError)
	var k kubeFlags
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context (default: the current context)")
	fs.StringVar(&k.namespace, "namespace", "", "namespace (default: the context's namespace)")
	fs.StringVar(&k.namespace, "n", "", "shorthand for -namespace")
	klog.InitFlags(fs)
	return fs, &k
}

// parseFlags parses args; -h prints the flags to stdout and returns
// flag.ErrHelp, anything else wrong is a one-line usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usagef("%w (see -h)", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q (see -h)", fs.Args())
	}
	return nil
}

// load reads the configuration as kubectl does: -kubeconfig, else
// $KUBECONFIG (a list of files, merged), else ~/.kube/config, else the
// in-cluster service account. It returns the config and the namespace: -n,
// else the context's, else "default".
//
// The config has no Timeout on purpose: rest.Config.Timeout becomes
// http.Client.Timeout and would cut every watch and informer after that
// long. Bound single requests with a context deadline instead.
func (k *kubeFlags) load() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	overrides.Context.Namespace = k.namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	config, err := loader.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, "", errors.New("no kubeconfig: pass -kubeconfig, set $KUBECONFIG, or create ~/.kube/config")
	}
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("read namespace from kubeconfig: %w", err)
	}
	// Shows in the API server's logs and audit events.
	config.UserAgent = "client-go-demo-" + demoName
	return config, ns, nil
}

// cleanupContext is for deferred deletes: it outlives a cancelled ctx
// (Ctrl-C), so cleanup still reaches the server, but not forever.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// explain puts the API errors a user meets into words; the server's message
// already names the user, verb, resource and namespace.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), " cannot "):
		// The authorizer's words (User "x" cannot <verb> resource ...),
		// from apiserver's endpoints/handlers/responsewriters/errors.go.
		return fmt.Errorf("forbidden by RBAC: %w", err)
	case apierrors.IsForbidden(err):
		// Admission answers 403 too: a quota exceeded, a namespace being
		// deleted.
		return fmt.Errorf("refused by admission: %w", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the server did not accept our credentials: %w", err)
	}
	return err
}
