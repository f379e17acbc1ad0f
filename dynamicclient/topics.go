package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// showTopic runs one topic of -show instead of the six steps:
// serialize.go and metadata.go hold them.
func showTopic(ctx context.Context, topic string, config *rest.Config, ns string, stdout io.Writer) error {
	if topic == "metadata" {
		return showMetadata(ctx, config, ns, 30*time.Second, stdout)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	return showSerialization(ctx, client, ns, stdout)
}
