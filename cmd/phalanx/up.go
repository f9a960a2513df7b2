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

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"

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

// localCluster is a coordinator with embedded etcd and N workers, run as
// child processes of this binary.
type localCluster struct {
	Listen, Etcd, Data string
	stop               func()
}

type localOptions struct {
	model, listen, etcd, data, wire string
	workers, threads                int
	extra                           []string // more coordinator flags
}

// startLocal starts the processes and waits until the cluster serves,
// reporting progress on stderr. stop ends them.
func startLocal(ctx context.Context, o localOptions, stderr io.Writer) (*localCluster, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	lc := &localCluster{Listen: o.listen, Etcd: o.etcd, Data: o.data}
	var cleanup []func()
	if lc.Data == "" {
		if lc.Data, err = os.MkdirTemp("", "phalanx-up-"); err != nil {
			return nil, err
		}
		dir := lc.Data
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
	}
	if lc.Etcd == "" {
		if lc.Etcd, err = freePort("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	if o.threads == 0 {
		o.threads = max(1, numCPU()/o.workers)
	}
	cluster := "up-" + strconv.Itoa(os.Getpid())
	pctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var cmds []*exec.Cmd
	lc.stop = func() {
		cancel()
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
		for _, f := range cleanup {
			f()
		}
	}
	start := func(name string, a ...string) error {
		logf, err := os.Create(filepath.Join(lc.Data, name+".log"))
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
			if pctx.Err() == nil {
				fmt.Fprintf(stderr, "phalanx: %s exited: %v (log: %s)\n", name, err, logf.Name())
			}
		}()
		return nil
	}
	fail := func(err error) (*localCluster, error) {
		lc.stop()
		return nil, err
	}
	args := append([]string{"coordinator", "--model", o.model, "--listen", o.listen, "--etcd", lc.Etcd,
		"--embedded-etcd", filepath.Join(lc.Data, "etcd"), "--cluster", cluster, "--min-workers", strconv.Itoa(o.workers),
		"--threads", strconv.Itoa(o.threads), "--wire", o.wire}, o.extra...)
	if err := start("coordinator", args...); err != nil {
		return fail(err)
	}
	if err := waitHealthy(ctx, o.listen, "", 60*time.Second); err != nil {
		return fail(fmt.Errorf("coordinator did not start: %w (log: %s)", err, filepath.Join(lc.Data, "coordinator.log")))
	}
	for i := 0; i < o.workers; i++ {
		addr, err := freePort("127.0.0.1")
		if err != nil {
			return fail(err)
		}
		name := fmt.Sprintf("worker-%d", i+1)
		if err := start(name, "worker", "--model", o.model, "--listen", addr, "--etcd", lc.Etcd, "--cluster", cluster,
			"--name", name, "--threads", strconv.Itoa(o.threads)); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(stderr, "phalanx: coordinator %s, %d workers, etcd %s; logs in %s\n", o.listen, o.workers, lc.Etcd, lc.Data)
	if err := waitReady(ctx, o.listen, o.workers, 10*time.Minute, stderr); err != nil {
		return fail(fmt.Errorf("the cluster did not become ready: %w (logs: %s)", err, lc.Data))
	}
	return lc, nil
}

// Stop ends the cluster's processes.
func (lc *localCluster) Stop() { lc.stop() }

// waitReady polls ClusterStatus, reporting workers joined, stages ready and
// elapsed time, until the coordinator routes to a plan.
func waitReady(ctx context.Context, addr string, workers int, timeout time.Duration, stderr io.Writer) error {
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := phalanxpb.NewInferenceClient(conn)
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		if err := ctx.Err(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(withKey(ctx), 2*time.Second)
		st, err := client.ClusterStatus(cctx, &phalanxpb.ClusterStatusRequest{})
		cancel()
		if err == nil {
			ready := 0
			for _, s := range st.GetStages() {
				if s.GetReady() {
					ready++
				}
			}
			line := fmt.Sprintf("workers %d/%d joined, plan epoch %d, stages ready %d/%d", len(st.GetWorkers()), workers, st.GetEpoch(), ready, len(st.GetStages()))
			if line != last {
				fmt.Fprintf(stderr, "phalanx: %s (%.1fs)\n", line, time.Since(start).Seconds())
				last = line
			}
			if ready > 0 && ready == len(st.GetStages()) {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", timeout)
}

// runUp starts an embedded-etcd coordinator and N workers on this machine,
// as child processes of this binary, and serves until interrupted.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("up", stderr)
	model := fs.String("model", "", "model directory (Hugging Face layout) or .gguf file")
	workers := fs.Int("workers", 2, "number of worker processes")
	listen := fs.String("listen", "127.0.0.1:7070", "coordinator's Inference API address")
	httpAddr := fs.String("http", "127.0.0.1:8080", "coordinator's OpenAI-compatible HTTP API (empty: off)")
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
	var extra []string
	if *httpAddr != "" {
		extra = append(extra, "--http", *httpAddr)
	}
	lc, err := startLocal(ctx, localOptions{model: *model, listen: *listen, etcd: *etcdAddr, data: *data, wire: *wireDT,
		workers: *workers, threads: *threads, extra: extra}, stderr)
	if err != nil {
		return err
	}
	defer lc.Stop()
	fmt.Fprintf(stdout, "ready: phalanx generate --coordinator %s --prompt '…'   |   phalanx status --coordinator %s", *listen, *listen)
	if *httpAddr != "" {
		fmt.Fprintf(stdout, "   |   OpenAI API at http://%s/v1", *httpAddr)
	}
	fmt.Fprintln(stdout)
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
