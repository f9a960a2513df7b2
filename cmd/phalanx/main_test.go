package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

func phalanx(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

const fixture = "../../testdata/phi-tiny-f32"

func TestLogitsAndGenerateJSON(t *testing.T) {
	out, errs, code := phalanx(t, "logits", "--model", fixture, "--tokens", "0,1023,5", "--all-positions")
	if code != 0 {
		t.Fatal(errs)
	}
	var l struct{ Logits [][]float64 }
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Logits) != 3 || len(l.Logits[0]) != 1024 {
		t.Fatalf("logits: %v rows, err %v", len(l.Logits), err)
	}
	out, errs, code = phalanx(t, "generate", "--model", fixture, "--tokens", "0,1023,5,123,77,5,999", "--max-tokens", "16", "--temperature", "0", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var g struct{ Tokens []int }
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatal(err)
	}
	// golden.json's len7 case.
	want := []int{414, 661, 375, 20, 981, 535, 812, 708, 200, 249, 414, 287, 917, 687, 788, 661}
	if len(g.Tokens) != len(want) {
		t.Fatalf("tokens %v", g.Tokens)
	}
	for i := range want {
		if g.Tokens[i] != want[i] {
			t.Fatalf("tokens %v, want %v", g.Tokens, want)
		}
	}
}

func TestSynthThenGenerateText(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if _, errs, code := phalanx(t, "synth", "--out", dir, "--preset", "tiny", "--dtype", "bf16", "--shards", "2", "--seed", "5"); code != 0 {
		t.Fatal(errs)
	}
	for _, f := range []string{"config.json", "tokenizer.json", "model.safetensors.index.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	args := []string{"generate", "--model", dir, "--prompt", "Once upon", "--template", "chat", "--max-tokens", "12",
		"--temperature", "0.9", "--top-k", "40", "--seed", "11", "--json"}
	a, errs, code := phalanx(t, args...)
	if code != 0 {
		t.Fatal(errs)
	}
	b, _, _ := phalanx(t, args...)
	if strip(a) != strip(b) {
		t.Errorf("same seed, different output:\n%s\n%s", a, b)
	}
	var res struct {
		Text   string
		Tokens []int
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
		}
	}
	if err := json.Unmarshal([]byte(a), &res); err != nil {
		t.Fatal(err)
	}
	if res.Usage.PromptTokens == 0 || len(res.Tokens) == 0 {
		t.Errorf("result %+v", res)
	}
	// Streaming mode prints the same text.
	args[len(args)-1] = "--seed=11"
	s, _, _ := phalanx(t, args...)
	if strings.TrimSuffix(s, "\n") != res.Text {
		t.Errorf("streamed %q, JSON text %q", s, res.Text)
	}
}

func TestTokenizeVectors(t *testing.T) {
	gguf := "../../testdata/tokenizer/ggml-vocab-phi-2.gguf"
	out, errs, code := phalanx(t, "tokenize", "--tokenizer", gguf, "Hello world\n\n   indented")
	if code != 0 {
		t.Fatal(errs)
	}
	var r struct{ IDs []int }
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.IDs) == 0 {
		t.Fatal(out, err)
	}
	ids := strings.Trim(strings.ReplaceAll(strings.Join(strings.Fields(strings.Trim(out[7:], "]}\n")), ""), " ", ""), "[]")
	text, errs, code := phalanx(t, "detokenize", "--tokenizer", gguf, ids)
	if code != 0 || text != "Hello world\n\n   indented" {
		t.Errorf("detokenize %q (%s)", text, errs)
	}
}

// --kv-cache f16 runs the one-process commands with an F16 cache: the same
// greedy tokens as the float32 cache on this prompt (golden.json's len7),
// logits that differ in their low bits.
func TestKVCacheFlag(t *testing.T) {
	args := []string{"generate", "--model", fixture, "--tokens", "0,1023,5,123,77,5,999", "--max-tokens", "16", "--temperature", "0", "--json"}
	out32, errs, code := phalanx(t, args...)
	if code != 0 {
		t.Fatal(errs)
	}
	out16, errs, code := phalanx(t, append(args, "--kv-cache", "f16")...)
	if code != 0 {
		t.Fatal(errs)
	}
	if strip(out32) != strip(out16) {
		t.Errorf("greedy answers differ:\nf32 %s\nf16 %s", strip(out32), strip(out16))
	}
	l32, errs, code := phalanx(t, "logits", "--model", fixture, "--tokens", "0,1023,5,123,77,5,999")
	if code != 0 {
		t.Fatal(errs)
	}
	l16, errs, code := phalanx(t, "logits", "--model", fixture, "--tokens", "0,1023,5,123,77,5,999", "--kv-cache", "f16")
	if code != 0 {
		t.Fatal(errs)
	}
	if l32 == l16 {
		t.Error("logits with an F16 cache are the float32 cache's: the flag did nothing")
	}
}

