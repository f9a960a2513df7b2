// Command coordinator leads a Phalanx cluster: it plans Phi-2's layers over
// the workers registered in etcd, holds the embedding and the head, and
// serves the Inference gRPC API. See `coordinator -h`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/phalanx-llm/phalanx/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(daemon.Exit(daemon.Coordinator(ctx, os.Args[1:], os.Stderr), "coordinator"))
}
