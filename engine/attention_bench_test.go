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
// a long prompt would, without running the prompt.
func fillCache(c *KVCache, n int, r *rand.Rand) {
	if err := c.reserve(n); err != nil {
		panic(err)
	}
	for li := range c.layers.Len() {
		for p := 0; p < n; p++ {
			k, v := c.layerRows(li, p, 1)
			for j := range k {
				k[j] = float32(r.NormFloat64())
				v[j] = float32(r.NormFloat64())
			}
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
	defer m.Close()
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
