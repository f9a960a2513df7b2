package engine

import (
	"math"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// logSoftmax returns log softmax(row) in float64.
func logSoftmax(row []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, float64(v))
	}
	sum := 0.0
	for _, v := range row {
		sum += math.Exp(float64(v) - mx)
	}
	out := make([]float64, len(row))
	for i, v := range row {
		out[i] = float64(v) - mx - math.Log(sum)
	}
	return out
}

// klDivergence is KL(softmax(p) ‖ softmax(q)) in nats.
func klDivergence(p, q []float32) float64 {
	lp, lq := logSoftmax(p), logSoftmax(q)
	kl := 0.0
	for i := range lp {
		kl += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return kl
}

// The quality of the block types against the F32 golden logits: top-1
// agreement over every position and mean KL divergence. The figures are in
// docs/quantization.md.
func TestGGUFQuantizedQuality(t *testing.T) {
	t.Log("| fixture | type | case | positions | top-1 agreement | mean KL (nats) | greedy tokens equal |")
	t.Log("|---|---|---|---|---|---|---|")
	for _, fx := range fixtures {
		g := loadGolden(t, fx)
		for _, typ := range []kernels.DType{kernels.F16, kernels.Q8_0, kernels.Q4_0} {
			m := loadFull(t, writeGGUFFile(t, fixtureDir(fx), typ, false))
			V := m.Config.VocabSize
			for _, c := range g.Cases {
				logits := allLogits(t, m, c.InputIDs)
				agree, kl := 0, 0.0
				for i, pos := range c.LogitsFull.Positions {
					row := logits[pos*V : (pos+1)*V]
					if Argmax(row) == c.Argmax[pos] {
						agree++
					}
					kl += klDivergence(c.LogitsFull.Rows[i], row)
				}
				n := len(c.LogitsFull.Positions)
				kl /= float64(n)
				greedy, err := Greedy(m, c.InputIDs, len(c.Greedy.Tokens))
				if err != nil {
					t.Fatal(err)
				}
				same := 0
				for same < len(greedy) && greedy[same] == c.Greedy.Tokens[same] {
					same++
				}
				t.Logf("| %s | %v | %s | %d | %d/%d | %.2e | %d/%d |", fx, typ, c.Name, n, agree, n, kl, same, len(greedy))
				// Loose bounds that still catch a wrong layout (which
				// gives KL of order 1 and chance-level agreement).
				// Q4_0 of these small random matrices is coarse; the
				// exact check of the layout is TestGGUFMatchesRoundedWeights.
				limit := map[kernels.DType]float64{kernels.F16: 1e-4, kernels.Q8_0: 1e-2, kernels.Q4_0: 0.5}[typ]
				if kl > limit {
					t.Errorf("%s %v %s: mean KL %.3g above %.3g", fx, typ, c.Name, kl, limit)
				}
				if typ != kernels.Q4_0 && float64(agree) < 0.8*float64(n) {
					t.Errorf("%s %v %s: top-1 agreement %d/%d", fx, typ, c.Name, agree, n)
				}
			}
		}
	}
}
