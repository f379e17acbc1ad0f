package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/dynamic"
)

// showTopic runs one topic of -show instead of the six steps:
// serialize.go and metadata.go hold them. An unknown topic is a usage
// error, before any kubeconfig is read.
func showTopic(ctx context.Context, topic string, kube *kubeFlags, stdout io.Writer) error {
	if topic != "serialization" && topic != "metadata" {
		return usagef("-show %q: want serialization or metadata", topic)
	}
	config, ns, err := kube.load() // cli.go
	if err != nil {
		return err
	}
	if topic == "metadata" {
		return showMetadata(ctx, config, ns, 30*time.Second, stdout)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	return showSerialization(ctx, client, ns, stdout)
}
