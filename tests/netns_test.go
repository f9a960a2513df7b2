package tests

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
)

// testHost is a network namespace joined to this one by a veth pair: a
// separate host for a worker, whose link the test can cut.
type testHost struct {
	ns, hostIf   string
	hostIP, nsIP string
}

func newTestHost(t *testing.T, subnet int) *testHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 is not installed")
	}
	id := os.Getpid() % 10000
	h := &testHost{ns: fmt.Sprintf("phx%d-%d", id, subnet), hostIf: fmt.Sprintf("phxh%d%d", id, subnet),
		hostIP: fmt.Sprintf("10.213.%d.1", subnet), nsIP: fmt.Sprintf("10.213.%d.2", subnet)}
	nsIf := fmt.Sprintf("phxn%d%d", id, subnet)
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("cannot make a test host (ip %s): %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", h.hostIf).Run()
		exec.Command("ip", "netns", "del", h.ns).Run()
	})
	run("netns", "add", h.ns)
	run("link", "add", h.hostIf, "type", "veth", "peer", "name", nsIf)
	run("link", "set", nsIf, "netns", h.ns)
	run("addr", "add", h.hostIP+"/24", "dev", h.hostIf)
	run("link", "set", h.hostIf, "up")
	run("netns", "exec", h.ns, "ip", "addr", "add", h.nsIP+"/24", "dev", nsIf)
	run("netns", "exec", h.ns, "ip", "link", "set", nsIf, "up")
	run("netns", "exec", h.ns, "ip", "link", "set", "lo", "up")
	return h
}

func (h *testHost) link(t *testing.T, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", h.hostIf, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v: %s", h.hostIf, state, err, out)
	}
}

// A worker on another host whose network is cut mid-answer: the
// coordinator stops waiting after the stage timeout, the worker's lease
// expires, the layers move to the workers left, and the answer completes
// unchanged.
func TestNetworkCut(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	h := newTestHost(t, 7)
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	c := startCluster(t, fx, clusterOpts{workers: 0, etcdHost: h.hostIP, coordArgs: []string{"--stage-timeout", "1s", "--min-workers", "3"}})
	c.addWorker("w1", "--speed", "100", "--debug-step-delay", "10ms")
	c.addWorker("w2", "--speed", "100", "--debug-step-delay", "10ms")
	// w3 lives on the other host.
	addr := fmt.Sprintf("%s:%d", h.nsIP, 17000+os.Getpid()%1000)
	p := startProc(t, c.dir, "w3", "ip", "netns", "exec", h.ns, bin.worker, "--model", fx, "--listen", addr,
		"--etcd", c.etcd, "--cluster", c.name, "--name", "w3", "--threads", "1", "--lease-ttl", "2s",
		"--speed", "300", "--debug-step-delay", "10ms") // fastest: the plan uses it
	c.workers["w3"] = p
	st := c.waitEpoch(0, 30*time.Second)
	onOtherHost := false
	for _, s := range st.GetStages() {
		onOtherHost = onOtherHost || s.GetWorkerId() == "w3"
	}
	if !onOtherHost {
		t.Fatalf("the plan does not use the worker on the other host: %v", st.GetStages())
	}
	prompt := []int{2, 7, 1, 8, 2, 8}
	want, _ := engine.Greedy(local, prompt, 40)
	res := runStream(c, tokenRequest(prompt, 40), func(n int) {
		if n == 10 {
			h.link(t, false)
		}
	})
	h.link(t, true)
	if res.err != nil || !slices.Equal(res.tokens, want) {
		t.Fatalf("with the network cut: %v %v\nwant %v", res.err, res.tokens, want)
	}
	t.Logf("link cut after 10 tokens: answer unchanged, longest pause %v", res.gap.Round(time.Millisecond))
}
