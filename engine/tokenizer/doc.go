// Package tokenizer implements byte-level BPE tokenization exactly as
// Hugging Face's tokenizers library does it for Phi-2 (and GPT-2), so that
// Phalanx produces the token ids the model was trained on.
//
// # Usage
//
//	tok, err := tokenizer.Load("model.gguf") // or a HF directory / tokenizer.json
//	ids := tok.Encode("def hello():\n    return 1")
//	text := tok.Decode(ids)
//
//	dec := tok.NewStreamDecoder()
//	for id := range generated {
//		fmt.Print(dec.Add(id)) // only complete UTF-8
//	}
//	fmt.Print(dec.Flush())
//
// Tokenizers load from a Hugging Face tokenizer.json (FromHFJSON,
// FromHFDir) or from a GGUF file's tokenizer.ggml.* metadata (FromGGUF,
// FromGGUFFile); both give identical ids for Phi-2. MarshalHFJSON writes a
// loaded tokenizer back as tokenizer.json, and SynthesizeByteLevelJSON
// makes a small valid one for synthetic models.
//
// # Encoding, step by step
//
//  1. Added tokens are split out of the raw text first, leftmost-longest,
//     like Hugging Face's added vocabulary: non-normalized ones (the
//     special <|endoftext|>) in a first pass, then normalized ones
//     (CodeGen's whitespace runs 50257-50294, two to 31 spaces and two to
//     nine tabs) within the remaining text. In GGUF files these are the
//     control (type 3) and user-defined (type 4) tokens.
//  2. The text between them is pre-tokenized with GPT-2's pattern
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     by a hand-written scanner (Go's regexp has no lookahead), with \s
//     the Unicode White_Space property as in Oniguruma.
//  3. Each piece's bytes start as GPT-2 byte tokens and are merged by
//     rank, leftmost lowest-ranked pair first. Results for words up to 48
//     bytes are cached per Tokenizer.
//
// No normalization, no prefix space and no BOS: Phi-2's tokenizer adds
// none. Text that is not valid UTF-8 is still encoded losslessly, byte for
// byte.
//
// # Decoding
//
// Decode concatenates each token's bytes (a token whose characters are not
// all in the byte-level alphabet, such as a run of plain spaces, stands for
// its own UTF-8) and converts the result as Rust's
// String::from_utf8_lossy does, one U+FFFD per maximal ill-formed
// subsequence. The stream decoder emits the same text incrementally.
//
// # Limits
//
// Only what Phi-2 and GPT-2 need is implemented; other tokenizer.json
// features (normalizers, other pre-tokenizers, add_prefix_space,
// lstrip/rstrip on added tokens, BPE dropout) and other GGUF
// pre-tokenizers are rejected with ErrUnsupported instead of tokenizing
// differently from the reference. Decoding does not apply transformers'
// clean_up_tokenization_spaces.
package tokenizer
