// Command worker serves a contiguous range of Phi-2's layers to the
// coordinator, as etcd's plan says. See `worker -h`.
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
	os.Exit(daemon.Exit(daemon.Worker(ctx, os.Args[1:], os.Stderr), "worker"))
}
