package engine

import (
	"context"
	"errors"
	"testing"
)

// decodeStepwise feeds ids through a cache chunk tokens at a time and
// returns every position's logits.
func decodeStepwise(t *testing.T, m *Model, ids []int, chunk int) []float32 {
	t.Helper()
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	cache := m.NewCache()
	var out []float32
	for s := 0; s < len(ids); s += chunk {
		part := ids[s:min(s+chunk, len(ids))]
		x := make([]float32, len(part)*H)
		if err := m.Embed(part, x); err != nil {
			t.Fatal(err)
		}
		if err := m.Forward(x, []Span{{Cache: cache, Tokens: len(part)}}); err != nil {
			t.Fatal(err)
		}
		l := make([]float32, len(part)*V)
		if err := m.Logits(x, l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l...)
	}
	if cache.Len() != len(ids) {
		t.Fatalf("cache holds %d positions, want %d", cache.Len(), len(ids))
	}
	return out
}

func TestKVCacheMatchesFullPass(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			g := loadGolden(t, fx)
			m := loadFull(t, fixtureDir(fx))
			for _, c := range g.Cases {
				full := allLogits(t, m, c.InputIDs)
				for _, chunk := range []int{1, 2, 5} {
					step := decodeStepwise(t, m, c.InputIDs, chunk)
					if d := maxDiff(full, step); d != 0 {
						t.Errorf("%s chunk %d: KV-cache logits differ from a full pass by %.3g (must be bit-identical: replay depends on it)", c.Name, chunk, d)
					}
				}
			}
		})
	}
}

// A pipeline of stages [0,k) then [k,L) must compute exactly what one
// model of [0,L) computes: the same kernels on the same rows.
func TestSplitLayerRangesBitIdentical(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			g := loadGolden(t, fx)
			checkSplitsBitIdentical(t, fixtureDir(fx), g.Cases[len(g.Cases)-1].InputIDs)
		})
	}
}

