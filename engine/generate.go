package engine

import "fmt"

// Greedy prefills prompt in one pass, then decodes n tokens one at a time,
// each the argmax of its logits (ties to the lower id). The model must hold
// every layer, the embedding and the head. It is the reference decoding
// loop; servers use the pipeline with a sampler instead.
func Greedy(m *Model, prompt []int, n int) ([]int, error) {
	if m.Layers.Start != 0 || m.Layers.End != m.Config.NumLayers {
		return nil, fmt.Errorf("%w: greedy decoding needs every layer, model holds %v", ErrNotHeld, m.Layers)
	}
	if len(prompt) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", ErrInput)
	}
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	cache := m.NewCache()
	defer cache.Release()
	logits := make([]float32, V)
	x := make([]float32, len(prompt)*H)
	ids := prompt
	out := make([]int, 0, n)
	for len(out) < n {
		x = x[:len(ids)*H]
		if err := m.Embed(ids, x); err != nil {
			return out, err
		}
		if err := m.Forward(x, []Span{{Cache: cache, Tokens: len(ids)}}); err != nil {
			return out, err
		}
		if err := m.Logits(x[(len(ids)-1)*H:], logits); err != nil {
			return out, err
		}
		next := Argmax(logits)
		out = append(out, next)
		ids = []int{next}
	}
	return out, nil
}

// Argmax is the index of the largest value, the lowest index on ties.
func Argmax(row []float32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}
