package tokenizer

import (
	"fmt"
	"strconv"

	"github.com/phalanx-llm/phalanx/engine/gguf"
)

// SetGGUF stores the tokenizer in w's metadata as llama.cpp's converter
// does for a GPT-2-style BPE vocabulary, the inverse of FromGGUFFile:
// tokenizer.ggml.model "gpt2", the given pre-tokenizer name, the tokens
// padded to vocabSize with "[PAD{id}]" entries of type unused (a model's
// embedding usually has more rows than its tokenizer has ids), their
// types (special added tokens control, other added tokens user-defined,
// the rest normal), the merges in rank order, and the BOS and EOS ids.
// The unknown-token id is the EOS id: byte-level BPE never produces it, and
// Phi-2's tokenizer names <|endoftext|> as its unk_token.
func (t *Tokenizer) SetGGUF(w *gguf.Writer, vocabSize int, pre string) error {
	if vocabSize < len(t.tokens) {
		return fmt.Errorf("%w: %d token ids do not fit a %d-row vocabulary", ErrInvalid, len(t.tokens), vocabSize)
	}
	tokens := make([]string, vocabSize)
	types := make([]int32, vocabSize)
	for id := range tokens {
		switch {
		case id >= len(t.tokens) || t.tokens[id] == "":
			tokens[id], types[id] = "[PAD"+strconv.Itoa(id)+"]", tokenUnused
		case t.isAdded[id] && t.special[id]:
			tokens[id], types[id] = t.tokens[id], tokenControl
		case t.isAdded[id]:
			tokens[id], types[id] = t.tokens[id], tokenUserDefined
		default:
			tokens[id], types[id] = t.tokens[id], tokenNormal
		}
	}
	ml := t.mergeList()
	merges := make([]string, len(ml))
	for i, m := range ml {
		merges[i] = m[0] + " " + m[1]
	}
	w.Set("tokenizer.ggml.model", gguf.String("gpt2"))
	w.Set("tokenizer.ggml.pre", gguf.String(pre))
	w.Set("tokenizer.ggml.tokens", gguf.StringArray(tokens))
	w.Set("tokenizer.ggml.token_type", gguf.NumberArray(types))
	w.Set("tokenizer.ggml.merges", gguf.StringArray(merges))
	if t.bos >= 0 {
		w.Set("tokenizer.ggml.bos_token_id", gguf.Uint32(uint32(t.bos)))
	}
	if t.eos >= 0 {
		w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(uint32(t.eos)))
		w.Set("tokenizer.ggml.unknown_token_id", gguf.Uint32(uint32(t.eos)))
	}
	return nil
}
