package tokenizer

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/gguf"
)

// Phi-2's Hugging Face tokenizer written with SetGGUF has exactly the
// tokenizer metadata of llama.cpp's converter (ggml-vocab-phi-2.gguf).
func TestSetGGUFMatchesLlamaCpp(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "tokenizer")
	hf, err := FromHFDir(filepath.Join(dir, "phi-2-hf"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := gguf.Open(filepath.Join(dir, "ggml-vocab-phi-2.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	vocab, err := ref.Strings("tokenizer.ggml.tokens")
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	if err := hf.SetGGUF(w, len(vocab), "phi-2"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := gguf.NewFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "written.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if got.Keys()[0] != "tokenizer.ggml.model" {
		t.Errorf("keys %v", got.Keys())
	}
	for _, k := range got.Keys() {
		a, _ := got.Value(k)
		b, ok := ref.Value(k)
		if !ok {
			t.Errorf("%s: not in llama.cpp's file", k)
			continue
		}
		if a.Type() != b.Type() {
			t.Errorf("%s: type %v, llama.cpp %v", k, a.Type(), b.Type())
		}
		switch k {
		case "tokenizer.ggml.tokens", "tokenizer.ggml.merges":
			as, _ := a.AsStrings()
			bs, _ := b.AsStrings()
			if len(as) != len(bs) {
				t.Errorf("%s: %d entries, llama.cpp %d", k, len(as), len(bs))
				continue
			}
			for i := range as {
				if as[i] != bs[i] {
					t.Errorf("%s[%d] = %q, llama.cpp %q", k, i, as[i], bs[i])
					break
				}
			}
		case "tokenizer.ggml.token_type":
			ai, _ := a.AsInts()
			bi, _ := b.AsInts()
			for i := range bi {
				if i >= len(ai) || ai[i] != bi[i] {
					t.Errorf("%s[%d] differs", k, i)
					break
				}
			}
		default:
			if a.String() != b.String() {
				t.Errorf("%s = %v, llama.cpp %v", k, a, b)
			}
		}
	}
	back, err := FromGGUFFile(got)
	if err != nil {
		t.Fatal(err)
	}
	text := "Hello world\n\n    def f(x):\n\t\treturn x <|endoftext|>"
	if a, b := back.Encode(text), hf.Encode(text); !equalIDs(a, b) {
		t.Errorf("round trip encodes %v, HF %v", a, b)
	}
	if err := hf.SetGGUF(gguf.NewWriter(), 100, "phi-2"); err == nil {
		t.Error("a vocabulary smaller than the tokenizer was accepted")
	}
}

func equalIDs(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
