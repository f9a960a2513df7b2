package ggufconv

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/synth"
)

var fixtures = []string{"phi-tiny-f32", "phi-tiny-bf16-sharded"}

func fixtureDir(name string) string { return filepath.Join("..", "..", "testdata", name) }

// convert writes dir as a GGUF file of type ft in a temporary directory.
func convert(t testing.TB, dir string, ft FileType, split bool) (string, *Report) {
	t.Helper()
	var buf bytes.Buffer
	rep, err := Write(context.Background(), dir, &buf, Options{Type: ft, SplitQKV: split})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bytes != int64(buf.Len()) {
		t.Fatalf("report says %d bytes, wrote %d", rep.Bytes, buf.Len())
	}
	path := filepath.Join(t.TempDir(), ft.String()+".gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, rep
}

func load(t testing.TB, path string) *engine.Model {
	t.Helper()
	mf, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mf.Load(engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// logits runs ids through a fresh cache and returns every position's row.
func logits(t testing.TB, m *engine.Model, ids []int) []float32 {
	t.Helper()
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	x := make([]float32, len(ids)*H)
	if err := m.Embed(ids, x); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(x, []engine.Span{{Cache: m.NewCache(), Tokens: len(ids)}}); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(ids)*V)
	if err := m.Logits(x, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// klDivergence is KL(softmax(p) ‖ softmax(q)) in nats.
func klDivergence(p, q []float32) float64 {
	lse := func(r []float32) float64 {
		mx := math.Inf(-1)
		for _, v := range r {
			mx = math.Max(mx, float64(v))
		}
		s := 0.0
		for _, v := range r {
			s += math.Exp(float64(v) - mx)
		}
		return mx + math.Log(s)
	}
	lp, lq := lse(p), lse(q)
	kl := 0.0
	for i := range p {
		a, b := float64(p[i])-lp, float64(q[i])-lq
		kl += math.Exp(a) * (a - b)
	}
	return kl
}

func tokens(n, vocab int, seed uint32) []int {
	ids := make([]int, n)
	for i := range ids {
		seed = seed*1664525 + 1013904223
		ids[i] = int(seed>>8) % vocab
	}
	return ids
}

// An F32 file computes exactly what the model directory computes.
func TestWriteF32MatchesDirectory(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				path, _ := convert(t, fixtureDir(fx), AllF32, split)
				m, ref := load(t, path), load(t, fixtureDir(fx))
				ids := tokens(9, m.Config.VocabSize, 7)
				if !slices.Equal(logits(t, m, ids), logits(t, ref, ids)) {
					t.Errorf("split=%v: GGUF logits differ from the directory's", split)
				}
			}
		})
	}
}

