package tokenizer

import (
	"errors"
	"fmt"
	"sort"
)

// Sentinel errors; loaders wrap them with the file and entry concerned.
var (
	ErrInvalid     = errors.New("tokenizer: invalid tokenizer definition")
	ErrUnsupported = errors.New("tokenizer: unsupported tokenizer")
)

// AddedToken is a token matched verbatim in the input text before
// pre-tokenization, like Hugging Face's added tokens.
type AddedToken struct {
	ID      int
	Content string
	// Special tokens (such as <|endoftext|>) are control tokens;
	// non-special ones (CodeGen's whitespace runs) are ordinary text.
	Special bool
	// Normalized mirrors Hugging Face's flag. With no normalizer it only
	// decides the matching pass: non-normalized tokens are split out
	// first, normalized ones within what remains.
	Normalized bool
}

// Tokenizer is a byte-level BPE tokenizer (GPT-2 family). It is safe for
// concurrent use.
type Tokenizer struct {
	tokens  []string // vocabulary text by id; "" for unused ids
	bytes   []string // decoded bytes by id
	vocab   map[string]int32
	byteID  [256]int32
	merges  map[uint64]merge
	nMerges int
	added   []AddedToken
	special []bool
	isAdded []bool
	// Matching passes: first the non-normalized added tokens, then the
	// normalized ones.
	passes [2]*trie
	bos    int
	eos    int
	cache  wordCache
}

// definition is what every loader produces before building a Tokenizer.
type definition struct {
	tokens []string // by id; "" marks a hole
	merges [][2]string
	added  []AddedToken
	bos    int
	eos    int
}

func newTokenizer(d *definition, source string) (*Tokenizer, error) {
	n := len(d.tokens)
	t := &Tokenizer{
		tokens:  d.tokens,
		bytes:   make([]string, n),
		vocab:   make(map[string]int32, n),
		merges:  make(map[uint64]merge, len(d.merges)),
		special: make([]bool, n),
		isAdded: make([]bool, n),
		added:   d.added,
		bos:     d.bos,
		eos:     d.eos,
	}
	for _, a := range d.added {
		if a.ID < 0 || a.ID >= n || d.tokens[a.ID] != a.Content {
			return nil, fmt.Errorf("%s: added token %d %q: %w: does not match the vocabulary", source, a.ID, a.Content, ErrInvalid)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("%s: added token %d: %w: empty content", source, a.ID, ErrInvalid)
		}
		t.isAdded[a.ID] = true
		t.special[a.ID] = a.Special
	}
	// The BPE vocabulary: later duplicates and added-only tokens do not
	// shadow an earlier regular token.
	for id, s := range d.tokens {
		t.bytes[id] = string(byteLevelDecode(s))
		if s == "" || t.isAdded[id] {
			continue
		}
		if _, dup := t.vocab[s]; !dup {
			t.vocab[s] = int32(id)
		}
	}
	for id, s := range d.tokens {
		if _, ok := t.vocab[s]; !ok && s != "" {
			t.vocab[s] = int32(id)
		}
	}
	for b := range 256 {
		id, ok := t.vocab[string(byteToRune[b])]
		if !ok {
			return nil, fmt.Errorf("%s: %w: no token for byte %#02x (%q)", source, ErrUnsupported, b, string(byteToRune[b]))
		}
		t.byteID[b] = id
	}
	for rank, m := range d.merges {
		a, okA := t.vocab[m[0]]
		b, okB := t.vocab[m[1]]
		r, okR := t.vocab[m[0]+m[1]]
		if !okA || !okB || !okR {
			return nil, fmt.Errorf("%s: merge %d %q: %w: token not in vocabulary", source, rank, m[0]+" "+m[1], ErrInvalid)
		}
		k := pairKey(a, b)
		if _, dup := t.merges[k]; !dup {
			t.merges[k] = merge{rank: int32(rank), result: r}
		}
	}
	t.nMerges = len(d.merges)
	var pass [2][]AddedToken
	for _, a := range d.added {
		if a.Normalized {
			pass[1] = append(pass[1], a)
		} else {
			pass[0] = append(pass[0], a)
		}
	}
	for i := range pass {
		if len(pass[i]) > 0 {
			t.passes[i] = newTrie(pass[i])
		}
	}
	return t, nil
}

// VocabSize is the number of token ids, including added and unused ones;
// it is the row count an embedding matrix needs at least.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS returns the beginning-of-sequence id, or -1 if there is none.
// Phi-2 does not prepend it when encoding.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1 if there is none.
func (t *Tokenizer) EOS() int { return t.eos }

// TokenText returns the token's vocabulary text in byte-level form (for
// example "Ġthe" for " the"), or "" for an unknown id.
func (t *Tokenizer) TokenText(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenBytes returns the raw bytes the token stands for, which need not be
// valid UTF-8 on their own.
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id < 0 || id >= len(t.bytes) {
		return nil
	}
	return []byte(t.bytes[id])
}

