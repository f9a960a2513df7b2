package engine

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/synth"
)

// TestAttentionReference checks every layer's attention output against a
// plain float64 causal attention computed from the same step's traced
// queries, keys and values (the keys and values of earlier steps kept by
// the test), with grouped-query shapes: jobs that write their own KV heads
// (heads a job a multiple of the group) and the one-pass write (a group
// wider than a job's heads), float32 and F16 caches, three streams at
// different positions in one batch, a prompt then decode steps.
func TestAttentionReference(t *testing.T) {
	for _, c := range []struct{ heads, kvHeads int }{{4, 4}, {8, 2}, {16, 1}, {16, 8}} {
		p := synth.Presets["tiny"]
		p.Heads, p.KVHeads, p.Layers = c.heads, c.kvHeads, 2
		dir := filepath.Join(t.TempDir(), "m")
		if err := synth.Write(dir, synth.Options{Preset: p, DType: kernels.F32, Seed: 7}); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir, Options{Layers: AllLayers, Embedding: true, Head: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		for _, kv := range []kernels.DType{kernels.F32, kernels.F16} {
			t.Run(fmt.Sprintf("heads=%d/kv=%d/cache=%v", c.heads, c.kvHeads, kv), func(t *testing.T) {
				checkAttention(t, m, kv)
			})
		}
	}
}

func checkAttention(t *testing.T, m *Model, kv kernels.DType) {
	cfg := m.Config
	D, nh, kvh := cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	prompts := [][]int{{1, 2, 3, 4, 5}, {9}, {100, 200, 300, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}}
	spans := make([]Span, len(prompts))
	for i := range spans {
		c, err := m.NewCacheOf(kv)
		if err != nil {
			t.Fatal(err)
		}
		spans[i] = Span{Cache: c}
	}
	// keys[layer][span] and vals: every position's rows so far, as the
	// cache keeps them (rounded to F16 for an F16 cache).
	keys := make([][][]float32, cfg.NumLayers)
	vals := make([][][]float32, cfg.NumLayers)
	for l := range keys {
		keys[l], vals[l] = make([][]float32, len(spans)), make([][]float32, len(spans))
	}
	round := func(v []float32) []float32 {
		if kv != kernels.F16 {
			return append([]float32(nil), v...)
		}
		h := make([]uint16, len(v))
		kernels.NarrowF16(h, v)
		out := make([]float32, len(v))
		kernels.WidenF16(out, h)
		return out
	}
	for step := 0; step < 20; step++ {
		var ids []int
		for i := range spans {
			toks := []int{40 + 3*step + i}
			if step == 0 {
				toks = prompts[i]
			}
			spans[i].Tokens = len(toks)
			ids = append(ids, toks...)
		}
		x := make([]float32, len(ids)*cfg.HiddenSize)
		if err := m.Embed(ids, x); err != nil {
			t.Fatal(err)
		}
		var q []float32
		var checked int
		err := m.ForwardTrace(x, spans, func(layer int, name string, rows []float32) {
			switch name {
			case "q_rot":
				q = append(q[:0], rows[:len(ids)*nh*D]...)
			case "k_rot", "v":
				store := keys
				if name == "v" {
					store = vals
				}
				r := 0
				for i, s := range spans {
					store[layer][i] = append(store[layer][i], round(rows[r*kvh*D:(r+s.Tokens)*kvh*D])...)
					r += s.Tokens
				}
			case "attn_ctx":
				r := 0
				for i, s := range spans {
					past := s.Cache.Len()
					for tk := 0; tk < s.Tokens; tk++ {
						for h := 0; h < nh; h++ {
							want := naiveAttention(q[(r+tk)*nh*D+h*D:][:D], keys[layer][i], vals[layer][i], past+tk+1, h/(nh/kvh), kvh, D)
							got := rows[(r+tk)*nh*D+h*D:][:D]
							for j := range want {
								if d := math.Abs(float64(got[j]) - want[j]); d > 2e-5 {
									t.Fatalf("step %d layer %d stream %d token %d head %d: ctx[%d] %v, want %v", step, layer, i, tk, h, j, got[j], want[j])
								}
							}
							checked++
						}
					}
					r += s.Tokens
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if checked != len(ids)*nh*cfg.NumLayers {
			t.Fatalf("step %d: checked %d heads, want %d", step, checked, len(ids)*nh*cfg.NumLayers)
		}
	}
}

// naiveAttention is one query head over the first n positions of its KV
// head kh (rows of kvh·D), in float64.
func naiveAttention(q []float32, keys, vals []float32, n, kh, kvh, D int) []float64 {
	scores := make([]float64, n)
	peak := math.Inf(-1)
	for p := range n {
		var s float64
		for j := range D {
			s += float64(q[j]) * float64(keys[p*kvh*D+kh*D+j])
		}
		scores[p] = s / math.Sqrt(float64(D))
		peak = max(peak, scores[p])
	}
	var sum float64
	for p := range scores {
		scores[p] = math.Exp(scores[p] - peak)
		sum += scores[p]
	}
	out := make([]float64, D)
	for p := range n {
		for j := range D {
			out[j] += scores[p] / sum * float64(vals[p*kvh*D+kh*D+j])
		}
	}
	return out
}