// Every matrix's bytes are kernels.EncodeRow of the source rows in the
// type the mix names: the streaming, threaded conversion adds nothing.
func TestWriteTensorBytes(t *testing.T) {
	dir := synthModel(t)
	path, _ := convert(t, dir, MostlyQ4_K_M, false)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := engine.OpenSafetensors(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, tc := range []struct {
		gguf, hf string
		rows     int
		want     kernels.DType
	}{
		{"token_embd.weight", "model.embed_tokens.weight", synthPreset.Vocab, kernels.Q4_K},
		// With 3 layers useMoreBits picks layer 2 only.
		{"blk.0.ffn_down.weight", "model.layers.0.mlp.fc2.weight", synthPreset.Hidden, kernels.Q4_K},
		{"blk.2.ffn_down.weight", "model.layers.2.mlp.fc2.weight", synthPreset.Hidden, kernels.Q6_K},
		{"blk.1.attn_qkv.weight", "model.layers.1.self_attn.q_proj.weight", synthPreset.Hidden, kernels.Q5_K},
		{"blk.1.ffn_up.weight", "model.layers.1.mlp.fc1.weight", synthPreset.Intermediate, kernels.Q4_K},
		{"output.weight", "lm_head.weight", synthPreset.Vocab, kernels.Q6_K},
	} {
		ti, err := f.Tensor(tc.gguf)
		if err != nil {
			t.Fatal(err)
		}
		if ti.Type != ggufTypes[tc.want] {
			t.Errorf("%s: %v, want %v", tc.gguf, ti.Type, tc.want)
			continue
		}
		data, err := f.ReadTensor(ti)
		if err != nil {
			t.Fatal(err)
		}
		cols := int(ti.Dims[0])
		m, err := src.Matrix(tc.hf, tc.rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		rb := tc.want.RowBytes(cols)
		x, want := make([]float32, cols), make([]byte, rb)
		for r := 0; r < tc.rows; r++ {
			m.Row(r, x)
			kernels.EncodeRow(tc.want, want, x)
			if !bytes.Equal(data[r*rb:(r+1)*rb], want) {
				t.Fatalf("%s row %d differs from EncodeRow", tc.gguf, r)
			}
		}
	}
}

// The mixes put each weight where llama-quantize puts it for a 32-layer
// phi2 model.
func TestMixTypes(t *testing.T) {
	moreBits := []int{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}
	for i := 0; i < 32; i++ {
		if useMoreBits(i, 32) != slices.Contains(moreBits, i) {
			t.Errorf("useMoreBits(%d, 32) = %v", i, useMoreBits(i, 32))
		}
	}
	for _, tc := range []struct {
		ft    FileType
		name  string
		layer int
		want  kernels.DType
	}{
		{MostlyQ4_K_M, "token_embd.weight", -1, kernels.Q4_K},
		{MostlyQ4_K_M, "output.weight", -1, kernels.Q6_K},
		{MostlyQ4_K_M, "blk.5.attn_qkv.weight", 5, kernels.Q5_K},
		{MostlyQ4_K_M, "blk.5.attn_v.weight", 5, kernels.Q4_K},
		{MostlyQ4_K_M, "blk.6.attn_v.weight", 6, kernels.Q6_K},
		{MostlyQ4_K_M, "blk.5.attn_q.weight", 5, kernels.Q4_K},
		{MostlyQ4_K_M, "blk.0.ffn_down.weight", 0, kernels.Q6_K},
		{MostlyQ4_K_M, "blk.4.ffn_down.weight", 4, kernels.Q4_K},
		{MostlyQ4_K_M, "blk.4.ffn_up.weight", 4, kernels.Q4_K},
		{MostlyQ4_K_M, "blk.4.attn_output.weight", 4, kernels.Q4_K},
		{MostlyQ5_K_M, "token_embd.weight", -1, kernels.Q5_K},
		{MostlyQ5_K_M, "output.weight", -1, kernels.Q6_K},
		{MostlyQ5_K_M, "blk.5.attn_qkv.weight", 5, kernels.Q6_K},
		{MostlyQ5_K_M, "blk.31.ffn_down.weight", 31, kernels.Q6_K},
		{MostlyQ5_K_M, "blk.10.ffn_down.weight", 10, kernels.Q5_K},
		{MostlyQ6_K, "blk.10.ffn_down.weight", 10, kernels.Q6_K},
		{MostlyQ6_K, "token_embd.weight", -1, kernels.Q6_K},
		{MostlyQ4_0, "output.weight", -1, kernels.Q4_0},
		{MostlyQ8_0, "blk.0.attn_qkv.weight", 0, kernels.Q8_0},
	} {
		if got := tc.ft.tensorType(tc.name, tc.layer, 32); got != tc.want {
			t.Errorf("%v %s: %v, want %v", tc.ft, tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		want kernels.DType
		cols int
		got  kernels.DType
	}{
		{kernels.Q4_K, 2560, kernels.Q4_K}, {kernels.Q4_K, 64, kernels.Q8_0}, {kernels.Q6_K, 80, kernels.F16},
		{kernels.Q5_K, 320, kernels.Q8_0}, {kernels.Q8_0, 80, kernels.F16}, {kernels.F32, 7, kernels.F32},
	} {
		if got := fitType(tc.want, tc.cols); got != tc.got {
			t.Errorf("fitType(%v, %d) = %v, want %v", tc.want, tc.cols, got, tc.got)
		}
	}
	for _, n := range FileTypeNames() {
		ft, ok := ParseFileType(n)
		if !ok || ft.String() != n {
			t.Errorf("%q parses to %v, %v", n, ft, ok)
		}
	}
}

// synthPreset is a small model whose rows are whole K-quant super-blocks.
var synthPreset = synth.Preset{Hidden: 256, Intermediate: 1024, Layers: 3, Heads: 4, KVHeads: 4, Vocab: 512, MaxPos: 128,
	RotaryFactor: 0.5, RopeTheta: 10000, Eps: 1e-5, BOS: 511, EOS: 511}

func synthModel(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "synth256")
	if err := synth.Write(dir, synth.Options{Preset: synthPreset, DType: kernels.F32, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// K-quant files of a model whose rows are whole super-blocks load with
// engine.Open and stay close to the F32 model: KL divergence and top-1
// agreement over random tokens, bounded per type.
func TestKQuantFilesLoad(t *testing.T) {
	dir := synthModel(t)
	ref := load(t, dir)
	V := ref.Config.VocabSize
	ids := tokens(48, V, 11)
	want := logits(t, ref, ids)
	wantGreedy, err := engine.Greedy(ref, ids[:8], 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ft       FileType
		maxKL    float64
		minAgree int
	}{
		// Measured: 7.5e-4, 3.9e-3, 1.2e-2, 5.0e-2; a wrong layout gives
		// KL of order 1. Random weights give flat logits, so top-1
		// agreement is a weak signal (q5_k_m agrees less than q4_k_m).
		{MostlyQ8_0, 0.002, 42}, {MostlyQ6_K, 0.01, 38}, {MostlyQ5_K_M, 0.03, 30}, {MostlyQ4_K_M, 0.1, 28},
	} {
		t.Run(tc.ft.String(), func(t *testing.T) {
			path, rep := convert(t, dir, tc.ft, false)
			if len(rep.Fallbacks) != 0 {
				t.Errorf("fallbacks %v", rep.Fallbacks)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := f.Value("general.file_type")
			f.Close()
			if v.String() != fmt.Sprint(uint32(tc.ft)) {
				t.Errorf("general.file_type %v, want %d", v, uint32(tc.ft))
			}
			m := load(t, path)
			got := logits(t, m, ids)
			kl, agree := 0.0, 0
			for p := range ids {
				a, b := want[p*V:(p+1)*V], got[p*V:(p+1)*V]
				kl += klDivergence(a, b)
				if engine.Argmax(a) == engine.Argmax(b) {
					agree++
				}
			}
			kl /= float64(len(ids))
			greedy, err := engine.Greedy(m, ids[:8], 8)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v (%v): mean KL %.2e, top-1 %d/%d, greedy %v (F32 %v)", tc.ft, rep.Types, kl, agree, len(ids), greedy, wantGreedy)
			if kl > tc.maxKL || agree < tc.minAgree {
				t.Errorf("%v: mean KL %.3g (limit %.3g), top-1 %d/%d (at least %d)", tc.ft, kl, tc.maxKL, agree, len(ids), tc.minAgree)
			}
		})
	}
}

// On the tiny fixture (hidden 64) the K-quant mixes fall back to Q8_0
// except for ffn_down (rows of 256), and the file still loads and runs.
func TestKQuantFallbackOnTinyFixture(t *testing.T) {
	dir := fixtureDir("phi-tiny-f32")
	ref := load(t, dir)
	for _, ft := range []FileType{MostlyQ4_K_M, MostlyQ5_K_M, MostlyQ6_K} {
		path, rep := convert(t, dir, ft, false)
		var fellBack []string
		for _, fb := range rep.Fallbacks {
			if fb.Got != kernels.Q8_0 {
				t.Errorf("%v: %s fell back to %v", ft, fb.Name, fb.Got)
			}
			fellBack = append(fellBack, fb.Name)
		}
		// 4 layers × (attn_qkv, attn_output, ffn_up), token_embd, output.
		if len(fellBack) != 14 || slices.ContainsFunc(fellBack, func(n string) bool { return filepath.Ext(n) == ".ffn_down.weight" }) {
			t.Errorf("%v: fallbacks %v", ft, fellBack)
		}
		m := load(t, path)
		ids := []int{0, 1023, 5, 123, 77, 5, 999}
		a, b := logits(t, ref, ids), logits(t, m, ids)
		V := m.Config.VocabSize
		kl := 0.0
		for p := range ids {
			kl += klDivergence(a[p*V:(p+1)*V], b[p*V:(p+1)*V])
		}
		if kl /= float64(len(ids)); kl > 0.05 {
			t.Errorf("%v: mean KL %.3g", ft, kl)
		}
		if _, err := engine.Greedy(m, ids, 8); err != nil {
			t.Fatal(err)
		}
	}
}