// printStatus names the coordinator's wire and KV cache dtypes (f32 when an
// older coordinator sends none).
func TestPrintStatusDTypes(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, &phalanxpb.ClusterStatusResponse{Wire: phalanxpb.DType_DTYPE_Q8, KvCache: phalanxpb.DType_DTYPE_F16})
	if !strings.Contains(b.String(), "activations between stages q8, keys and values kept in f16") {
		t.Errorf("status:\n%s", b.String())
	}
	b.Reset()
	printStatus(&b, &phalanxpb.ClusterStatusResponse{})
	if !strings.Contains(b.String(), "activations between stages f32, keys and values kept in f32") {
		t.Errorf("status of an older coordinator:\n%s", b.String())
	}
}

func TestBadInvocations(t *testing.T) {
	for _, args := range [][]string{
		{"nope"},
		{"logits", "--tokens", "1"},
		{"logits", "--model", fixture, "--tokens", "a,b"},
		{"generate", "--model", fixture},
		{"generate", "--model", fixture, "--tokens", "1", "--temperature", "-1"},
		{"generate", "--model", fixture, "--tokens", "1", "--template", "bogus"},
		{"synth", "--out", t.TempDir(), "--preset", "huge"},
		{"tokenize", "--tokenizer", "../../testdata/tokenizer/ggml-vocab-phi-2.gguf"},
		{"generate", "--model", fixture, "--tokens", "1", "--kv-cache", "q8"},
		{"bench", "--model", fixture, "--kv-cache", "bf16"},
		{"logits", "--model", fixture, "--tokens", "1", "--kv-cache", "f8"},
		{"run"},
		{"run", "--model", fixture, fixture},
	} {
		if _, _, code := phalanx(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	if _, errs, code := phalanx(t, "generate", "--model", fixture, "--tokens", "5000"); code != 1 || !strings.Contains(errs, "vocabulary") {
		t.Errorf("out-of-vocabulary id: exit %d: %s", code, errs)
	}
	if _, errs, code := phalanx(t, "generate", "--model", fixture, "--prompt", "hi"); code != 1 || !strings.Contains(errs, "tokenizer") {
		t.Errorf("text prompt without tokenizer: exit %d: %s", code, errs)
	}
}

// strip drops the timings, which differ from run to run.
func strip(js string) string {
	var m map[string]any
	json.Unmarshal([]byte(js), &m)
	delete(m, "timings")
	b, _ := json.Marshal(m)
	return string(b)
}

// The command list is one aligned column, whatever the longest name.
func TestUsageAligned(t *testing.T) {
	out, _, _ := phalanx(t)
	col := -1
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		name := strings.Fields(line)[0]
		c := strings.Index(line[2+len(name):], strings.Fields(line)[1]) + 2 + len(name)
		if col >= 0 && c != col {
			t.Errorf("%q: summary at column %d, others at %d", line, c, col)
		}
		col = c
	}
}

// A model path that does not exist says so, not "has no tokenizer".
func TestGenerateMissingModel(t *testing.T) {
	_, errs, code := phalanx(t, "generate", "--model", filepath.Join(t.TempDir(), "nonexistent"), "--prompt", "hi")
	if code != 1 || !strings.Contains(errs, "no such file or directory") || strings.Contains(errs, "has no tokenizer") {
		t.Errorf("exit %d: %s", code, errs)
	}
}

// The worker's --etcd-cert does not mention the coordinator's --embedded-etcd.
func TestWorkerHelp(t *testing.T) {
	_, errs, code := phalanx(t, "worker", "-h")
	if code != 0 || !strings.Contains(errs, "-etcd-cert") || strings.Contains(errs, "embedded") {
		t.Errorf("exit %d:\n%s", code, errs)
	}
}
