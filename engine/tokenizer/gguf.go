package tokenizer

import (
	"fmt"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/gguf"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokenNormal      = 1
	tokenUnknown     = 2
	tokenControl     = 3
	tokenUserDefined = 4
	tokenUnused      = 5
	tokenByte        = 6
)

// Pre-tokenizer names in tokenizer.ggml.pre that mean GPT-2's regex.
var gpt2PreTokenizers = map[string]bool{"": true, "default": true, "gpt-2": true, "gpt2": true, "phi-2": true, "codegen": true}

// FromGGUF loads the tokenizer stored in a GGUF file's metadata.
func FromGGUF(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return FromGGUFFile(f)
}

// FromGGUFFile builds a tokenizer from an opened GGUF file's
// tokenizer.ggml.* metadata. Control (3) and user-defined (4) tokens become
// added tokens matched in the text before BPE: control tokens as special,
// user-defined ones (CodeGen's whitespace runs in Phi-2) as plain text.
func FromGGUFFile(f *gguf.File) (*Tokenizer, error) {
	src := f.Name
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	if model != "gpt2" {
		return nil, fmt.Errorf("%s: %w: tokenizer.ggml.model %q (want gpt2, byte-level BPE)", src, ErrUnsupported, model)
	}
	pre := ""
	if _, ok := f.Value("tokenizer.ggml.pre"); ok {
		if pre, err = f.String("tokenizer.ggml.pre"); err != nil {
			return nil, err
		}
	}
	if !gpt2PreTokenizers[pre] {
		return nil, fmt.Errorf("%s: %w: tokenizer.ggml.pre %q (only GPT-2's pre-tokenizer is implemented)", src, ErrUnsupported, pre)
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	if len(tokens) == 0 || len(tokens) > 1<<24 {
		return nil, fmt.Errorf("%s: %w: %d tokens", src, ErrInvalid, len(tokens))
	}
	var types []int64
	if _, ok := f.Value("tokenizer.ggml.token_type"); ok {
		if types, err = f.Ints("tokenizer.ggml.token_type"); err != nil {
			return nil, err
		}
		if len(types) != len(tokens) {
			return nil, fmt.Errorf("%s: %w: %d token types for %d tokens", src, ErrInvalid, len(types), len(tokens))
		}
	}
	var merges []string
	if _, ok := f.Value("tokenizer.ggml.merges"); ok {
		if merges, err = f.Strings("tokenizer.ggml.merges"); err != nil {
			return nil, err
		}
	}
	d := &definition{tokens: tokens, merges: make([][2]string, len(merges)), bos: -1, eos: -1}
	for i, m := range merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s: tokenizer.ggml.merges[%d] %q: %w: not two tokens", src, i, m, ErrInvalid)
		}
		d.merges[i] = [2]string{a, b}
	}
	for id, typ := range types {
		if (typ == tokenControl || typ == tokenUserDefined) && tokens[id] != "" {
			d.added = append(d.added, AddedToken{
				ID: id, Content: tokens[id],
				Special: typ == tokenControl, Normalized: typ == tokenUserDefined,
			})
		}
	}
	for key, dst := range map[string]*int{"tokenizer.ggml.bos_token_id": &d.bos, "tokenizer.ggml.eos_token_id": &d.eos} {
		if _, ok := f.Value(key); !ok {
			continue
		}
		id, err := f.Uint(key)
		if err != nil {
			return nil, err
		}
		if id >= uint64(len(tokens)) {
			return nil, fmt.Errorf("%s: %s = %d: %w: outside the %d-token vocabulary", src, key, id, ErrInvalid, len(tokens))
		}
		*dst = int(id)
	}
	return newTokenizer(d, src)
}
