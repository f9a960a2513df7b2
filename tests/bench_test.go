package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/textgen"
)

// benchModel is a Phi-2-wide model: $PHALANX_BENCH_CLUSTER_MODEL, or a
// synthesized one with Phi-2's width and 4 layers in F32 (2.4 GB), cached
// in the temporary directory. Per-token pipeline overhead does not depend
// on the layer count; the width sets the bytes per hop.
func benchModel(b *testing.B) string {
	if testing.Short() {
		b.Skip("cluster benchmark skipped under -short")
	}
	if dir := os.Getenv("PHALANX_BENCH_CLUSTER_MODEL"); dir != "" {
		return dir
	}
	binaries(b)
	dir := filepath.Join(os.TempDir(), "phalanx-bench-phi2w-4l-f32")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir
	}
	out, err := exec.Command(bin.phalanx, "synth", "--out", dir+".tmp", "--preset", "phi-2", "--layers", "4", "--dtype", "f32").CombinedOutput()
	if err != nil {
		b.Fatalf("synth: %v\n%s", err, out)
	}
	if err := os.Rename(dir+".tmp", dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

const benchTokens = 24

// BenchmarkDecodeLocal is the single-process baseline: one decode step of
// every layer and the head, one thread.
func BenchmarkDecodeLocal(b *testing.B) {
	dir := benchModel(b)
	m, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	g := textgen.ForConfig(m.Config, nil)
	var perToken time.Duration
	for b.Loop() {
		be, _ := textgen.NewLocalBackend(m)
		res, err := g.Run(context.Background(), be, textgen.Request{Tokens: []int{1, 2, 3, 4}, MaxTokens: benchTokens, IgnoreEOS: true}, func(textgen.Chunk) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		perToken += res.Decode / time.Duration(len(res.Tokens)-1)
	}
	b.ReportMetric(float64(perToken.Microseconds())/1000/float64(b.N), "ms/token")
}

// BenchmarkDecodeCluster is single-stream decode latency through 1, 2 and
// 4 worker processes (one thread each, equal speeds so the layers split
// evenly).
func BenchmarkDecodeCluster(b *testing.B) {
	dir := benchModel(b)
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			c := startCluster(b, dir, clusterOpts{workers: n, workerArgs: []string{"--speed", "100"}})
			var perToken float64
			for b.Loop() {
				_, _, last, err := c.generate(context.Background(), tokenRequest([]int{1, 2, 3, 4}, benchTokens))
				if err != nil {
					b.Fatal(err)
				}
				perToken += 1000 / last.GetTimings().GetDecodeTokensPerSecond()
			}
			b.ReportMetric(perToken/float64(b.N), "ms/token")
			b.ReportMetric(float64(len(c.status().GetStages())), "stages")
		})
	}
}

// BenchmarkThroughputCluster is aggregate decode throughput with 1, 8 and
// 32 concurrent streams on 2 workers of 2 threads each (what `phalanx up
// --workers 2 --threads 2` runs): batching reads each weight once per step
// for every stream.
func BenchmarkThroughputCluster(b *testing.B) {
	dir := benchModel(b)
	c := startCluster(b, dir, clusterOpts{workers: 2, workerArgs: []string{"--speed", "100", "--threads", "2"},
		coordArgs: []string{"--threads", "2"}})
	for _, streams := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			var tokens int
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				var mu sync.Mutex
				for s := 0; s < streams; s++ {
					wg.Add(1)
					go func(s int) {
						defer wg.Done()
						toks, _, _, err := c.generate(context.Background(), tokenRequest([]int{s + 1, 7, 9}, benchTokens))
						if err != nil {
							b.Error(err)
						}
						mu.Lock()
						tokens += len(toks)
						mu.Unlock()
					}(s)
				}
				wg.Wait()
			}
			b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tok/s")
		})
	}
}

// streamFigures runs streams concurrent generations of benchTokens tokens
// (after a 3-token prompt) per iteration and reports tok/s (every stream's
// tokens over the wall time) and ms/token (a stream's decode time per
// token, averaged over the streams). rows is the token rows that crossed
// the pipeline: a prompt's tokens and every generated token but the last.
//
// metrics, the coordinator's --metrics address, adds the split of a step's
// stage round trips: compute-ms/step (what the stages report computing)
// and net-ms/step (the rest: network, framing, queueing), summed over the
// stages. It is less noisy than tok/s on a shared machine.
func streamFigures(b *testing.B, c *cluster, metrics string, streams int) (rows int) {
	b.Helper()
	before := stageSplit(b, metrics)
	var tokens, answers int
	var msPerToken float64
	var mu sync.Mutex
	start := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				prompt := []int{s + 1, 7, 9}
				toks, _, last, err := c.generate(context.Background(), tokenRequest(prompt, benchTokens))
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				tokens += len(toks)
				rows += len(prompt) + len(toks) - 1
				msPerToken += 1000 / last.GetTimings().GetDecodeTokensPerSecond()
				answers++
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tok/s")
	b.ReportMetric(msPerToken/float64(max(answers, 1)), "ms/token")
	after := stageSplit(b, metrics)
	if steps := after.steps - before.steps; steps > 0 {
		b.ReportMetric(1000*(after.compute-before.compute)/steps, "compute-ms/step")
		b.ReportMetric(1000*((after.roundTrip-after.compute)-(before.roundTrip-before.compute))/steps, "net-ms/step")
	}
	return rows
}

