package tests

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// bin holds the daemons built once for the package.
var bin struct {
	once        sync.Once
	dir         string
	coordinator string
	worker      string
	phalanx     string
	err         error
}

func binaries(t testing.TB) {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "phalanx-tests-bin-")
		if bin.err != nil {
			return
		}
		for _, b := range []struct {
			out *string
			pkg string
		}{{&bin.coordinator, "coordinator"}, {&bin.worker, "worker"}, {&bin.phalanx, "phalanx"}} {
			*b.out = filepath.Join(bin.dir, b.pkg)
			cmd := exec.Command("go", "build", "-o", *b.out, "github.com/phalanx-llm/phalanx/cmd/"+b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				bin.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

func freeAddr(t testing.TB) string { t.Helper(); return freeAddrOn(t, "127.0.0.1") }

func freeAddrOn(t testing.TB, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a daemon process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t testing.TB, dir, name, path string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return p
}

// stop interrupts the process and kills it if it does not exit.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill is kill -9.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// cluster is a coordinator with embedded etcd and its workers.
type cluster struct {
	t       testing.TB
	dir     string
	model   string
	etcd    string
	addr    string
	name    string
	coord   *proc
	workers map[string]*proc
	conn    *grpc.ClientConn
	client  phalanxpb.InferenceClient
}

type clusterOpts struct {
	workers      int
	coordArgs    []string
	workerArgs   []string
	externalEtcd string   // endpoints of an etcd to use instead of the embedded one
	etcdHost     string   // host the embedded etcd listens on; default 127.0.0.1
	coordWrap    []string // a command the coordinator runs under (prlimit …)
	listenHost   string   // host the coordinator's gRPC API listens on; default 127.0.0.1
}

func startCluster(t testing.TB, model string, o clusterOpts) *cluster {
	t.Helper()
	binaries(t)
	c := &cluster{t: t, dir: t.TempDir(), model: model, workers: map[string]*proc{}, name: "t" + fmt.Sprint(time.Now().UnixNano()%1e9)}
	// The coordinator's ports are picked free here and bound by it a moment
	// later; tests running in parallel can take one in between. A start that
	// fails on a taken port is retried on new ones.
	for attempt := 1; ; attempt++ {
		c.addr = freeAddrOn(t, cmp.Or(o.listenHost, "127.0.0.1"))
		args := []string{"--model", model, "--listen", c.addr, "--cluster", c.name, "--min-workers", fmt.Sprint(max(o.workers, 1)),
			"--threads", "1", "--stage-timeout", "5s", "--replan-timeout", "30s"}
		etcdDir := filepath.Join(c.dir, fmt.Sprint("etcd", attempt))
		if o.externalEtcd != "" {
			c.etcd = o.externalEtcd
			args = append(args, "--etcd", c.etcd)
		} else if o.etcdHost != "" {
			c.etcd = freeAddrOn(t, o.etcdHost)
			args = append(args, "--etcd", c.etcd, "--embedded-etcd", etcdDir)
		} else {
			c.etcd = freeAddr(t)
			args = append(args, "--etcd", c.etcd, "--embedded-etcd", etcdDir)
		}
		args = append(args, o.coordArgs...)
		name := "coordinator"
		if attempt > 1 {
			name = fmt.Sprint("coordinator", attempt)
		}
		if len(o.coordWrap) > 0 {
			c.coord = startProc(t, c.dir, name, o.coordWrap[0], append(append(o.coordWrap[1:], bin.coordinator), args...)...)
		} else {
			c.coord = startProc(t, c.dir, name, bin.coordinator, args...)
		}
		conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c.conn, c.client = conn, phalanxpb.NewInferenceClient(conn)
		err = c.healthErr("", 60*time.Second)
		if err == nil {
			break
		}
		if b, _ := os.ReadFile(c.coord.log); attempt < 3 && c.coord.exited() && strings.Contains(string(b), "address already in use") {
			t.Logf("coordinator start %d: a port picked for it was taken meanwhile; again on others", attempt)
			continue
		}
		t.Fatal(err)
	}
	for i := 0; i < o.workers; i++ {
		c.addWorker(fmt.Sprintf("w%d", i+1), o.workerArgs...)
	}
	if o.workers > 0 {
		c.waitReady(60 * time.Second)
	}
	return c
}

func (c *cluster) addWorker(name string, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{"--model", c.model, "--listen", "127.0.0.1:0", // the worker binds a free port itself: no race with other processes
		"--etcd", c.etcd, "--cluster", c.name,
		"--name", name, "--threads", "1", "--lease-ttl", "2s"}, extra...)
	p := startProc(c.t, c.dir, name, bin.worker, args...)
	c.workers[name] = p
	return p
}

func (c *cluster) waitHealth(service string, timeout time.Duration) {
	c.t.Helper()
	if err := c.healthErr(service, timeout); err != nil {
		c.t.Fatal(err)
	}
}

// healthErr waits until the coordinator reports service SERVING, and
// says why not if it exits or the time runs out.
func (c *cluster) healthErr(service string, timeout time.Duration) error {
	hc := healthpb.NewHealthClient(c.conn)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coordinator health %q not SERVING after %v: %v %v", service, timeout, resp, err)
		}
		select {
		case <-c.coord.done:
			return fmt.Errorf("coordinator exited: %v", c.coord.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReady waits until the coordinator routes to a plan.
func (c *cluster) waitReady(timeout time.Duration) {
	c.waitHealth("phalanx.v1.Inference", timeout)
}

// status fetches ClusterStatus.
func (c *cluster) status() *phalanxpb.ClusterStatusResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.client.ClusterStatus(ctx, &phalanxpb.ClusterStatusRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// waitEpoch waits for a routed plan with an epoch above after.
func (c *cluster) waitEpoch(after uint64, timeout time.Duration) *phalanxpb.ClusterStatusResponse {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := c.status()
		ready := len(st.GetStages()) > 0
		for _, s := range st.GetStages() {
			ready = ready && s.GetReady()
		}
		if st.GetEpoch() > after && ready {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no routed plan after epoch %d within %v; status: %v", after, timeout, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// generate runs one request and collects its tokens and text.
func (c *cluster) generate(ctx context.Context, req *phalanxpb.GenerateRequest) ([]int, string, *phalanxpb.GenerateResponse, error) {
	stream, err := c.client.Generate(ctx, req)
	if err != nil {
		return nil, "", nil, err
	}
	var toks []int
	var text strings.Builder
	for {
		msg, err := stream.Recv()
		if err != nil {
			return toks, text.String(), nil, err
		}
		for _, t := range msg.GetTokens() {
			toks = append(toks, int(t))
		}
		text.WriteString(msg.GetText())
		if msg.GetDone() {
			return toks, text.String(), msg, nil
		}
	}
}

func tokenRequest(ids []int, n int) *phalanxpb.GenerateRequest {
	p := make([]int32, len(ids))
	for i, id := range ids {
		p[i] = int32(id)
	}
	return &phalanxpb.GenerateRequest{Input: &phalanxpb.GenerateRequest_Tokens{Tokens: &phalanxpb.TokenIds{Ids: p}},
		MaxTokens: int32(n), IgnoreEos: true}
}
