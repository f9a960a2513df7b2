package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/ggufconv"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// addCacheWorker starts a worker without model files, keeping what it
// fetches in cache.
func (c *cluster) addCacheWorker(name, cache string, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{"--cache", cache, "--listen", freeAddr(c.t), "--etcd", c.etcd, "--cluster", c.name,
		"--name", name, "--threads", "1", "--lease-ttl", "2s", "--cache-prune-after", "1s"}, extra...)
	p := startProc(c.t, c.dir, name, bin.worker, args...)
	c.workers[name] = p
	return p
}

// ggufFixture converts the F32 fixture to a GGUF file of type dt.
func ggufFixture(t *testing.T, dt ggufconv.FileType) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ggufconv.Write(context.Background(), fixture(t, "phi-tiny-f32"), &buf, ggufconv.Options{Type: dt}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "phi-tiny-"+strings.ToLower(dt.String())+".gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cachedFiles lists a cache's complete tensors (digest → size).
func cachedFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !strings.HasSuffix(e.Name(), ".part") {
			out[e.Name()] = info.Size()
		}
	}
	return out
}

// checkCachesHoldRanges waits until every worker's cache holds exactly the
// tensors of the range it serves.
func checkCachesHoldRanges(t *testing.T, c *cluster, cat *weights.Catalog, caches map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var problems []string
		st := c.status()
		for _, w := range st.GetWorkers() {
			dir, ok := caches[w.GetId()]
			if !ok {
				continue
			}
			man, err := cat.Manifest(engine.LayerRange{Start: int(w.GetLayerStart()), End: int(w.GetLayerEnd())})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			for _, tt := range man.Tensors {
				want[tt.Digest.String()] = int64(tt.Size)
			}
			got := cachedFiles(t, dir)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				problems = append(problems, fmt.Sprintf("%s holds [%d,%d): cache has %d tensors, the range %d (%d bytes)",
					w.GetId(), w.GetLayerStart(), w.GetLayerEnd(), len(got), len(want), man.Bytes()))
			}
			if w.GetLayerEnd() > w.GetLayerStart() && (w.GetTransferTotalBytes() != man.Bytes() || w.GetTransferDoneBytes() != man.Bytes()) {
				problems = append(problems, fmt.Sprintf("%s reports transfer %d/%d, the range is %d bytes",
					w.GetId(), w.GetTransferDoneBytes(), w.GetTransferTotalBytes(), man.Bytes()))
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("caches do not hold their ranges: %s", strings.Join(problems, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func checkTokens(t *testing.T, c *cluster, local *engine.Model) {
	t.Helper()
	for _, gc := range goldenCases(t, fixture(t, "phi-tiny-f32")) {
		want, err := engine.Greedy(local, gc.InputIDs, len(gc.Greedy.Tokens))
		if err != nil {
			t.Fatal(err)
		}
		got, _, _, err := c.generate(context.Background(), tokenRequest(gc.InputIDs, len(want)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: cluster %v, one process %v", gc.Name, got, want)
		}
	}
}

// Only the coordinator has the model: two workers with empty caches join
// at once, fetch their shares, serve the tokens one process gives, and each
// keeps on disk only its range's bytes — for safetensors and GGUF.
func TestWorkersWithoutModelFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	for _, tc := range []struct{ name, model string }{
		{"safetensors-f32", fixture(t, "phi-tiny-f32")},
		{"gguf-q4_0", ggufFixture(t, ggufconv.MostlyQ4_0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := localModel(t, tc.model)
			mf, err := engine.Open(tc.model)
			if err != nil {
				t.Fatal(err)
			}
			cat, err := weights.NewCatalog(mf)
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			c := startCluster(t, tc.model, clusterOpts{coordArgs: []string{"--min-workers", "2"}})
			caches := map[string]string{"w1": t.TempDir(), "w2": t.TempDir()}
			for name, dir := range caches {
				// Equal speeds: the plan splits the layers between both (a
				// calibration on a busy machine could put them all on one).
				c.addCacheWorker(name, dir, "--speed", "100")
			}
			c.waitReady(90 * time.Second)
			if st := c.status(); len(st.GetStages()) != 2 {
				t.Fatalf("plan %v: want both workers", st.GetStages())
			}
			checkTokens(t, c, local)
			checkCachesHoldRanges(t, c, cat, caches)
		})
	}
}

// logLines returns the log lines of p holding every part.
func logLines(t *testing.T, p *proc, parts ...string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		ok := line != ""
		for _, s := range parts {
			ok = ok && strings.Contains(line, s)
		}
		var m map[string]any
		if ok && json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitTransferMidway waits until worker id reports a transfer between 10 %
// and 90 % done.
func waitTransferMidway(t *testing.T, c *cluster, id string) *phalanxpb.WorkerStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, w := range c.status().GetWorkers() {
			if w.GetId() == id && w.GetTransferTotalBytes() > 0 && w.GetTransferReceivedBytes() > w.GetTransferTotalBytes()/10 &&
				w.GetTransferDoneBytes() < w.GetTransferTotalBytes()*9/10 {
				return w
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never reported a transfer in progress", id)
	return nil
}

// Transfers survive kill -9 of the receiver (it resumes from its cache on
// restart) and of the source (a peer: the receiver resumes from the
// coordinator at the same offset); a corrupted cached tensor is found and
// fetched again.
func TestWeightsTransferResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	model := fixture(t, "phi-tiny-f32")
	local := localModel(t, model)
	c := startCluster(t, model, clusterOpts{})
	cacheA, cacheB := t.TempDir(), t.TempDir()

	// The receiver dies mid-transfer and comes back.
	a := c.addCacheWorker("a", cacheA, "--speed", "100", "--transfer-rate", "150k")
	w := waitTransferMidway(t, c, "a")
	a.kill()
	total := w.GetTransferTotalBytes()
	a = c.addCacheWorker("a", cacheA, "--speed", "100", "--cache-prune-after", "10m")
	c.waitReady(60 * time.Second)
	done := logLines(t, a, `"weights in cache"`)
	if len(done) != 1 {
		t.Fatalf("restarted worker logged %d completed transfers", len(done))
	}
	if got := done[0]["received"].(float64); got <= 0 || uint64(got) >= total {
		t.Errorf("after a restart the worker received %v bytes of %d: want only the missing part", got, total)
	}
	checkTokens(t, c, local)

	// A peer serving the transfer dies: the receiver resumes from the
	// coordinator.
	c.addCacheWorker("b", cacheB, "--speed", "100", "--transfer-rate", "100k")
	waitTransferMidway(t, c, "b")
	a.kill()
	epoch := c.status().GetEpoch()
	st := c.waitEpoch(epoch, 90*time.Second)
	for len(st.GetStages()) != 1 || st.GetStages()[0].GetWorkerId() != "b" {
		time.Sleep(200 * time.Millisecond)
		st = c.waitEpoch(st.GetEpoch()-1, 90*time.Second)
	}
	b := c.workers["b"]
	fromPeer := logLines(t, b, `"weights transfer interrupted: resuming"`, `"source":"a"`)
	if len(fromPeer) == 0 {
		t.Error("b never fetched from its peer a, or did not notice a die")
	}
	checkTokens(t, c, local)

	// A corrupted tensor is found at restart and fetched again.
	b.stop()
	files := cachedFiles(t, cacheB)
	var victim string
	for name := range files {
		victim = name
		break
	}
	path := filepath.Join(cacheB, "sha256", victim)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x55
	os.WriteFile(path, data, 0o644)
	b = c.addCacheWorker("b", cacheB, "--speed", "100")
	c.waitReady(60 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for len(logLines(t, b, `"weights in cache"`)) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(logLines(t, b, `"corrupted cached tensor`, victim)) != 1 {
		t.Error("the corrupted tensor was not reported")
	}
	if done := logLines(t, b, `"weights in cache"`); len(done) != 1 || done[0]["received"].(float64) != float64(files[victim]) {
		t.Errorf("after corrupting one tensor of %d bytes the worker logged %v", files[victim], done)
	}
	checkTokens(t, c, local)
}

// A worker without model files joining a serving cluster does not pause
// it: the plan that gives it layers is staged while it fetches them
// (throttled here to take seconds), the plan in force serves every request
// meanwhile, and the plan is published only once the range is in its
// cache — then both workers serve the tokens one process gives.
func TestStagedPlanKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	model := fixture(t, "phi-tiny-f32")
	local := localModel(t, model)
	gc := goldenCases(t, model)[0]
	want, err := engine.Greedy(local, gc.InputIDs, 4)
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, model, clusterOpts{})
	c.addCacheWorker("w1", t.TempDir(), "--speed", "100")
	c.waitReady(90 * time.Second)
	first := c.status().GetEpoch()

	// The tiny model's half is about 0.6 MB: at 100 kB/s, six seconds.
	w2 := c.addCacheWorker("w2", t.TempDir(), "--speed", "100", "--transfer-rate", "100K")
	var (
		staged, midway bool
		served         int
		deadline       = time.Now().Add(90 * time.Second)
	)
	for {
		st := c.status()
		var tr *phalanxpb.WorkerStatus
		for _, w := range st.GetWorkers() {
			if w.GetId() == "w2" {
				tr = w
			}
		}
		if st.GetEpoch() != first {
			break
		}
		if strings.Contains(st.GetPlanExplanation(), "staged: epoch") {
			staged = true
			if tr != nil && tr.GetTransferTotalBytes() > 0 && tr.GetTransferDoneBytes() < tr.GetTransferTotalBytes() {
				midway = true
			}
		}
		// The plan in force keeps serving, exactly, while w2 fetches.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, _, _, err := c.generate(ctx, tokenRequest(gc.InputIDs, len(want)))
		cancel()
		if err != nil {
			t.Fatalf("request %d while w2 fetches: %v", served, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("request %d while w2 fetches: %v, want %v", served, got, want)
		}
		served++
		if time.Now().After(deadline) {
			t.Fatalf("the plan never moved past epoch %d (%s)", first, st.GetPlanExplanation())
		}
	}
	if !staged || !midway {
		t.Errorf("never saw the staged plan with w2 fetching (staged %v, midway %v)", staged, midway)
	}
	if served < 3 {
		t.Errorf("only %d requests while w2 fetched", served)
	}
	t.Logf("%d requests served, all exact, while w2 fetched its range for the staged plan", served)
	c.waitReady(60 * time.Second)
	if st := c.status(); len(st.GetStages()) != 2 || strings.Contains(st.GetPlanExplanation(), "staged:") {
		t.Fatalf("after publication: stages %v, explanation %q", st.GetStages(), st.GetPlanExplanation())
	}
	checkTokens(t, c, local)
	// Its record still says what the range cost over the wire: the share,
	// received once by the staged fetch (the load received nothing).
	for _, w := range c.status().GetWorkers() {
		if w.GetId() == "w2" && (w.GetTransferTotalBytes() == 0 || w.GetTransferReceivedBytes() != w.GetTransferTotalBytes()) {
			t.Errorf("w2 reports %d bytes received for a range of %d", w.GetTransferReceivedBytes(), w.GetTransferTotalBytes())
		}
	}
	// The plan was published after w2 had its range in cache.
	cached := logLines(t, w2, "weights in cache")
	published := logLines(t, c.coord, "published a new plan")
	if len(cached) == 0 || len(published) < 2 {
		t.Fatalf("logs: %d 'weights in cache' lines from w2, %d plans published", len(cached), len(published))
	}
	a, errA := time.Parse(time.RFC3339Nano, fmt.Sprint(cached[0]["time"]))
	b, errB := time.Parse(time.RFC3339Nano, fmt.Sprint(published[1]["time"]))
	if errA != nil || errB != nil || !a.Before(b) {
		t.Errorf("the plan was published at %v, before w2 had its range in cache (%v) (%v %v)", b, a, errA, errB)
	}
	if n := len(logLines(t, w2, "fetching the layers of a staged plan")); n != 1 {
		t.Errorf("w2 started fetching the staged plan %d times, want once", n)
	}
	if n := len(logLines(t, c.coord, "staged a plan")); n != 1 {
		t.Errorf("the coordinator staged %d plans, want one", n)
	}
}

// A worker in another network namespace fetching its layers loses its link
// mid-transfer (ip link down, 4 s, shorter than its lease): the transfer
// goes on from where it stopped when the link is back, and the worker
// receives exactly its share — then serves the tokens one process gives.
// (An outage longer than the 30 s without a chunk that ends a stream is
// the source-killed case of TestWeightsTransferResumes.)
func TestWeightsTransferSurvivesLinkDown(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault test")
	}
	h := newTestHost(t, 41)
	model := fixture(t, "phi-tiny-f32")
	local := localModel(t, model)
	c := startCluster(t, model, clusterOpts{etcdHost: h.hostIP, listenHost: h.hostIP})
	addr := fmt.Sprintf("%s:%d", h.nsIP, 17100+os.Getpid()%1000)
	c.workers["w1"] = startProc(t, c.dir, "w1", "ip", "netns", "exec", h.ns, bin.worker, "--cache", t.TempDir(), "--listen", addr,
		"--etcd", c.etcd, "--cluster", c.name, "--name", "w1", "--threads", "1", "--lease-ttl", "15s", "--transfer-rate", "100K")
	mid := waitTransferMidway(t, c, "w1")
	h.link(t, false)
	time.Sleep(4 * time.Second)
	h.link(t, true)
	var after *phalanxpb.WorkerStatus
	eventuallyOK(t, 30*time.Second, "the status after the link came back", func() error {
		for _, w := range c.status().GetWorkers() {
			if w.GetId() == "w1" {
				after = w
				return nil
			}
		}
		return fmt.Errorf("w1 is not listed")
	})
	if after.GetTransferReceivedBytes() < mid.GetTransferReceivedBytes() {
		t.Errorf("w1 reports %d bytes received after the cut, %d before", after.GetTransferReceivedBytes(), mid.GetTransferReceivedBytes())
	}
	c.waitReady(90 * time.Second)
	checkTokens(t, c, local)
	for _, w := range c.status().GetWorkers() {
		if w.GetId() == "w1" && (w.GetTransferReceivedBytes() != w.GetTransferTotalBytes() || w.GetTransferDoneBytes() != w.GetTransferTotalBytes()) {
			t.Errorf("w1 received %d bytes for a share of %d (done %d): the cut cost a retransmission",
				w.GetTransferReceivedBytes(), w.GetTransferTotalBytes(), w.GetTransferDoneBytes())
		}
	}
	t.Logf("cut at %d of %d bytes; resumed to the end, no byte sent twice", mid.GetTransferReceivedBytes(), mid.GetTransferTotalBytes())
}
