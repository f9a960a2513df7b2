package tests

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The figures of docs/cluster.md's "Workers without model files": how long
// a new worker with an empty cache takes to be ready for its share, and
// the bytes sent for it. Set PHALANX_WEIGHTS_FIGURES_MODELS to model paths
// (comma-separated) and PHALANX_WEIGHTS_FIGURES_LINKS to any of loopback,
// 1gbit, 100mbit (the last two: the new worker in a network namespace
// behind tc tbf; root).
func TestWeightsTransferFigures(t *testing.T) {
	models := os.Getenv("PHALANX_WEIGHTS_FIGURES_MODELS")
	if models == "" {
		t.Skip("set PHALANX_WEIGHTS_FIGURES_MODELS (and PHALANX_WEIGHTS_FIGURES_LINKS) to measure")
	}
	links := strings.Split(cmp.Or(os.Getenv("PHALANX_WEIGHTS_FIGURES_LINKS"), "loopback"), ",")
	for _, model := range strings.Split(models, ",") {
		for i, link := range links {
			t.Run(filepath.Base(model)+"/"+link, func(t *testing.T) { measureJoin(t, model, link, 20+i) })
		}
	}
}

func measureJoin(t *testing.T, model, link string, subnet int) {
	var h *testHost
	o := clusterOpts{workers: 0}
	if link != "loopback" {
		h = newTestHost(t, subnet)
		if out, err := exec.Command("tc", "qdisc", "add", "dev", h.hostIf, "root", "tbf", "rate", link, "burst", "1mb", "latency", "50ms").CombinedOutput(); err != nil {
			t.Skipf("tc tbf: %v: %s", err, out)
		}
		o.etcdHost, o.listenHost = h.hostIP, h.hostIP
	}
	c := startCluster(t, model, o)
	c.addWorker("w1", "--speed", "100", "--threads", "2")
	c.waitReady(10 * time.Minute)
	epoch := c.status().GetEpoch()
	cache := t.TempDir()
	start := time.Now()
	if h == nil {
		c.addCacheWorker("w2", cache, "--speed", "100")
	} else {
		addr := fmt.Sprintf("%s:%d", h.nsIP, 17100+os.Getpid()%1000)
		c.workers["w2"] = startProc(t, c.dir, "w2", "ip", "netns", "exec", h.ns, bin.worker, "--cache", cache, "--listen", addr,
			"--etcd", c.etcd, "--cluster", c.name, "--name", "w2", "--threads", "1", "--lease-ttl", "2s", "--speed", "100")
	}
	st := c.waitEpoch(epoch, 30*time.Minute)
	took := time.Since(start)
	transfer := logLines(t, c.workers["w2"], `"weights in cache"`)
	for _, w := range st.GetWorkers() {
		if w.GetId() == "w2" {
			if len(transfer) > 0 {
				t.Logf("FIGURE %s over %s: fetch and check took %v (the rest: start, calibration, load, plan)", filepath.Base(model), link, transfer[0]["took"])
			}
			// Bytes received over the wire in all the fetches (the staged
			// fetch, then the load's check of the cache, which receives
			// nothing when the staged fetch completed).
			var received float64
			for _, l := range transfer {
				r, _ := l["received"].(float64)
				received += r
			}
			t.Logf("FIGURE %s over %s: layers [%d,%d) ready in %v; share %d bytes, received %.0f (%.3f of the share)",
				filepath.Base(model), link, w.GetLayerStart(), w.GetLayerEnd(), took.Round(100*time.Millisecond),
				w.GetTransferTotalBytes(), received, received/float64(w.GetTransferTotalBytes()))
		}
	}
	// The serving cluster's pause: from the staged plan's publication to
	// the coordinator routing to it (w2 loads its range from its cache; w1
	// drops half of its layers).
	published := logLines(t, c.coord, "published a new plan")
	routed := logLines(t, c.coord, "routing to the new plan")
	if len(published) >= 2 && len(routed) >= 2 {
		a, errA := time.Parse(time.RFC3339Nano, fmt.Sprint(published[len(published)-1]["time"]))
		b, errB := time.Parse(time.RFC3339Nano, fmt.Sprint(routed[len(routed)-1]["time"]))
		if errA == nil && errB == nil {
			t.Logf("FIGURE %s over %s: serving paused %v (publication of the staged plan → routed)", filepath.Base(model), link, b.Sub(a).Round(time.Millisecond))
		}
	}
}
