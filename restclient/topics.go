package main

import (
	"context"
	"io"
	"time"
)

// showTopic runs one topic of -show instead of the five steps:
// kubeconfig.go and warnings.go hold them.
func showTopic(ctx context.Context, topic string, kube *kubeFlags, timeout time.Duration, stdout io.Writer) error {
	switch topic {
	case "kubeconfig":
		return showKubeconfig(ctx, kube, timeout, stdout)
	case "warnings":
		config, ns, err := kube.load() // cli.go
		if err != nil {
			return err
		}
		return showWarnings(ctx, config, ns, timeout, stdout)
	}
	return usagef("-show %q: want kubeconfig or warnings", topic)
}