// checkSplitsBitIdentical loads the model at path as stages [0,k) and
// [k,L), for every k, with the ends loaded apart, and requires the chained
// logits to be exactly the whole model's, and each stage to hold only its
// layers.
func checkSplitsBitIdentical(t *testing.T, path string, ids []int) {
	t.Helper()
	full := loadFull(t, path)
	L := full.Config.NumLayers
	H, V := full.Config.HiddenSize, full.Config.VocabSize
	want := allLogits(t, full, ids)
	for k := 0; k <= L; k++ {
		ends, err := Load(path, Options{Embedding: true, Head: true, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		a, err := Load(path, Options{Layers: LayerRange{0, k}, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Load(path, Options{Layers: LayerRange{k, L}, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, len(ids)*H)
		if err := ends.Embed(ids, x); err != nil {
			t.Fatal(err)
		}
		for _, st := range []*Model{a, b} {
			if err := st.Forward(x, []Span{{Cache: st.NewCache(), Tokens: len(ids)}}); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]float32, len(ids)*V)
		if err := ends.Logits(x, got); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("split at %d: logit %d is %v, want %v (bit-identical)", k, i, got[i], want[i])
			}
		}
		if err := a.Logits(x[:H], make([]float32, V)); !errors.Is(err, ErrNotHeld) {
			t.Errorf("a stage without the head computed logits: %v", err)
		}
		if a.HasHead() || a.HasEmbedding() || (k < L && a.WeightBytes() >= full.WeightBytes()) {
			t.Errorf("stage [0,%d) holds more than its layers", k)
		}
		ends.Close()
		a.Close()
		b.Close()
	}
}

// Sequences batched into one Forward give what they give alone.
func TestBatchEqualsSeparate(t *testing.T) {
	m := loadFull(t, fixtureDir("phi-tiny-f32"))
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	prompts := [][]int{{1, 2, 3, 4, 5}, {9}, {100, 200, 300}}
	caches := make([]*KVCache, len(prompts))
	var ids []int
	var spans []Span
	for i, p := range prompts {
		caches[i] = m.NewCache()
		ids = append(ids, p...)
		spans = append(spans, Span{Cache: caches[i], Tokens: len(p)})
	}
	x := make([]float32, len(ids)*H)
	if err := m.Embed(ids, x); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(x, spans); err != nil {
		t.Fatal(err)
	}
	// one decode step for all three at different positions
	next := []int{7, 8, 9}
	y := make([]float32, 3*H)
	if err := m.Embed(next, y); err != nil {
		t.Fatal(err)
	}
	for i := range spans {
		spans[i].Tokens = 1
	}
	if err := m.Forward(y, spans); err != nil {
		t.Fatal(err)
	}
	batched := make([]float32, 3*V)
	if err := m.Logits(y, batched); err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		seq := append(append([]int(nil), p...), next[i])
		alone := allLogits(t, m, seq)
		last := alone[(len(seq)-1)*V:]
		if d := maxDiff(last, batched[i*V:(i+1)*V]); d > 1e-5 {
			t.Errorf("sequence %d: batched logits differ by %.3g from running alone", i, d)
		}
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	m := loadFull(t, fixtureDir("phi-tiny-f32"))
	H := m.Config.HiddenSize
	c := m.NewCache()
	if err := m.Forward(make([]float32, 3*H), []Span{{Cache: c, Tokens: 2}}); !errors.Is(err, ErrInput) {
		t.Errorf("wrong hidden length: %v", err)
	}
	if err := m.Forward(make([]float32, 2*H), []Span{{Cache: c, Tokens: 1}, {Cache: c, Tokens: 1}}); !errors.Is(err, ErrInput) {
		t.Errorf("shared cache: %v", err)
	}
	if err := m.Embed([]int{m.Config.VocabSize}, make([]float32, H)); !errors.Is(err, ErrInput) {
		t.Errorf("token out of range: %v", err)
	}
	if err := m.Embed([]int{-1}, make([]float32, H)); !errors.Is(err, ErrInput) {
		t.Errorf("negative token: %v", err)
	}
	max := m.Config.MaxPositionEmbeddings
	if err := m.Forward(make([]float32, (max+1)*H), []Span{{Cache: c, Tokens: max + 1}}); !errors.Is(err, ErrContextFull) {
		t.Errorf("past the context window: %v", err)
	}
	if c.Len() != 0 {
		t.Errorf("a failed forward changed the cache: %d positions", c.Len())
	}
	other, err := Load(fixtureDir("phi-tiny-f32"), Options{Layers: LayerRange{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := m.Forward(make([]float32, H), []Span{{Cache: other.NewCache(), Tokens: 1}}); !errors.Is(err, ErrInput) {
		t.Errorf("cache of another layer range: %v", err)
	}
	if _, err := Load(fixtureDir("phi-tiny-f32"), Options{Layers: LayerRange{2, 9}}); !errors.Is(err, ErrInput) {
		t.Errorf("range past the last layer: %v", err)
	}
}

func TestCacheTruncateAndGrowth(t *testing.T) {
	m := loadFull(t, fixtureDir("phi-tiny-f32"))
	ids := []int{5, 6, 7, 8, 9, 10}
	full := allLogits(t, m, ids)
	V, H := m.Config.VocabSize, m.Config.HiddenSize
	c := m.NewCache()
	x := make([]float32, len(ids)*H)
	if err := m.Embed(ids, x); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(x, []Span{{Cache: c, Tokens: len(ids)}}); err != nil {
		t.Fatal(err)
	}
	// Roll back two positions and recompute them: same logits.
	if err := c.Truncate(4); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, 2*H)
	if err := m.Embed(ids[4:], y); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(y, []Span{{Cache: c, Tokens: 2}}); err != nil {
		t.Fatal(err)
	}
	l := make([]float32, 2*V)
	if err := m.Logits(y, l); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(l, full[4*V:]); d > 2e-5 {
		t.Errorf("after truncate: logits differ by %.3g", d)
	}
	if err := c.Truncate(7); err == nil {
		t.Error("truncating past the end succeeded")
	}
	if c.Bytes() < c.BytesFor(c.Len()) {
		t.Errorf("cache reports %d bytes for %d positions", c.Bytes(), c.Len())
	}
}

// A forward pass stopped between layers leaves every cache as it was, so
// the same tokens sent again compute exactly what an uninterrupted pass does.
func TestForwardContextStopsBetweenLayers(t *testing.T) {
	m := loadFull(t, fixtureDir(fixtures[0]))
	if m.Layers.Len() < 2 {
		t.Skip("fixture has one layer")
	}
	H := m.Config.HiddenSize
	ids := []int{1, 2, 3, 4, 5}
	embed := func(ids []int) []float32 {
		x := make([]float32, len(ids)*H)
		if err := m.Embed(ids, x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	want := m.NewCache()
	xw := embed(ids[:2])
	if err := m.Forward(xw, []Span{{Cache: want, Tokens: 2}}); err != nil {
		t.Fatal(err)
	}
	xw = embed(ids[2:])
	if err := m.Forward(xw, []Span{{Cache: want, Tokens: 3}}); err != nil {
		t.Fatal(err)
	}

	got := m.NewCache()
	x := embed(ids[:2])
	if err := m.Forward(x, []Span{{Cache: got, Tokens: 2}}); err != nil {
		t.Fatal(err)
	}
	// Cancelled after the first layer has appended to its cache.
	ctx, cancel := context.WithCancel(context.Background())
	x = embed(ids[2:])
	err := m.forward(ctx, x, []Span{{Cache: got, Tokens: 3}}, func(layer int, name string, _ []float32) {
		if name == "out" {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled forward returned %v, want context.Canceled", err)
	}
	if got.Len() != 2 {
		t.Fatalf("cache holds %d positions after a cancelled step, want 2", got.Len())
	}
	if err := m.ForwardContext(ctx, embed(ids[2:]), []Span{{Cache: got, Tokens: 3}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("forward with a done context returned %v", err)
	}
	x = embed(ids[2:])
	if err := m.ForwardContext(context.Background(), x, []Span{{Cache: got, Tokens: 3}}); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(x, xw); d != 0 {
		t.Fatalf("after a cancelled step the same tokens differ by %g", d)
	}
}
