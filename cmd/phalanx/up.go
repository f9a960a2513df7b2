package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/internal/daemon"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
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

// checkFree fails when addr cannot be listened on, naming the flag that
// moves it: a second `phalanx up` must not mistake the first one's
// coordinator for its own.
func checkFree(addr, flagName string) error {
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
		return nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is already in use (another phalanx up?): stop it, or pass %s with a free HOST:PORT", addr, flagName)
	}
	return fmt.Errorf("cannot listen on %s (%s): %v", addr, flagName, err)
}

// checkModel fails at once, with the cause, on a path that cannot be a
// model, before any process starts.
func checkModel(path string) error {
	hint := "give a model directory (config.json, *.safetensors, tokenizer.json) or a .gguf file; " +
		"'phalanx pull microsoft/phi-2' downloads one, 'phalanx synth --out /tmp/tiny' writes a small random one"
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("model %s: %v; %s", path, errors.Unwrap(err), hint)
	}
	if !fi.IsDir() {
		if !strings.EqualFold(filepath.Ext(path), ".gguf") {
			return fmt.Errorf("model %s is a file but not a .gguf file; %s", path, hint)
		}
		f, err := gguf.Open(path)
		if err != nil {
			return fmt.Errorf("model %s: %v", path, err)
		}
		return f.Close()
	}
	if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
		return fmt.Errorf("model %s has no config.json: %v; %s", path, errors.Unwrap(err), hint)
	}
	if _, err := engine.LoadConfig(path); err != nil {
		return fmt.Errorf("model %s: %v", path, err)
	}
	return nil
}

// localCluster is a coordinator with embedded etcd and N workers, run as
// child processes of this binary.
type localCluster struct {
	Listen, Etcd, Data string
	// Exited receives the cause when the coordinator ends on its own
	// after start-up.
	Exited <-chan error
	stop   func(keepLogs bool)
}

type localOptions struct {
	model, listen, http, etcd, data, wire string
	kvCache                               string // the coordinator's --kv-cache ("": its default)
	logLevel                              string // every process's --log-level ("": their default)
	workers, threads                      int
	extra                                 []string // more coordinator flags
}

// childExit is a child process that ended without being asked to.
type childExit struct {
	name, log string
	err       error
}

func (e childExit) Error() string {
	return fmt.Sprintf("%s exited: %s (log: %s)", e.name, lastLogLine(e.log, e.err), e.log)
}

// lastLogLine is a daemon's last words: the error line the CLI prints on
// exit, or the message of its last JSON log record.
func lastLogLine(path string, exitErr error) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "{") {
			var rec struct{ Msg, Err string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg != "" {
				if rec.Err != "" {
					return rec.Msg + ": " + rec.Err
				}
				return rec.Msg
			}
			return line
		}
		for _, p := range []string{"phalanx coordinator: ", "phalanx worker: "} {
			line = strings.TrimPrefix(line, p)
		}
		return line
	}
	return fmt.Sprint(exitErr)
}