// stageTimes are the coordinator's running sums of stage round trips and
// stage compute, in seconds, and the steps (of the first stage) counted.
type stageTimes struct{ roundTrip, compute, steps float64 }

func stageSplit(b *testing.B, metrics string) stageTimes {
	b.Helper()
	var st stageTimes
	if metrics == "" {
		return st
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		name, rest, _ := strings.Cut(line, "{")
		labels, value, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "phalanx_stage_step_seconds_sum":
			st.roundTrip += v
		case name == "phalanx_stage_compute_seconds_sum":
			st.compute += v
		case name == "phalanx_stage_step_seconds_count" && strings.Contains(labels, `stage="0"`):
			st.steps += v
		}
	}
	return st
}

// warm runs a short answer outside any timing: the weights' pages and the
// connections are warm.
func (c *cluster) warm(b *testing.B) {
	b.Helper()
	if _, _, _, err := c.generate(context.Background(), tokenRequest([]int{5, 7, 9}, 4)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNetworkLatency is decode through 2 workers on loopback whose
// answers are held back by --debug-reply-delay, as by a network of that
// round-trip time per hop, with 1 and 8 streams. The workers run one
// thread each; inflight=1 keeps one micro-batch in flight (--micro-batches
// 1: the stages take turns, as two workers on every CPU of one machine
// would), inflight=2 two (distinct --host-id values, as on two machines:
// while one batch waits out its round trip the other computes). The cost
// model and the figures: docs/network.md.
func BenchmarkNetworkLatency(b *testing.B) {
	dir := benchModel(b)
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		for _, inflight := range []int{1, 2} {
			b.Run(fmt.Sprintf("rtt=%v/inflight=%d", delay, inflight), func(b *testing.B) {
				metrics := freeAddr(b)
				c := startCluster(b, dir, clusterOpts{workers: 0, coordArgs: []string{"--min-workers", "2", "--metrics", metrics,
					"--micro-batches", fmt.Sprint(inflight)}})
				for i := range 2 {
					c.addWorker(fmt.Sprint("w", i+1), "--speed", "100", "--debug-reply-delay", delay.String(),
						"--host-id", fmt.Sprint("bench-machine-", i%inflight))
				}
				c.waitReady(2 * time.Minute)
				c.warm(b)
				streamCounts := []int{1, 8}
				if inflight == 2 {
					streamCounts = []int{8} // one stream is one micro-batch either way
				}
				for _, streams := range streamCounts {
					b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) { streamFigures(b, c, metrics, streams) })
				}
			})
		}
	}
}

// BenchmarkNetworkBandwidth is decode through 2 workers, each in a network
// namespace of its own whose veth link to the coordinator is limited by tc
// tbf (both directions) to 1 Gbit/s, 100 Mbit/s and 20 Mbit/s (and not
// limited: rate=none), with f32, f16 and q8 activations on the wire and 1
// and 8 streams. B/token/hop is what crossed a worker's link per token
// row, both directions, halved: one transfer of one token's activations
// with every header (protobuf, gRPC, HTTP/2, TCP, IP, Ethernet) and the
// lease keep-alives. Needs root, ip and tc.
func BenchmarkNetworkBandwidth(b *testing.B) {
	dir := benchModel(b)
	if _, err := exec.LookPath("tc"); err != nil {
		b.Skip("tc (iproute2) is not installed")
	}
	hosts := []*testHost{newTestHost(b, 8), newTestHost(b, 9)}
	for _, wire := range []string{"f32", "f16", "q8"} {
		b.Run("wire="+wire, func(b *testing.B) {
			metrics := freeAddr(b)
			c := startCluster(b, dir, clusterOpts{workers: 0, etcdHost: hosts[0].hostIP,
				coordArgs: []string{"--min-workers", "2", "--wire", wire, "--metrics", metrics}})
			for i, h := range hosts {
				c.addWorkerOn(h, fmt.Sprint("w", i+1), "--speed", "100")
			}
			c.waitReady(2 * time.Minute)
			c.warm(b)
			for _, rate := range []struct {
				name string
				bits int64
			}{{"none", 0}, {"1gbit", 1e9}, {"100mbit", 100e6}, {"20mbit", 20e6}} {
				for _, h := range hosts {
					h.shape(b, rate.bits)
				}
				for _, streams := range []int{1, 8} {
					b.Run(fmt.Sprintf("rate=%s/streams=%d", rate.name, streams), func(b *testing.B) {
						before := hosts[0].linkBytes(b)
						rows := streamFigures(b, c, metrics, streams)
						crossed := hosts[0].linkBytes(b) - before
						b.ReportMetric(float64(crossed)/2/float64(max(rows, 1)), "B/token/hop")
					})
				}
			}
			for _, h := range hosts {
				h.shape(b, 0)
			}
		})
	}
}
