package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hfTokenizerJSON is the part of a Hugging Face tokenizer.json this
// package understands.
type hfTokenizerJSON struct {
	AddedTokens  []hfAddedToken  `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        struct {
		Type                    string           `json:"type"`
		Vocab                   map[string]int   `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		ByteFallback            bool             `json:"byte_fallback"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		Dropout                 *json.RawMessage `json:"dropout"`
	} `json:"model"`
}

type hfAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfByteLevel struct {
	Type           string          `json:"type"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	PreTokenizers  json.RawMessage `json:"pretokenizers"`
}

func isNull(m json.RawMessage) bool {
	m = bytes.TrimSpace(m)
	return len(m) == 0 || string(m) == "null"
}

// FromHFDir loads tokenizer.json and, if present, tokenizer_config.json
// from a Hugging Face model directory.
func FromHFDir(dir string) (*Tokenizer, error) {
	tok, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	t, err := fromHFJSON(tok, cfg, filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	return t, nil
}

// FromHFJSON builds a tokenizer from the contents of a tokenizer.json and
// an optional tokenizer_config.json (nil if absent), which supplies the BOS
// and EOS tokens. Without a config, <|endoftext|> serves as both if it is
// an added token.
//
// Only what Phi-2 and GPT-2 use is accepted: a BPE model without dropout,
// byte fallback or affixes, the ByteLevel pre-tokenizer with GPT-2's regex
// and no prefix space, no normalizer, and added tokens without
// lstrip/rstrip/single_word. Anything else is rejected with ErrUnsupported
// rather than tokenized differently from Hugging Face.
func FromHFJSON(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	return fromHFJSON(tokenizerJSON, configJSON, "tokenizer.json")
}

func fromHFJSON(tokenizerJSON, configJSON []byte, source string) (*Tokenizer, error) {
	var j hfTokenizerJSON
	if err := json.Unmarshal(tokenizerJSON, &j); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", source, ErrInvalid, err)
	}
	unsupported := func(what string, args ...any) error {
		return fmt.Errorf("%s: %w: "+what, append([]any{source, ErrUnsupported}, args...)...)
	}
	m := &j.Model
	if m.Type != "" && m.Type != "BPE" {
		return nil, unsupported("model type %q", m.Type)
	}
	if m.ByteFallback || m.IgnoreMerges || (m.Dropout != nil && !isNull(*m.Dropout)) ||
		(m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") ||
		(m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return nil, unsupported("BPE options (dropout, byte_fallback, ignore_merges, affixes)")
	}
	if !isNull(j.Normalizer) {
		return nil, unsupported("normalizer %s", j.Normalizer)
	}
	if err := checkByteLevel(j.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%s: pre_tokenizer: %w", source, err)
	}
	if !isNull(j.Decoder) {
		var dec hfByteLevel
		if err := json.Unmarshal(j.Decoder, &dec); err != nil || dec.Type != "ByteLevel" {
			return nil, unsupported("decoder %s", j.Decoder)
		}
	}

	size := 0
	for _, id := range m.Vocab {
		if id < 0 || id >= 1<<24 {
			return nil, fmt.Errorf("%s: %w: vocabulary id %d", source, ErrInvalid, id)
		}
		size = max(size, id+1)
	}
	for _, a := range j.AddedTokens {
		if a.ID < 0 || a.ID >= 1<<24 {
			return nil, fmt.Errorf("%s: %w: added token id %d", source, ErrInvalid, a.ID)
		}
		size = max(size, a.ID+1)
	}
	d := &definition{tokens: make([]string, size), bos: -1, eos: -1}
	for s, id := range m.Vocab {
		if d.tokens[id] != "" {
			return nil, fmt.Errorf("%s: %w: id %d used by %q and %q", source, ErrInvalid, id, d.tokens[id], s)
		}
		d.tokens[id] = s
	}
	for _, a := range j.AddedTokens {
		if a.Lstrip || a.Rstrip || a.SingleWord {
			return nil, unsupported("added token %d %q uses lstrip/rstrip/single_word", a.ID, a.Content)
		}
		if d.tokens[a.ID] != "" && d.tokens[a.ID] != a.Content {
			return nil, fmt.Errorf("%s: %w: added token %d %q conflicts with vocabulary %q", source, ErrInvalid, a.ID, a.Content, d.tokens[a.ID])
		}
		d.tokens[a.ID] = a.Content
		d.added = append(d.added, AddedToken{ID: a.ID, Content: a.Content, Special: a.Special, Normalized: a.Normalized})
	}
	var err error
	if d.merges, err = parseHFMerges(m.Merges); err != nil {
		return nil, fmt.Errorf("%s: merges: %w", source, err)
	}

	byContent := map[string]int{}
	for _, a := range d.added {
		byContent[a.Content] = a.ID
	}
	if id, ok := byContent["<|endoftext|>"]; ok {
		d.bos, d.eos = id, id
	}
	if len(configJSON) > 0 {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(configJSON, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w: %v", ErrInvalid, err)
		}
		for key, dst := range map[string]*int{"bos_token": &d.bos, "eos_token": &d.eos} {
			raw, ok := cfg[key]
			if !ok {
				continue
			}
			if isNull(raw) {
				*dst = -1
				continue
			}
			content, err := configTokenContent(raw)
			if err != nil {
				return nil, fmt.Errorf("tokenizer_config.json: %s: %w", key, err)
			}
			id, ok := byContent[content]
			if !ok {
				v, inVocab := m.Vocab[content]
				if !inVocab {
					return nil, fmt.Errorf("tokenizer_config.json: %s %q: %w: not a token", key, content, ErrInvalid)
				}
				id = v
			}
			*dst = id
		}
	}
	return newTokenizer(d, source)
}

func checkByteLevel(raw json.RawMessage) error {
	var p hfByteLevel
	if isNull(raw) {
		return fmt.Errorf("%w: no pre-tokenizer (byte-level BPE needs ByteLevel)", ErrUnsupported)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if p.Type == "Sequence" {
		var seq []json.RawMessage
		if err := json.Unmarshal(p.PreTokenizers, &seq); err != nil || len(seq) != 1 {
			return fmt.Errorf("%w: %s", ErrUnsupported, raw)
		}
		return checkByteLevel(seq[0])
	}
	if p.Type != "ByteLevel" || p.AddPrefixSpace || (p.UseRegex != nil && !*p.UseRegex) {
		return fmt.Errorf("%w: %s (want ByteLevel without add_prefix_space)", ErrUnsupported, raw)
	}
	return nil
}

// parseHFMerges accepts both the original "a b" strings and the newer
// ["a", "b"] pairs.
func parseHFMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var asStrings []string
	if err := json.Unmarshal(raw, &asStrings); err == nil {
		out := make([][2]string, len(asStrings))
		for i, s := range asStrings {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("%w: merge %d %q is not two tokens", ErrInvalid, i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("%w: merge %d has %d parts", ErrInvalid, i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// configTokenContent reads a token given either as a string or as an
// AddedToken object with a "content" field.
func configTokenContent(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("%w: %s", ErrInvalid, raw)
	}
	return *obj.Content, nil
}

// MarshalHFJSON writes the tokenizer as a Hugging Face tokenizer.json that
// FromHFJSON (and Hugging Face's tokenizers) load to the same encodings.
// Vocabulary entries that are not added tokens, including unused padding
// entries, go into the BPE vocabulary so the id space is preserved.
func (t *Tokenizer) MarshalHFJSON() ([]byte, error) {
	var b bytes.Buffer
	str := func(s string) {
		q, _ := json.Marshal(s)
		b.Write(q)
	}
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, a := range t.AddedTokens() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    {\"id\": " + strconv.Itoa(a.ID) + ", \"content\": ")
		str(a.Content)
		fmt.Fprintf(&b, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": %t, \"special\": %t}", a.Normalized, a.Special)
	}
	const byteLevel = `{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}`
	b.WriteString("\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": " + byteLevel +
		",\n  \"post_processor\": " + byteLevel + ",\n  \"decoder\": " + byteLevel +
		",\n  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n" +
		"    \"continuing_subword_prefix\": \"\",\n    \"end_of_word_suffix\": \"\",\n" +
		"    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {")
	first := true
	seen := make(map[string]bool, len(t.tokens))
	for id, s := range t.tokens {
		// Special added tokens stay in the BPE vocabulary too, as
		// <|endoftext|> is in GPT-2's; CodeGen's whitespace runs are added
		// tokens only.
		if s == "" || seen[s] || (t.isAdded[id] && !t.special[id]) {
			continue
		}
		seen[s] = true
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString("\n      ")
		str(s)
		b.WriteString(": " + strconv.Itoa(id))
	}
	b.WriteString("\n    },\n    \"merges\": [")
	merges := t.mergeList()
	for i, m := range merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      [")
		str(m[0])
		b.WriteString(", ")
		str(m[1])
		b.WriteByte(']')
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// mergeList reconstructs the merges in rank order.
func (t *Tokenizer) mergeList() [][2]string {
	out := make([][2]string, t.nMerges)
	used := make([]bool, t.nMerges)
	for k, m := range t.merges {
		a, b := int(uint32(k>>32)), int(uint32(k))
		out[m.rank] = [2]string{t.tokens[a], t.tokens[b]}
		used[m.rank] = true
	}
	// Duplicate merges in the source were ignored when loading; drop
	// their ranks' empty slots but keep the order.
	j := 0
	for i := range out {
		if used[i] {
			out[j] = out[i]
			j++
		}
	}
	return out[:j]
}

// MarshalHFConfig writes a minimal tokenizer_config.json naming the BOS
// and EOS tokens, to accompany MarshalHFJSON.
func (t *Tokenizer) MarshalHFConfig() ([]byte, error) {
	cfg := map[string]any{
		"add_bos_token":    false,
		"add_eos_token":    false,
		"add_prefix_space": false,
		"tokenizer_class":  "CodeGenTokenizer",
	}
	if t.bos >= 0 {
		cfg["bos_token"] = t.tokens[t.bos]
	}
	if t.eos >= 0 {
		cfg["eos_token"] = t.tokens[t.eos]
	}
	return json.MarshalIndent(cfg, "", "  ")
}
