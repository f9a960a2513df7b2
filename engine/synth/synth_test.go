package synth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
)

func TestWriteLoadsAndIsDeterministic(t *testing.T) {
	p := Presets["tiny"]
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	if err := Write(a, Options{Preset: p, DType: kernels.F32, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	if err := Write(b, Options{Preset: p, DType: kernels.F32, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	if err := Write(c, Options{Preset: p, DType: kernels.F32, Seed: 7, Shards: 3}); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.ReadFile(filepath.Join(a, "model.safetensors"))
	fb, _ := os.ReadFile(filepath.Join(b, "model.safetensors"))
	if !bytes.Equal(fa, fb) {
		t.Error("same seed wrote different files")
	}
	if _, err := os.Stat(filepath.Join(c, "model-00003-of-00003.safetensors")); err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 2, 3, 4}
	var logits [][]float32
	for _, dir := range []string{a, c} {
		m, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true})
		if err != nil {
			t.Fatal(err)
		}
		toks, err := engine.Greedy(m, ids, 4)
		if err != nil || len(toks) != 4 {
			t.Fatal(toks, err)
		}
		H, V := m.Config.HiddenSize, m.Config.VocabSize
		x := make([]float32, len(ids)*H)
		m.Embed(ids, x)
		if err := m.Forward(x, []engine.Span{{Cache: m.NewCache(), Tokens: len(ids)}}); err != nil {
			t.Fatal(err)
		}
		l := make([]float32, V)
		m.Logits(x[(len(ids)-1)*H:], l)
		logits = append(logits, l)
		m.Close()
	}
	for i := range logits[0] {
		if logits[0][i] != logits[1][i] {
			t.Fatal("sharding changed the model")
		}
	}
}

func TestHalfDTypesRoundTheSameValues(t *testing.T) {
	p := Presets["tiny"]
	p.Layers = 1
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		dir := t.TempDir()
		if err := Write(dir, Options{Preset: p, DType: dt, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		m, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.WeightBytes(), int64(dt.Size())*int64(p.Vocab*p.Hidden+4*p.Hidden*p.Hidden+2*p.Hidden*p.Intermediate); got != want {
			t.Errorf("%v: %d weight bytes, want %d (16-bit weights must stay 16-bit)", dt, got, want)
		}
		if _, err := engine.Greedy(m, []int{5}, 2); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
}
