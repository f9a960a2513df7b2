package engine_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/synth"
)

// benchModel returns a full-size Phi-2 directory: $PHALANX_BENCH_MODEL, or a
// synthesized F16 model cached in the temporary directory (5.6 GB, written
// once).
func benchModel(b *testing.B) string {
	if testing.Short() {
		b.Skip("full-size benchmark skipped under -short")
	}
	if dir := os.Getenv("PHALANX_BENCH_MODEL"); dir != "" {
		return dir
	}
	dir := filepath.Join(os.TempDir(), "phalanx-bench-phi2-f16-seed1")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir
	}
	b.Logf("synthesizing a full-size Phi-2 (F16) into %s", dir)
	if err := synth.Write(dir+".tmp", synth.Options{Preset: synth.Presets["phi-2"], DType: kernels.F16, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(dir+".tmp", dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkDecode measures one decode step (all layers and the head) at a
// short context; tok/s is 1/step.
func BenchmarkDecode(b *testing.B) {
	m := loadBenchModel(b)
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	cache := m.NewCache()
	x := make([]float32, H)
	logits := make([]float32, V)
	step := func() {
		if err := m.Embed([]int{42}, x); err != nil {
			b.Fatal(err)
		}
		if err := m.Forward(x, []engine.Span{{Cache: cache, Tokens: 1}}); err != nil {
			b.Fatal(err)
		}
		if err := m.Logits(x, logits); err != nil {
			b.Fatal(err)
		}
	}
	step() // page the weights in
	for b.Loop() {
		if cache.Len() >= 512 {
			cache.Truncate(1)
		}
		step()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric(float64(m.WeightBytes()), "weight-bytes/tok")
}

// BenchmarkPrefill128 measures a 128-token prompt in one pass.
func BenchmarkPrefill128(b *testing.B) {
	m := loadBenchModel(b)
	const n = 128
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i * 7919) % V
	}
	x := make([]float32, n*H)
	logits := make([]float32, V)
	for b.Loop() {
		if err := m.Embed(ids, x); err != nil {
			b.Fatal(err)
		}
		if err := m.Forward(x, []engine.Span{{Cache: m.NewCache(), Tokens: n}}); err != nil {
			b.Fatal(err)
		}
		if err := m.Logits(x[(n-1)*H:], logits); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric(float64(m.WeightBytes())/n, "weight-bytes/tok")
}

// BenchmarkDecodeBatch measures one decode step of 1, 8 and 32 streams
// batched (one token each, own caches) through all layers and the head:
// the ceiling of a cluster's aggregate decode throughput on this machine,
// since batching reads each weight once per step for every stream.
func BenchmarkDecodeBatch(b *testing.B) {
	m := loadBenchModel(b)
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			caches := make([]*engine.KVCache, n)
			spans := make([]engine.Span, n)
			ids := make([]int, n)
			for i := range caches {
				caches[i] = m.NewCache()
				spans[i] = engine.Span{Cache: caches[i], Tokens: 1}
				ids[i] = 42 + i
			}
			step := batchStep(b, m, ids, spans)
			step()
			for b.Loop() {
				if caches[0].Len() >= 256 {
					for _, c := range caches {
						c.Truncate(1)
					}
				}
				step()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkDecodeBatchLong is BenchmarkDecodeBatch with every stream's
// cache already holding 1,024 positions (random keys and values, as a long
// prompt would leave): at that length a stream's attention reads 1.3 GB of
// float32 keys and values a step on Phi-2, as much as its weights, and
// unlike the weights each stream reads its own; float32 and F16 caches.
func BenchmarkDecodeBatchLong(b *testing.B) {
	const ctx = 1024
	m := loadBenchModel(b)
	r := rand.New(rand.NewPCG(5, 6))
	for _, kv := range []kernels.DType{kernels.F32, kernels.F16} {
		for _, n := range []int{1, 8} {
			benchmarkDecodeLong(b, m, r, kv, n, ctx)
		}
	}
}

func benchmarkDecodeLong(b *testing.B, m *engine.Model, r *rand.Rand, kv kernels.DType, n, ctx int) {
	b.Run(fmt.Sprintf("kv=%v/streams=%d", kv, n), func(b *testing.B) {
		spans := make([]engine.Span, n)
		ids := make([]int, n)
		for i := range spans {
			c, err := m.NewCacheOf(kv)
			if err != nil {
				b.Fatal(err)
			}
			engine.FillCacheForBench(c, ctx, r)
			spans[i] = engine.Span{Cache: c, Tokens: 1}
			ids[i] = 42 + i
		}
		step := batchStep(b, m, ids, spans)
		for b.Loop() {
			for _, s := range spans {
				if err := s.Cache.Truncate(ctx); err != nil {
					b.Fatal(err)
				}
			}
			step()
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
	})
}

// batchStep returns one decode step of the streams (token ids[i] into
// spans[i]) through the embedding, every layer and the head.
func batchStep(b *testing.B, m *engine.Model, ids []int, spans []engine.Span) func() {
	x := make([]float32, len(ids)*m.Config.HiddenSize)
	logits := make([]float32, len(ids)*m.Config.VocabSize)
	return func() {
		if err := m.Embed(ids, x); err != nil {
			b.Fatal(err)
		}
		if err := m.Forward(x, spans); err != nil {
			b.Fatal(err)
		}
		if err := m.Logits(x, logits); err != nil {
			b.Fatal(err)
		}
	}
}

// loadBenchModel loads the whole benchModel (embedding, layers, head) for
// the benchmark, closed at its end.
func loadBenchModel(b *testing.B) *engine.Model {
	b.Helper()
	m, err := engine.Load(benchModel(b), engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}
