package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"

	// As in kube-apiserver's own main package.
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	_ "time/tzdata"
)

// Each component runs in a process of its own, started by "up" as this same
// binary with the arguments "component <name> <flags>": in one process their
// global flags, metrics registries and feature gates would collide.
// (hyperkube also held every component in one binary, but never started one:
// it ran the component named by its first argument or by its own name.)
var components = map[string]func(args []string) int{
	"etcd":           runEtcd,
	"kube-apiserver": func(args []string) int { return runCobra(apiserver.NewAPIServerCommand(), args) },
	"kube-controller-manager": func(args []string) int {
		return runCobra(controllermanager.NewControllerManagerCommand(), args)
	},
	"kube-scheduler": func(args []string) int { return runCobra(scheduler.NewSchedulerCommand(), args) },
	"kwok":           runKwok,
}

func runCobra(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// runEtcd starts an embedded etcd member listening on loopback only.
func runEtcd(args []string) int {
	fs := pflag.NewFlagSet("etcd", pflag.ContinueOnError)
	dir := fs.String("data-dir", "", "data directory")
	client := fs.String("listen-client-url", "", "client URL")
	peer := fs.String("listen-peer-url", "", "peer URL")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "localcluster"
	cfg.Dir = *dir
	cu, err := url.Parse(*client)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A throwaway single-member cluster for demos and tests: skipping fsync
	// makes writes (and the 10,000-object reflector run) much faster, at the
	// cost of losing the last writes on a power cut.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "warn"
	// The metrics listener would be another port on the machine.
	cfg.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start etcd:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd is ready on", *client)
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd did not become ready in 60s")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		return 0
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
}

// runKwok runs kwok's own command. kwok reads its --config (Stages and
// options) from os.Args before cobra parses the rest, so both see args.
func runKwok(args []string) int {
	os.Args = append([]string{"kwok"}, args...)
	// Kubernetes packages linked into this binary register a non-bool
	// --version on the global flag set, which cobra would merge into kwok's
	// command next to its own bool --version.
	pflag.CommandLine = pflag.NewFlagSet("kwok", pflag.ExitOnError)
	fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	fs.ParseErrorsAllowlist.UnknownFlags = true
	fs.Usage = func() {}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, _ = kwoklog.InitFlags(ctx, fs)
	ctx, err := kwokconfig.InitFlags(ctx, fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kwok config:", err)
		return 1
	}
	cmd := kwokcmd.NewCommand(ctx)
	cmd.PersistentFlags().AddFlagSet(fs)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil && !strings.Contains(err.Error(), "context canceled") {
		fmt.Fprintln(os.Stderr, "kwok:", err)
		return 1
	}
	return 0
}
