package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
)

// testHost is a network namespace joined to this one by a veth pair: a
// separate host for a worker, whose link the test can cut or slow down.
// Its default route leads here, so it reaches every address of this host
// (another test host's end included) over its own link.
type testHost struct {
	ns, hostIf, nsIf string
	hostIP, nsIP     string
}

func newTestHost(t testing.TB, subnet int) *testHost {
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
	h.nsIf = fmt.Sprintf("phxn%d%d", id, subnet)
	nsIf := h.nsIf
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
	run("netns", "exec", h.ns, "ip", "route", "add", "default", "via", h.hostIP)
	return h
}

func (h *testHost) link(t testing.TB, up bool) {
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

// shape limits the link to bitsPerSecond in each direction with a token
// bucket (tc tbf on both ends of the veth pair); 0 removes the limit. The
// bucket holds 1 ms of traffic (at least two full frames), so a message
// crosses at the link's rate rather than in one burst; its queue holds
// 200 ms, so nothing the benchmarks send is dropped.
func (h *testHost) shape(t testing.TB, bitsPerSecond int64) {
	t.Helper()
	burst := max(bitsPerSecond/8/1000, 3028)
	for _, cmd := range [][]string{
		{"tc", "qdisc", "del", "dev", h.hostIf, "root"},
		{"ip", "netns", "exec", h.ns, "tc", "qdisc", "del", "dev", h.nsIf, "root"},
	} {
		exec.Command(cmd[0], cmd[1:]...).Run() // no qdisc yet: nothing to delete
	}
	if bitsPerSecond == 0 {
		return
	}
	tbf := []string{"root", "tbf", "rate", fmt.Sprintf("%dkbit", bitsPerSecond/1000), "burst", fmt.Sprint(burst), "latency", "200ms"}
	for _, cmd := range [][]string{
		append([]string{"tc", "qdisc", "add", "dev", h.hostIf}, tbf...),
		append([]string{"ip", "netns", "exec", h.ns, "tc", "qdisc", "add", "dev", h.nsIf}, tbf...),
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(cmd, " "), err, out)
		}
	}
}

// linkBytes is what crossed the link so far, both directions, counted by
// the kernel at this host's end of the veth pair (Ethernet, IP and TCP
// headers included).
func (h *testHost) linkBytes(t testing.TB) int64 {
	t.Helper()
	var n int64
	for _, f := range []string{"tx_bytes", "rx_bytes"} {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", h.hostIf, "statistics", f))
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

// addWorkerOn starts a worker on the test host h, serving on h's address.
// The cluster's etcd must listen on an address h reaches (etcdHost).
func (c *cluster) addWorkerOn(h *testHost, name string, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{"netns", "exec", h.ns, bin.worker, "--model", c.model, "--listen", h.nsIP + ":0",
		"--etcd", c.etcd, "--cluster", c.name, "--name", name, "--threads", "1", "--lease-ttl", "2s"}, extra...)
	p := startProc(c.t, c.dir, name, "ip", args...)
	c.workers[name] = p
	return p
}