// TokenID returns the id of a token given in vocabulary form.
func (t *Tokenizer) TokenID(text string) (int, bool) {
	id, ok := t.vocab[text]
	return int(id), ok
}

// IsSpecial reports whether id is a special (control) added token.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// AddedTokens returns the added tokens in id order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := append([]AddedToken(nil), t.added...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Encode returns the token ids of text, without BOS or EOS. Added tokens
// (including special ones such as <|endoftext|>) are recognised in the
// text. Text that is not valid UTF-8 is encoded byte for byte.
func (t *Tokenizer) Encode(text string) []int {
	ids := t.appendEncode(make([]int32, 0, len(text)/3+1), text)
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

func (t *Tokenizer) appendEncode(dst []int32, text string) []int32 {
	return t.splitAdded(dst, text, 0)
}

// splitAdded emits added tokens of the given pass found in text and passes
// the text between them on to the next pass, then to BPE.
func (t *Tokenizer) splitAdded(dst []int32, text string, pass int) []int32 {
	if pass == len(t.passes) {
		return t.encodeText(dst, text)
	}
	tr := t.passes[pass]
	if tr == nil {
		return t.splitAdded(dst, text, pass+1)
	}
	start := 0
	for i := 0; i < len(text); {
		if !tr.first[text[i]] {
			i++
			continue
		}
		id, n := tr.longest(text[i:])
		if n == 0 {
			i++
			continue
		}
		if i > start {
			dst = t.splitAdded(dst, text[start:i], pass+1)
		}
		dst = append(dst, int32(id))
		i += n
		start = i
	}
	if start < len(text) {
		dst = t.splitAdded(dst, text[start:], pass+1)
	}
	return dst
}

// encodeText pre-tokenizes text and applies BPE to each piece. The cache
// is read under one read lock for the whole text; new words are added
// afterwards under one write lock.
func (t *Tokenizer) encodeText(dst []int32, text string) []int32 {
	var misses []cacheMiss
	var fresh map[string]int // index into misses of words first seen here
	t.cache.mu.RLock()
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		word := text[i:j]
		i = j
		if len(word) > cacheMaxWord {
			dst = t.bpeWord(dst, word)
			continue
		}
		if ids, ok := t.cache.m[word]; ok {
			dst = append(dst, ids...)
			continue
		}
		if k, ok := fresh[word]; ok {
			m := misses[k]
			dst = append(dst, dst[m.start:m.end]...)
			continue
		}
		start := len(dst)
		dst = t.bpeWord(dst, word)
		if fresh == nil {
			fresh = map[string]int{}
		}
		fresh[word] = len(misses)
		misses = append(misses, cacheMiss{word, start, len(dst)})
	}
	t.cache.mu.RUnlock()
	if len(misses) > 0 {
		t.cache.add(misses, dst)
	}
	return dst
}

// Decode returns the text of ids as Hugging Face's ByteLevel decoder does:
// the tokens' bytes are concatenated and converted to UTF-8 with every
// ill-formed sequence replaced by U+FFFD. Special tokens are included;
// unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var raw []byte
	for _, id := range ids {
		if id >= 0 && id < len(t.bytes) {
			raw = append(raw, t.bytes[id]...)
		}
	}
	out, _ := appendLossy(make([]byte, 0, len(raw)), raw, true)
	return string(out)
}

// trie matches added tokens: longest returns the longest token that
// prefixes s.
type trie struct {
	first [256]bool
	nodes []trieNode
}

type trieNode struct {
	id    int32 // -1 if no token ends here
	edges []trieEdge
}

type trieEdge struct {
	b    byte
	node int32
}

func newTrie(tokens []AddedToken) *trie {
	tr := &trie{nodes: []trieNode{{id: -1}}}
	for _, a := range tokens {
		tr.first[a.Content[0]] = true
		n := int32(0)
		for i := 0; i < len(a.Content); i++ {
			n = tr.child(n, a.Content[i], true)
		}
		if tr.nodes[n].id < 0 {
			tr.nodes[n].id = int32(a.ID)
		}
	}
	return tr
}

func (tr *trie) child(n int32, b byte, create bool) int32 {
	for _, e := range tr.nodes[n].edges {
		if e.b == b {
			return e.node
		}
	}
	if !create {
		return -1
	}
	c := int32(len(tr.nodes))
	tr.nodes = append(tr.nodes, trieNode{id: -1})
	tr.nodes[n].edges = append(tr.nodes[n].edges, trieEdge{b, c})
	return c
}

func (tr *trie) longest(s string) (id, n int) {
	node := int32(0)
	for i := 0; i < len(s); i++ {
		node = tr.child(node, s[i], false)
		if node < 0 {
			break
		}
		if tid := tr.nodes[node].id; tid >= 0 {
			id, n = int(tid), i+1
		}
	}
	return id, n
}
