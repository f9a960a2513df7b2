package tokenizer

import (
	"fmt"
	"sort"
	"strings"
)

// synthCorpus is the text synthetic vocabularies learn their first merges
// from, so that common English words come out as few tokens.
const synthCorpus = `The quick brown fox jumps over the lazy dog. A model reads text as
tokens, and every token is a piece of a word: the, and, of, to, in, is, that,
for, it, with, as, was, on, be, at, by, this, from, or, have, an, they, which,
one, you, were, her, all, she, there, would, their, we, him, been, has, when,
who, will, more, no, if, out, so, said, what, up, its, about, into, than,
them, can, only, other, new, some, could, time, these, two, may, then, do,
first, any, my, now, such, like, our, over, man, me, even, most, made, after,
also, did, many, before, must, through, back, years, where, much, your, way,
well, down, should, because, each, just, those, people, how, too, little,
state, good, very, make, world, still, own, see, men, work, long, get, here,
between, both, life, being, under, never, day, same, another, know, while,
last, might, us, great, old, year, off, come, since, against, go, came,
right, used, take, three. Numbers like 0 1 2 3 4 5 6 7 8 9 10 100 2024 and
code such as func main() { return x + y; } or def f(x): return x * 2.
`

// SynthesizeByteLevelJSON returns a Hugging Face tokenizer.json for a
// byte-level BPE vocabulary of exactly vocabSize tokens: the 256 byte
// tokens in GPT-2's order, vocabSize-257 merges (learned from a small
// built-in English text, then filled deterministically), and <|endoftext|>
// as the last id, a special token that is also BOS and EOS. It is for
// synthetic models, which need some tokenizer with the right id space.
// The output is deterministic.
func SynthesizeByteLevelJSON(vocabSize int) ([]byte, error) {
	const eot = "<|endoftext|>"
	if vocabSize < 257 || vocabSize > 1<<24 {
		return nil, fmt.Errorf("%w: synthetic vocabulary of %d tokens (want 257 to %d)", ErrInvalid, vocabSize, 1<<24)
	}
	nMerges := vocabSize - 257
	tokens := make([]string, 0, vocabSize)
	inVocab := make(map[string]bool, vocabSize)
	for _, b := range byteOrder {
		s := string(byteToRune[b])
		tokens = append(tokens, s)
		inVocab[s] = true
	}
	merges := learnMerges(synthCorpus, nMerges, inVocab)
	for _, m := range merges {
		tokens = append(tokens, m[0]+m[1])
	}
	// Fill the rest with merges of existing tokens with single bytes;
	// any merge is valid as long as both halves and the result are
	// tokens, and a concatenation is never ambiguous.
	for left := 256; len(merges) < nMerges; left++ {
		for _, b := range byteOrder {
			if len(merges) == nMerges {
				break
			}
			l, r := tokens[left%len(tokens)], string(byteToRune[b])
			if inVocab[l+r] || l+r == eot {
				continue
			}
			inVocab[l+r] = true
			merges = append(merges, [2]string{l, r})
			tokens = append(tokens, l+r)
		}
	}
	tokens = append(tokens, eot)
	d := &definition{tokens: tokens, merges: merges, bos: len(tokens) - 1, eos: len(tokens) - 1,
		added: []AddedToken{{ID: len(tokens) - 1, Content: eot, Special: true}}}
	t, err := newTokenizer(d, "synthetic")
	if err != nil {
		return nil, err
	}
	return t.MarshalHFJSON()
}

// learnMerges runs BPE training on corpus (GPT-2 pre-tokenized) for at
// most n merges, breaking ties between equally frequent pairs by the pair's
// text so the result is deterministic.
func learnMerges(corpus string, n int, inVocab map[string]bool) [][2]string {
	counts := map[string]int{}
	for i := 0; i < len(corpus); {
		j := nextPiece(corpus, i)
		counts[byteLevelEncode([]byte(corpus[i:j]))]++
		i = j
	}
	type word struct {
		syms  []string
		count int
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, len(keys))
	for i, k := range keys {
		syms := make([]string, 0, len(k))
		for _, r := range k {
			syms = append(syms, string(r))
		}
		words[i] = word{syms, counts[k]}
	}
	var merges [][2]string
	for len(merges) < n {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		var best [2]string
		bestCount := 0
		for p, c := range pairs {
			if inVocab[p[0]+p[1]] {
				continue
			}
			if c > bestCount || (c == bestCount && strings.Compare(p[0]+" "+p[1], best[0]+" "+best[1]) < 0) {
				best, bestCount = p, c
			}
		}
		if bestCount < 2 {
			break
		}
		merged := best[0] + best[1]
		inVocab[merged] = true
		merges = append(merges, best)
		for wi := range words {
			s := words[wi].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, merged)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[wi].syms = out
		}
	}
	return merges
}
