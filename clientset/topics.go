package main

import (
	"context"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"
)

// topics are what -show runs after Step 1 instead of Steps 2-6: each a
// lesson of its own, kept out of the default run to keep it short.
var topics = map[string]func(ctx context.Context, clientset kubernetes.Interface, ns string, podTimeout time.Duration, stdout io.Writer) error{
	"selectors":    showSelectors,    // selectors.go
	"patches":      showPatches,      // patches.go
	"subresources": showSubresources, // subresources.go
}
