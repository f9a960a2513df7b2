package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/gguf"
)

// An F32 GGUF file gives the same logits and tokens as the model directory.
func TestQuantizeF32ThenLogits(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny.gguf")
	stdout, errs, code := phalanx(t, "quantize", "--model", fixture, "--type", "f32", "--out", out)
	if code != 0 {
		t.Fatal(errs)
	}
	if !strings.Contains(stdout, "wrote "+out) || !strings.Contains(errs, "no tokenizer") {
		t.Errorf("stdout %q, stderr %q", stdout, errs)
	}
	want, errs, code := phalanx(t, "logits", "--model", fixture, "--tokens", "0,1023,5", "--all-positions")
	if code != 0 {
		t.Fatal(errs)
	}
	got, errs, code := phalanx(t, "logits", "--model", out, "--tokens", "0,1023,5", "--all-positions")
	if code != 0 {
		t.Fatal(errs)
	}
	if got != want {
		t.Error("GGUF logits differ from the model directory's")
	}
	js, errs, code := phalanx(t, "generate", "--model", out, "--tokens", "0,1023,5,123,77,5,999", "--max-tokens", "16", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var g struct{ Tokens []int }
	if err := json.Unmarshal([]byte(js), &g); err != nil {
		t.Fatal(err)
	}
	// golden.json's len7 case.
	if want := []int{414, 661, 375, 20, 981, 535, 812, 708, 200, 249, 414, 287, 917, 687, 788, 661}; !slices.Equal(g.Tokens, want) {
		t.Errorf("tokens %v, want %v", g.Tokens, want)
	}
	if _, errs, code := phalanx(t, "generate", "--model", out, "--prompt", "hi"); code == 0 || !strings.Contains(errs, "no tokenizer") {
		t.Errorf("text prompt without a tokenizer: code %d, %s", code, errs)
	}
}

// A synthesized model with a tokenizer, quantized to Q8_0, generates text
// from the GGUF file alone, and the file carries llama.cpp's metadata.
func TestQuantizeQ8ThenGenerateText(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if _, errs, code := phalanx(t, "synth", "--out", dir, "--preset", "tiny", "--seed", "3"); code != 0 {
		t.Fatal(errs)
	}
	out := filepath.Join(t.TempDir(), "m-q8_0.gguf")
	if _, errs, code := phalanx(t, "quantize", "--model", dir, "--type", "q8_0", "--out", out, "--name", "tiny"); code != 0 {
		t.Fatal(errs)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"general.architecture": `"phi2"`, "general.name": `"tiny"`, "general.file_type": "7",
		"general.quantization_version": "2", "tokenizer.ggml.model": `"gpt2"`, "tokenizer.ggml.pre": `"phi-2"`,
		"phi2.block_count": "4", "phi2.rope.dimension_count": "8", "tokenizer.ggml.add_bos_token": "false",
	} {
		if v, ok := f.Value(key); !ok || v.String() != want {
			t.Errorf("%s = %v, want %s", key, v, want)
		}
	}
	if ti, err := f.Tensor("blk.0.attn_qkv.weight"); err != nil || ti.Type != gguf.TypeQ8_0 || ti.Dims[1] != 3*ti.Dims[0] {
		t.Errorf("attn_qkv: %+v, %v", ti, err)
	}
	if ti, err := f.Tensor("blk.0.attn_qkv.bias"); err != nil || ti.Type != gguf.TypeF32 {
		t.Errorf("attn_qkv bias: %+v, %v", ti, err)
	}
	f.Close()

	args := []string{"generate", "--model", out, "--prompt", "Once upon", "--max-tokens", "8", "--seed", "1", "--json"}
	js, errs, code := phalanx(t, args...)
	if code != 0 {
		t.Fatal(errs)
	}
	var res struct {
		Text   string
		Tokens []int
	}
	if err := json.Unmarshal([]byte(js), &res); err != nil || len(res.Tokens) == 0 {
		t.Fatalf("%s: %v", js, err)
	}
	ids, errs, code := phalanx(t, "tokenize", "--model", out, "Once upon")
	want, _, _ := phalanx(t, "tokenize", "--model", dir, "Once upon")
	if code != 0 || ids != want {
		t.Errorf("tokenize from GGUF %q, from the directory %q (%s)", ids, want, errs)
	}
}

func TestQuantizeBadInvocations(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.gguf")
	for _, args := range [][]string{
		{"quantize", "--model", fixture},
		{"quantize", "--out", out},
		{"quantize", "--model", fixture, "--out", out, "--type", "q5_k"},
		{"quantize", "--model", fixture, "--out", out, "--threads", "0"},
	} {
		if _, _, code := phalanx(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if _, _, code := phalanx(t, "quantize", "--model", t.TempDir(), "--out", out); code != 1 {
		t.Errorf("empty model directory: exit %d, want 1", code)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s: %v", out, err)
	}
	if m, _ := filepath.Glob(out + ".tmp*"); len(m) > 0 {
		t.Errorf("a failed run left %v", m)
	}
}

// --type q4_k_m writes llama.cpp's Q4_K_M file type; on the tiny fixture
// (hidden 64) only ffn_down's rows are whole super-blocks, and the command
// names the matrices that fell back.
func TestQuantizeQ4_K_M(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny-q4_k_m.gguf")
	stdout, errs, code := phalanx(t, "quantize", "--model", fixture, "--type", "Q4_K_M", "--out", out)
	if code != 0 {
		t.Fatal(errs)
	}
	if !strings.Contains(stdout, "Q4_K_M") || !strings.Contains(stdout, "2 Q6_K, 2 Q4_K") || !strings.Contains(errs, "token_embd.weight (Q8_0)") {
		t.Errorf("stdout %q, stderr %q", stdout, errs)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v, _ := f.Value("general.file_type"); v.String() != "15" {
		t.Errorf("general.file_type %v, want 15", v)
	}
	if ti, err := f.Tensor("blk.3.ffn_down.weight"); err != nil || ti.Type != gguf.TypeQ6_K {
		t.Errorf("blk.3.ffn_down: %+v, %v", ti, err)
	}
	if _, errs, code := phalanx(t, "generate", "--model", out, "--tokens", "0,1023,5", "--max-tokens", "4", "--json"); code != 0 {
		t.Fatal(errs)
	}
}
