package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/phalanx-llm/phalanx/internal/daemon"
)

func runCoordinatorCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	return daemonErr(daemon.Coordinator(ctx, args, stderr))
}

func runWorkerCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	return daemonErr(daemon.Worker(ctx, args, stderr))
}

func daemonErr(err error) error {
	if errors.Is(err, daemon.ErrUsage) {
		return usageError{err}
	}
	return err
}

func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// runUp starts an embedded-etcd coordinator and N workers on this machine,
// as child processes of this binary, and serves until interrupted.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("up", stderr)
	model := fs.String("model", "", "model directory (Hugging Face layout)")
	workers := fs.Int("workers", 2, "number of worker processes")
	listen := fs.String("listen", "127.0.0.1:7070", "coordinator's Inference API address")
	etcdAddr := fs.String("etcd", "", "address the embedded etcd serves (default: a free port)")
	data := fs.String("data", "", "directory for etcd data and logs (default: a temporary one)")
	threads := fs.Int("threads", 0, "kernel threads per worker (0: CPUs / workers)")
	wireDT := fs.String("wire", "f32", "activation dtype between stages: f32 or f16")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usagef("--model is required")
	}
	if *workers < 1 || *workers > 64 {
		return usagef("--workers %d outside [1, 64]", *workers)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *data == "" {
		if *data, err = os.MkdirTemp("", "phalanx-up-"); err != nil {
			return err
		}
		defer os.RemoveAll(*data)
	}
	if *etcdAddr == "" {
		if *etcdAddr, err = freePort("127.0.0.1"); err != nil {
			return err
		}
	}
	if *threads == 0 {
		*threads = max(1, numCPU() / *workers)
	}
	cluster := "up-" + strconv.Itoa(os.Getpid())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var cmds []*exec.Cmd
	start := func(name string, a ...string) error {
		logf, err := os.Create(filepath.Join(*data, name+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(self, a...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return err
		}
		cmds = append(cmds, cmd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			logf.Close()
			if ctx.Err() == nil {
				fmt.Fprintf(stderr, "phalanx up: %s exited: %v (log: %s)\n", name, err, logf.Name())
			}
		}()
		return nil
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Signal(os.Interrupt)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			for _, c := range cmds {
				c.Process.Kill()
			}
			wg.Wait()
		}
	}()
	if err := start("coordinator", "coordinator", "--model", *model, "--listen", *listen, "--etcd", *etcdAddr,
		"--embedded-etcd", filepath.Join(*data, "etcd"), "--cluster", cluster, "--min-workers", strconv.Itoa(*workers),
		"--threads", strconv.Itoa(*threads), "--wire", *wireDT); err != nil {
		return err
	}
	if err := waitHealthy(ctx, *listen, "", 60*time.Second); err != nil {
		return fmt.Errorf("coordinator did not start: %w (log: %s)", err, filepath.Join(*data, "coordinator.log"))
	}
	for i := 0; i < *workers; i++ {
		addr, err := freePort("127.0.0.1")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("worker-%d", i+1)
		if err := start(name, "worker", "--model", *model, "--listen", addr, "--etcd", *etcdAddr, "--cluster", cluster,
			"--name", name, "--threads", strconv.Itoa(*threads)); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "phalanx up: coordinator %s, %d workers, etcd %s; logs in %s\n", *listen, *workers, *etcdAddr, *data)
	if err := waitHealthy(ctx, *listen, "phalanx.v1.Inference", 10*time.Minute); err != nil {
		return fmt.Errorf("the cluster did not become ready: %w (logs: %s)", err, *data)
	}
	fmt.Fprintf(stdout, "ready: phalanx generate --coordinator %s --prompt '…'   |   phalanx status --coordinator %s\n", *listen, *listen)
	<-ctx.Done()
	fmt.Fprintln(stderr, "phalanx up: stopping")
	return nil
}

// waitHealthy polls the gRPC health service until service is SERVING.
func waitHealthy(ctx context.Context, addr, service string, timeout time.Duration) error {
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last == nil {
		last = errors.New("not serving")
	}
	return fmt.Errorf("%s after %v: %v", addr, timeout, last)
}
