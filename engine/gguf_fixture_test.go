package engine

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// The engine's GGUF tests need GGUF files of the fixtures. The converter
// (engine/ggufconv) imports engine, so these tests cannot use it; this is
// the converter's layout in its simplest form, in memory: every 2-D weight
// in typ (F16 when its rows are not whole blocks of typ), norms and biases
// F32, q/k/v fused unless split. engine/ggufconv's tests check that the
// converter's files load to the same logits as these.

// ggufTypeOf is the ggml type of a kernels dtype.
func ggufTypeOf(d kernels.DType) gguf.Type {
	return map[kernels.DType]gguf.Type{
		kernels.F32: gguf.TypeF32, kernels.F16: gguf.TypeF16, kernels.BF16: gguf.TypeBF16,
		kernels.Q8_0: gguf.TypeQ8_0, kernels.Q4_0: gguf.TypeQ4_0,
		kernels.Q4_K: gguf.TypeQ4_K, kernels.Q5_K: gguf.TypeQ5_K, kernels.Q6_K: gguf.TypeQ6_K,
	}[d]
}

// writeGGUFFile converts a fixture to a GGUF file in a temporary directory.
func writeGGUFFile(t testing.TB, dir string, typ kernels.DType, split bool) string {
	t.Helper()
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenSafetensors(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w := gguf.NewWriter()
	w.Set("general.architecture", gguf.String(ggufArch))
	w.Set("general.name", gguf.String(filepath.Base(dir)))
	u32 := func(key string, v int) { w.Set(ggufArch+"."+key, gguf.Uint32(uint32(v))) }
	u32("context_length", cfg.MaxPositionEmbeddings)
	u32("embedding_length", cfg.HiddenSize)
	u32("feed_forward_length", cfg.IntermediateSize)
	u32("block_count", cfg.NumLayers)
	u32("attention.head_count", cfg.NumHeads)
	u32("attention.head_count_kv", cfg.NumKVHeads)
	w.Set(ggufArch+".attention.layer_norm_epsilon", gguf.Float32(float32(cfg.LayerNormEps)))
	u32("rope.dimension_count", cfg.RotaryDim)
	if cfg.BOSTokenID >= 0 {
		w.Set("tokenizer.ggml.bos_token_id", gguf.Uint32(uint32(cfg.BOSTokenID)))
	}
	if len(cfg.EOSTokenIDs) > 0 {
		w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(uint32(cfg.EOSTokenIDs[0])))
	}
	// matrix writes the rows of the named HF tensors, stacked.
	matrix := func(name string, cols int, parts ...string) {
		d := typ
		if d.RowBytes(cols) < 0 {
			d = kernels.F16
		}
		var data []byte
		rows := 0
		x := make([]float32, cols)
		for _, p := range parts {
			ti, err := src.(*safetensorsSource).set.Tensor(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := src.Matrix(p, ti.Shape[0], cols)
			if err != nil {
				t.Fatal(err)
			}
			row := make([]byte, d.RowBytes(cols))
			for r := 0; r < m.Rows; r++ {
				m.Row(r, x)
				kernels.EncodeRow(d, row, x)
				data = append(data, row...)
			}
			rows += m.Rows
		}
		if err := w.AddTensor(name, ggufTypeOf(d), []uint64{uint64(cols), uint64(rows)}, data); err != nil {
			t.Fatal(err)
		}
	}
	vector := func(name string, parts ...string) {
		var v []float32
		for _, p := range parts {
			var part []float32
			if p == "zero" {
				part = make([]float32, cfg.VocabSize)
			} else {
				ti, err := src.(*safetensorsSource).set.Tensor(p)
				if err != nil {
					t.Fatal(err)
				}
				if part, err = src.Vector(p, ti.Shape[0]); err != nil {
					t.Fatal(err)
				}
			}
			v = append(v, part...)
		}
		data := make([]byte, 4*len(v))
		kernels.EncodeRow(kernels.F32, data, v)
		if err := w.AddTensor(name, gguf.TypeF32, []uint64{uint64(len(v))}, data); err != nil {
			t.Fatal(err)
		}
	}
	H, I := cfg.HiddenSize, cfg.IntermediateSize
	matrix("token_embd.weight", H, "model.embed_tokens.weight")
	for i := 0; i < cfg.NumLayers; i++ {
		hf := func(s string) string { return fmt.Sprintf("model.layers.%d.%s", i, s) }
		g := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		vector(g("attn_norm.weight"), hf("input_layernorm.weight"))
		vector(g("attn_norm.bias"), hf("input_layernorm.bias"))
		if split {
			for _, n := range []string{"q", "k", "v"} {
				matrix(g("attn_"+n+".weight"), H, hf("self_attn."+n+"_proj.weight"))
				vector(g("attn_"+n+".bias"), hf("self_attn."+n+"_proj.bias"))
			}
		} else {
			matrix(g("attn_qkv.weight"), H, hf("self_attn.q_proj.weight"), hf("self_attn.k_proj.weight"), hf("self_attn.v_proj.weight"))
			vector(g("attn_qkv.bias"), hf("self_attn.q_proj.bias"), hf("self_attn.k_proj.bias"), hf("self_attn.v_proj.bias"))
		}
		matrix(g("attn_output.weight"), cfg.NumHeads*cfg.HeadDim, hf("self_attn.dense.weight"))
		vector(g("attn_output.bias"), hf("self_attn.dense.bias"))
		matrix(g("ffn_up.weight"), H, hf("mlp.fc1.weight"))
		vector(g("ffn_up.bias"), hf("mlp.fc1.bias"))
		matrix(g("ffn_down.weight"), I, hf("mlp.fc2.weight"))
		vector(g("ffn_down.bias"), hf("mlp.fc2.bias"))
	}
	vector("output_norm.weight", "model.final_layernorm.weight")
	vector("output_norm.bias", "model.final_layernorm.bias")
	head, headBias := "lm_head.weight", "lm_head.bias"
	if !src.Has(head) {
		head = "model.embed_tokens.weight"
	}
	if !src.Has(headBias) {
		headBias = "zero"
	}
	matrix("output.weight", H, head)
	vector("output.bias", headBias)

	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	split1 := map[bool]string{true: "-split"}[split]
	path := filepath.Join(t.TempDir(), strings.ToLower(typ.String())+split1+".gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
