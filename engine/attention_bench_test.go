package engine

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/synth"
)

// fillCache makes a cache hold n positions of random keys and values, as
// a long prompt would, without running the prompt (rows drawn from a small
// pool of random rows, so that filling a full-size model's caches is quick).
func fillCache(c *KVCache, n int, r *rand.Rand) {
	if err := c.reserve(n); err != nil {
		panic(err)
	}
	pool := make([][]float32, 61)
	for i := range pool {
		pool[i] = make([]float32, c.kvDim)
		for j := range pool[i] {
			pool[i][j] = float32(r.NormFloat64())
		}
	}
	for li := range c.layers.Len() {
		for p := 0; p < n; p++ {
			c.write(li, p, pool[r.IntN(len(pool))], pool[r.IntN(len(pool))])
		}
	}
	c.n = n
}

// BenchmarkDecodeAtPosition measures one decode step of a Phi-2-sized layer
// at growing context lengths: the step grows by the attention over the
// cache (linear in the position), allocates nothing that grows with it,
// and copies no cache.
func BenchmarkDecodeAtPosition(b *testing.B) {
	if testing.Short() {
		b.Skip("full-width benchmark skipped under -short")
	}
	m := loadOneLayer(b)
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, m.Config.HiddenSize)
	for _, pos := range []int{16, 500, 1000, 2000} {
		b.Run(fmt.Sprintf("pos=%d", pos), func(b *testing.B) {
			c := m.NewCache()
			fillCache(c, pos, r)
			// One step first: the cache's one-time growth is not per step.
			if err := m.Forward(x, []Span{{Cache: c, Tokens: 1}}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.Truncate(pos)
				if err := m.Forward(x, []Span{{Cache: c, Tokens: 1}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// loadOneLayer loads a Phi-2-sized model of one F16 layer (synthesized into
// the temporary directory once), closed at the benchmark's end.
func loadOneLayer(b *testing.B) *Model {
	if testing.Short() {
		b.Skip("full-width benchmark skipped under -short")
	}
	dir := filepath.Join(os.TempDir(), "phalanx-bench-phi2w-1l-f16")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		p := synth.Presets["phi-2"]
		p.Layers = 1
		if err := synth.Write(dir, synth.Options{Preset: p, DType: kernels.F16, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	m, err := Load(dir, Options{Layers: AllLayers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// BenchmarkAttention is one Phi-2-sized layer's attention alone (every head
// of every stream over its cache, the new position's keys and values
// written first, as in a step), for one and eight streams at 500 and 2,000 positions:
// it reads each stream's cached keys and values once, so it is bound by
// memory, and GB/s is that read's rate; float32 and F16 caches.
func BenchmarkAttention(b *testing.B) {
	m := loadOneLayer(b)
	r := rand.New(rand.NewPCG(1, 1))
	for _, kv := range []kernels.DType{kernels.F32, kernels.F16} {
		for _, streams := range []int{1, 8} {
			for _, pos := range []int{500, 2000} {
				benchmarkAttention(b, m, r, kv, streams, pos)
			}
		}
	}
}

func benchmarkAttention(b *testing.B, m *Model, r *rand.Rand, kv kernels.DType, streams, pos int) {
	b.Run(fmt.Sprintf("kv=%v/streams=%d/pos=%d", kv, streams, pos), func(b *testing.B) {
		spans := make([]Span, streams)
		for i := range spans {
			c, err := m.NewCacheOf(kv)
			if err != nil {
				b.Fatal(err)
			}
			fillCache(c, pos-1, r)
			spans[i] = Span{Cache: c, Tokens: 1}
		}
		x := make([]float32, streams*m.Config.HiddenSize)
		if err := m.Forward(x, spans); err != nil { // writes position pos-1
			b.Fatal(err)
		}
		for _, s := range spans {
			if err := s.Cache.Truncate(pos - 1); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			j := m.attentionJobs(0, spans)
			m.pool.Run(j.N, j.Run)
		}
		bytes := float64(streams) * float64(pos) * float64(2*m.Config.KVDim()*kv.Size())
		b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
	})
}
