package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