// startLocal starts the processes and waits until the cluster serves,
// reporting progress on stderr. Any failure ends it within seconds with
// its cause, keeping the logs. Stop ends the processes.
func startLocal(ctx context.Context, o localOptions, stderr io.Writer) (*localCluster, error) {
	if err := checkModel(o.model); err != nil {
		return nil, err
	}
	for _, a := range []struct{ addr, flag string }{{o.listen, "--listen"}, {o.http, "--http"}, {o.etcd, "--etcd"}} {
		if a.addr != "" {
			if err := checkFree(a.addr, a.flag); err != nil {
				return nil, err
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	lc := &localCluster{Listen: o.listen, Etcd: o.etcd, Data: o.data}
	tempData := lc.Data == ""
	if tempData {
		if lc.Data, err = os.MkdirTemp("", "phalanx-up-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(lc.Data, 0o755); err != nil {
		return nil, err
	}
	if lc.Etcd == "" {
		if lc.Etcd, err = freePort("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	if o.threads == 0 {
		// One stream keeps one stage busy at a time: each process gets
		// every CPU rather than a share.
		o.threads = engine.DefaultThreads()
	}
	id := "phalanx-up-" + strconv.Itoa(os.Getpid())
	pctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var cmds []*exec.Cmd
	exits := make(chan childExit, o.workers+1)
	lc.stop = func(keepLogs bool) {
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
		if tempData && !keepLogs {
			os.RemoveAll(lc.Data)
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
				exits <- childExit{name: name, log: logf.Name(), err: err}
			}
		}()
		return nil
	}
	// Until the cluster serves, any child's exit ends the start-up with its
	// cause; after that a worker's exit is reported (the cluster re-plans)
	// and the coordinator's ends the cluster.
	sctx, scancel := context.WithCancelCause(ctx)
	defer scancel(nil)
	var startedMu sync.Mutex
	started := false
	exited := make(chan error, 1)
	lc.Exited = exited
	go func() {
		for {
			select {
			case <-pctx.Done():
				return
			case e := <-exits:
				startedMu.Lock()
				s := started
				startedMu.Unlock()
				switch {
				case !s:
					scancel(e)
				case e.name == "coordinator":
					exited <- e
				default:
					fmt.Fprintf(stderr, "phalanx: %v\n", e)
				}
			}
		}
	}()
	fail := func(err error) (*localCluster, error) {
		if cause := context.Cause(sctx); cause != nil && ctx.Err() == nil {
			err = cause
		}
		lc.stop(true)
		return nil, fmt.Errorf("%w\nlogs kept in %s", err, lc.Data)
	}
	args := append([]string{"coordinator", "--model", o.model, "--listen", o.listen, "--etcd", lc.Etcd,
		"--embedded-etcd", filepath.Join(lc.Data, "etcd"), "--cluster", id, "--id", id, "--min-workers", strconv.Itoa(o.workers),
		"--threads", strconv.Itoa(o.threads), "--wire", o.wire}, o.extra...)
	if o.http != "" {
		args = append(args, "--http", o.http)
	}
	if o.logLevel != "" {
		args = append(args, "--log-level", o.logLevel)
	}
	if o.kvCache != "" {
		args = append(args, "--kv-cache", o.kvCache)
	}
	if err := start("coordinator", args...); err != nil {
		return fail(err)
	}
	if err := waitHealthy(sctx, o.listen, "", 60*time.Second); err != nil {
		return fail(fmt.Errorf("coordinator did not start: %w", err))
	}
	for i := 0; i < o.workers; i++ {
		// Port 0: the worker binds a free port itself and advertises it
		// through etcd, so no other process can take it in between.
		name := fmt.Sprintf("worker-%d", i+1)
		wargs := []string{"worker", "--model", o.model, "--listen", "127.0.0.1:0", "--etcd", lc.Etcd, "--cluster", id,
			"--name", name, "--threads", strconv.Itoa(o.threads)}
		if o.logLevel != "" {
			wargs = append(wargs, "--log-level", o.logLevel)
		}
		if err := start(name, wargs...); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(stderr, "phalanx: coordinator %s, %s, etcd %s; logs in %s\n", o.listen, plural(o.workers, "worker"), lc.Etcd, lc.Data)
	if err := waitReady(sctx, o.listen, id, o.workers, 10*time.Minute, stderr); err != nil {
		return fail(fmt.Errorf("the cluster did not become ready: %w", err))
	}
	startedMu.Lock()
	started = true
	startedMu.Unlock()
	return lc, nil
}

// plural is "1 noun" or "n nouns" (nouns in -ch take -es).
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ch") {
		return strconv.Itoa(n) + " " + noun + "es"
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// Stop ends the cluster's processes and removes a temporary data
// directory.
func (lc *localCluster) Stop() { lc.stop(false) }

// StopKeepLogs ends the processes and keeps the logs.
func (lc *localCluster) StopKeepLogs() { lc.stop(true) }

// waitReady polls ClusterStatus, reporting workers joined, stages ready and
// elapsed time, until the coordinator routes to a plan. leader is the id of
// the coordinator started for this cluster: another one answering on addr
// is an error, not progress.
func waitReady(ctx context.Context, addr, leader string, workers int, timeout time.Duration, stderr io.Writer) error {
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
			if st.GetLeader() != "" && st.GetLeader() != leader {
				return fmt.Errorf("%s answers for another cluster (coordinator %s)", addr, st.GetLeader())
			}
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
	httpAddr := fs.String("http", "127.0.0.1:8080", "coordinator's OpenAI-compatible HTTP API and web console (empty: off)")
	etcdAddr := fs.String("etcd", "", "address the embedded etcd serves (default: a free port)")
	data := fs.String("data", "", "directory for etcd data and logs, made if missing (default: a temporary one, removed on exit)")
	threads := fs.Int("threads", 0, "kernel threads per process (0: one per CPU; a single stream keeps one stage busy at a time)")
	wireDT := fs.String("wire", "f32", "activation dtype between stages: f32, f16 or q8")
	kvCache := fs.String("kv-cache", "f32", "how the workers keep the sessions' keys and values: f32 or f16 (half the memory)")
	logLevel := fs.String("log-level", "info", "every process's log level: debug, info, warn or error (debug: the coordinator logs each step's per-stage times)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usagef("--model is required (a model directory or .gguf file; 'phalanx run microsoft/phi-2' downloads one and starts)")
	}
	if *workers < 1 || *workers > 64 {
		return usagef("--workers %d outside [1, 64]", *workers)
	}
	lc, err := startLocal(ctx, localOptions{model: *model, listen: *listen, http: *httpAddr, etcd: *etcdAddr, data: *data, wire: *wireDT, kvCache: *kvCache,
		logLevel: *logLevel, workers: *workers, threads: *threads}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready: phalanx generate --coordinator %s --prompt '…'   |   phalanx status --coordinator %s", *listen, *listen)
	if *httpAddr != "" {
		fmt.Fprintf(stdout, "   |   OpenAI API http://%s/v1   |   web console http://%s/", *httpAddr, *httpAddr)
	}
	fmt.Fprintln(stdout)
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "phalanx up: stopping")
		lc.Stop()
		return nil
	case err := <-lc.Exited:
		lc.StopKeepLogs()
		return fmt.Errorf("%w\nlogs kept in %s", err, lc.Data)
	}
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
