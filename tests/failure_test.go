package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// faultCluster is 3 workers whose steps are slowed so that a fault can land
// during prefill or mid-decode, with short timeouts so recovery is quick.
func faultCluster(t *testing.T, extraCoord ...string) (*cluster, *engine.Model) {
	t.Helper()
	dir := fixture(t, "phi-tiny-f32")
	local := localModel(t, dir)
	c := startCluster(t, dir, clusterOpts{workers: 3,
		coordArgs:  append([]string{"--stage-timeout", "1s"}, extraCoord...),
		workerArgs: []string{"--speed", "100", "--debug-step-delay", "20ms"}})
	return c, local
}

// streamResult runs a request and reports its tokens, the longest gap
// between two messages after fault, and the first error.
type streamResult struct {
	tokens []int
	gap    time.Duration
	err    error
}

func runStream(c *cluster, req *phalanxpb.GenerateRequest, onToken func(n int)) streamResult {
	var r streamResult
	stream, err := c.client.Generate(context.Background(), req)
	if err != nil {
		r.err = err
		return r
	}
	last := time.Now()
	for {
		msg, err := stream.Recv()
		if err != nil {
			r.err = err
			return r
		}
		r.gap = max(r.gap, time.Since(last))
		last = time.Now()
		for _, tk := range msg.GetTokens() {
			r.tokens = append(r.tokens, int(tk))
			if onToken != nil {
				onToken(len(r.tokens))
			}
		}
		if msg.GetDone() {
			return r
		}
	}
}

// Workers killed with SIGKILL at random moments — during prefill,
// mid-decode, between requests — never change an answer. After each kill
// a fresh worker joins, so the cluster keeps three.
func TestKillWorkerAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	c, local := faultCluster(t)
	rng := rand.New(rand.NewPCG(2026, 11))
	runs := 20
	var recoveries []time.Duration
	for run := 0; run < runs; run++ {
		prompt := make([]int, 5+rng.IntN(40))
		for i := range prompt {
			prompt[i] = rng.IntN(1024)
		}
		want, _ := engine.Greedy(local, prompt, 24)
		victims := []string{}
		for name, p := range c.workers {
			select {
			case <-p.done:
			default:
				victims = append(victims, name)
			}
		}
		victim := c.workers[victims[rng.IntN(len(victims))]]
		point := []string{"prefill", "decode", "between"}[run%3]
		var killedAt time.Time
		kill := func() {
			if killedAt.IsZero() {
				victim.kill()
				killedAt = time.Now()
			}
		}
		if point == "between" {
			kill()
		}
		if point == "prefill" {
			go func() { time.Sleep(10 * time.Millisecond); kill() }() // the first step is in flight
		}
		killAfter := 1 + rng.IntN(20)
		res := runStream(c, tokenRequest(prompt, 24), func(n int) {
			if point == "decode" && n == killAfter {
				kill()
			}
		})
		if res.err != nil {
			t.Fatalf("run %d (%s, killed %s): %v", run, point, victim.name, res.err)
		}
		if !slices.Equal(res.tokens, want) {
			t.Fatalf("run %d (%s, killed %s): %v\nwant %v", run, point, victim.name, res.tokens, want)
		}
		if point != "between" {
			recoveries = append(recoveries, res.gap)
		}
		c.addWorker(fmt.Sprintf("r%d", run), "--speed", "100", "--debug-step-delay", "20ms")
	}
	var worst, sum time.Duration
	for _, r := range recoveries {
		worst = max(worst, r)
		sum += r
	}
	t.Logf("%d runs, every answer unchanged; recovery (fault → next token): mean %v, worst %v (lease TTL 2 s, stage timeout 1 s)",
		runs, (sum / time.Duration(len(recoveries))).Round(time.Millisecond), worst.Round(time.Millisecond))
}

// A worker stopped with SIGSTOP counts as failed after the stage timeout;
// when it wakes up its stale answers cannot corrupt the session.
func TestStoppedWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	c, local := faultCluster(t)
	prompt := []int{11, 22, 33, 44}
	want, _ := engine.Greedy(local, prompt, 40)
	victim := c.workers["w2"]
	res := runStream(c, tokenRequest(prompt, 40), func(n int) {
		if n == 8 {
			victim.cmd.Process.Signal(syscall.SIGSTOP)
		}
	})
	if res.err != nil || !slices.Equal(res.tokens, want) {
		t.Fatalf("with a stopped worker: %v %v\nwant %v", res.err, res.tokens, want)
	}
	t.Logf("SIGSTOP after 8 tokens; longest pause %v", res.gap.Round(time.Millisecond))
	victim.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(3 * time.Second) // it wakes, finds its lease gone, re-registers
	for i := 0; i < 3; i++ {
		p := []int{i + 1, 7, 7}
		w, _ := engine.Greedy(local, p, 16)
		r := runStream(c, tokenRequest(p, 16), nil)
		if r.err != nil || !slices.Equal(r.tokens, w) {
			t.Fatalf("after the worker woke up: %v %v, want %v", r.err, r.tokens, w)
		}
	}
}

// The cluster rides out an etcd restart, mid-answer and after.
func TestEtcdRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd-server is not installed; .ci/run installs it")
	}
	binaries(t)
	dir := t.TempDir()
	client, peer := freeAddr(t), freeAddr(t)
	etcdArgs := []string{"--name", "t", "--data-dir", dir + "/etcd",
		"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "t=http://" + peer}
	etcd := startProc(t, dir, "etcd", etcdBin, etcdArgs...)
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	c := startCluster(t, fx, clusterOpts{workers: 3, externalEtcd: client,
		coordArgs: []string{"--stage-timeout", "1s"}, workerArgs: []string{"--speed", "100", "--debug-step-delay", "20ms"}})
	prompt := []int{5, 4, 3, 2, 1}
	want, _ := engine.Greedy(local, prompt, 60)
	restarted := make(chan struct{})
	res := runStream(c, tokenRequest(prompt, 60), func(n int) {
		if n == 5 {
			go func() {
				etcd.kill()
				time.Sleep(3 * time.Second) // longer than the workers' 2 s leases
				etcd = startProc(t, dir, "etcd-2", etcdBin, etcdArgs...)
				close(restarted)
			}()
		}
	})
	if res.err != nil || !slices.Equal(res.tokens, want) {
		t.Fatalf("across an etcd restart: %v %v\nwant %v", res.err, res.tokens, want)
	}
	<-restarted
	time.Sleep(2 * time.Second)
	for i := 0; i < 3; i++ {
		p := []int{9, i, 9}
		w, _ := engine.Greedy(local, p, 12)
		r := runStream(c, tokenRequest(p, 12), nil)
		if r.err != nil || !slices.Equal(r.tokens, w) {
			t.Fatalf("after etcd came back: %v %v, want %v", r.err, r.tokens, w)
		}
	}
}
