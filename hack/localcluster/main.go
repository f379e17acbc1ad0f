// Command localcluster runs a real Kubernetes control plane on this machine,
// built from Go modules: embedded etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and one fake node from kwok. It
// needs no Docker and downloads nothing at run time. The same source builds
// Kubernetes v1.37.2 with go.mod, v1.36.3 with -modfile=go.1.36.mod and
// v1.35.4 with -modfile=go.1.35.mod; the Makefile's K8S variable picks one.
//
//	localcluster up                 start in the background, return when ready
//	localcluster down               stop every component and remove the state
//	localcluster stop               stop every component, keep the state
//	localcluster status             print what runs, and its memory
//	localcluster restart-apiserver  restart kube-apiserver alone; etcd keeps its data
//	localcluster compact            compact etcd up to its current revision
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/grpclog"
)

func main() {
	// Started by "up" as one component: run it.
	if len(os.Args) > 2 && os.Args[1] == "component" {
		run, ok := components[os.Args[2]]
		if !ok {
			fmt.Fprintln(os.Stderr, "localcluster: unknown component", os.Args[2])
			os.Exit(2)
		}
		os.Exit(run(os.Args[3:]))
	}
	// The etcd client's gRPC logs a warning when it is closed while still
	// connecting (gRPC v1.81, in the 1.36 and 1.35 builds, does after
	// markStart); errors still show.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("localcluster", flag.ContinueOnError)
	c := &cluster{out: out}
	fs.StringVar(&c.dir, "dir", ".localcluster", "state directory: certificates, kubeconfigs, etcd data, logs")
	fs.IntVar(&c.apiserverPort, "apiserver-port", 16443, "kube-apiserver port on 127.0.0.1")
	fs.IntVar(&c.etcdPort, "etcd-port", 12379, "etcd client port on 127.0.0.1")
	fs.IntVar(&c.peerPort, "etcd-peer-port", 12380, "etcd peer port on 127.0.0.1")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: localcluster [flags] up|down|stop|status|restart-apiserver|compact")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one command, got %q", fs.Args())
	}
	dir, err := filepath.Abs(c.dir)
	if err != nil {
		return err
	}
	c.dir = dir
	switch fs.Arg(0) {
	case "up":
		return c.up(ctx)
	case "down":
		return c.down()
	case "stop":
		c.stop()
		return nil
	case "status":
		c.status()
		return nil
	case "restart-apiserver":
		return c.restartAPIServer(ctx)
	case "compact":
		return c.compact(ctx)
	}
	return fmt.Errorf("unknown command %q", fs.Arg(0))
}

// compact compacts etcd's history up to the current revision, so that any
// watch from an older resourceVersion is answered with 410 Gone once the API
// server's watch cache no longer holds it either.
func (c *cluster) compact(ctx context.Context) error {
	return c.withEtcd(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, "compact_rev_key")
		if err != nil {
			return fmt.Errorf("read etcd revision: %w", err)
		}
		rev := resp.Header.Revision
		if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			return fmt.Errorf("compact etcd: %w", err)
		}
		fmt.Fprintf(c.out, "etcd compacted up to revision %d\n", rev)
		return nil
	})
}

// withEtcd runs f with a client of the cluster's etcd and a 10 s deadline.
func (c *cluster) withEtcd(ctx context.Context, f func(context.Context, *clientv3.Client) error) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.etcdURL()}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return f(ctx, cli)
}
