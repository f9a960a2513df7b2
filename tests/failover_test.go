package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// etcdCluster starts n Debian etcd members on loopback and returns their
// client endpoints and processes.
func etcdCluster(t *testing.T, n int) ([]string, []*proc) {
	t.Helper()
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd-server is not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	var clients, peers, initial []string
	for i := 0; i < n; i++ {
		clients = append(clients, freeAddr(t))
		peers = append(peers, freeAddr(t))
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, peers[i]))
	}
	var procs []*proc
	for i := 0; i < n; i++ {
		procs = append(procs, startProc(t, dir, fmt.Sprintf("etcd-%d", i), etcdBin,
			"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprint(i)),
			"--listen-client-urls", "http://"+clients[i], "--advertise-client-urls", "http://"+clients[i],
			"--listen-peer-urls", "http://"+peers[i], "--initial-advertise-peer-urls", "http://"+peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--heartbeat-interval", "50", "--election-timeout", "500"))
	}
	return clients, procs
}

// With a 3-member etcd, losing one member changes nothing: requests go on
// and a worker failure still re-plans.
func TestThreeMemberEtcdLosesOne(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	eps, members := etcdCluster(t, 3)
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	c := startCluster(t, fx, clusterOpts{workers: 3, externalEtcd: strings.Join(eps, ","),
		coordArgs: []string{"--stage-timeout", "1s"}, workerArgs: []string{"--speed", "100"}})
	members[0].kill()
	prompt := []int{1, 3, 5, 7}
	want, _ := engine.Greedy(local, prompt, 30)
	res := runStream(c, tokenRequest(prompt, 30), func(n int) {
		if n == 10 {
			c.workers["w1"].kill()
		}
	})
	if res.err != nil || !slices.Equal(res.tokens, want) {
		t.Fatalf("with one etcd member down and a worker killed: %v %v, want %v", res.err, res.tokens, want)
	}
	t.Logf("etcd member down, worker killed mid-answer: answer unchanged, longest pause %v", res.gap.Round(time.Millisecond))
}

// The leading coordinator dies: its requests in flight fail cleanly, a
// standby takes over, recovers the plan from etcd, and workers keep the
// layers they hold.
func TestCoordinatorFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	eps, _ := etcdCluster(t, 1)
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	c := startCluster(t, fx, clusterOpts{workers: 3, externalEtcd: eps[0],
		coordArgs: []string{"--id", "coord-a"}, workerArgs: []string{"--speed", "100", "--debug-step-delay", "10ms"}})
	epoch := c.status().GetEpoch()
	// The standby: same cluster, same model, another address.
	standbyAddr := freeAddr(t)
	startProc(t, c.dir, "coordinator-b", bin.coordinator, "--model", fx, "--listen", standbyAddr, "--etcd", eps[0],
		"--cluster", c.name, "--id", "coord-b", "--threads", "1")
	conn, err := grpc.NewClient(standbyAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	standby := phalanxpb.NewInferenceClient(conn)
	time.Sleep(time.Second)
	if _, _, _, err := (&cluster{client: standby}).generate(context.Background(), tokenRequest([]int{1}, 1)); err == nil || !strings.Contains(err.Error(), "standing by") {
		t.Fatalf("the standby served before leading: %v", err)
	}
	loadsBefore := countLoads(t, c)

	// A request in flight on the leader when it dies fails cleanly.
	res := runStream(c, tokenRequest([]int{4, 4, 4}, 200), func(n int) {
		if n == 5 {
			c.coord.kill()
		}
	})
	if res.err == nil {
		t.Fatal("a request on a killed coordinator reported success")
	}
	killed := time.Now()
	// The standby leads within the election TTL and serves the same answers.
	prompt := []int{8, 6, 4, 2}
	want, _ := engine.Greedy(local, prompt, 20)
	var got []int
	for {
		toks, _, _, err := (&cluster{client: standby}).generate(context.Background(), tokenRequest(prompt, 20))
		if err == nil {
			got = toks
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("the standby did not take over within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after failover: %v, want %v", got, want)
	}
	st, err := standby.ClusterStatus(context.Background(), &phalanxpb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetEpoch() != epoch || st.GetLeader() != "coord-b" {
		t.Errorf("after failover: epoch %d (was %d), leader %q", st.GetEpoch(), epoch, st.GetLeader())
	}
	if after := countLoads(t, c); after != loadsBefore {
		t.Errorf("workers reloaded layers after the failover: %d loads before, %d after", loadsBefore, after)
	}
	t.Logf("leader killed; standby serving %v later; plan epoch %d kept, no layer reloaded", time.Since(killed).Round(time.Millisecond), epoch)
}

// countLoads counts "layers loaded" lines in the workers' logs.
func countLoads(t *testing.T, c *cluster) int {
	n := 0
	for _, p := range c.workers {
		b, err := os.ReadFile(p.log)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), `"msg":"layers loaded"`)
	}
	return n
}
