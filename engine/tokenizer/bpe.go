package tokenizer

import (
	"math"
	"strings"
	"sync"
)

// merge is the result of merging a pair of token ids and the merge's rank
// (its position in the merge list; lower merges first).
type merge struct {
	rank   int32
	result int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

const noRank = math.MaxInt32

// longWord is the symbol count above which bpeWord switches from the
// quadratic scan to a heap; both merge the leftmost lowest-ranked pair
// first, as Hugging Face's BPE does.
const longWord = 64

// bpeWord appends the BPE tokens of word (raw bytes) to dst.
func (t *Tokenizer) bpeWord(dst []int32, word string) []int32 {
	if len(word) > longWord {
		return t.bpeLong(dst, word)
	}
	var idBuf [longWord]int32
	var rankBuf [longWord]int32
	ids := idBuf[:len(word)]
	for i := range len(word) {
		ids[i] = t.byteID[word[i]]
	}
	ranks := rankBuf[:max(len(ids)-1, 0)]
	for i := range ranks {
		ranks[i] = t.rank(ids[i], ids[i+1])
	}
	for len(ranks) > 0 {
		best, bi := int32(noRank), -1
		for i, r := range ranks {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		ids[bi] = t.merges[pairKey(ids[bi], ids[bi+1])].result
		copy(ids[bi+1:], ids[bi+2:])
		ids = ids[:len(ids)-1]
		copy(ranks[bi:], ranks[bi+1:])
		ranks = ranks[:len(ranks)-1]
		if bi > 0 {
			ranks[bi-1] = t.rank(ids[bi-1], ids[bi])
		}
		if bi < len(ranks) {
			ranks[bi] = t.rank(ids[bi], ids[bi+1])
		}
	}
	return append(dst, ids...)
}

func (t *Tokenizer) rank(a, b int32) int32 {
	if m, ok := t.merges[pairKey(a, b)]; ok {
		return m.rank
	}
	return noRank
}

// bpeLong handles long words in O(n log n) with a linked list of symbols
// and a heap of candidate pairs ordered by (rank, position).
func (t *Tokenizer) bpeLong(dst []int32, word string) []int32 {
	n := len(word)
	ids := make([]int32, n)
	next := make([]int32, n)
	prev := make([]int32, n)
	for i := range n {
		ids[i] = t.byteID[word[i]]
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	next[n-1] = -1
	h := pairHeap{}
	push := func(i int32) {
		j := next[i]
		if j < 0 {
			return
		}
		if m, ok := t.merges[pairKey(ids[i], ids[j])]; ok {
			h.push(pairCand{m.rank, i, ids[i], ids[j]})
		}
	}
	for i := range n - 1 {
		push(int32(i))
	}
	for len(h) > 0 {
		c := h.pop()
		j := next[c.pos]
		// Skip candidates made stale by an earlier merge: merging always
		// changes the left symbol's id and removes the right one.
		if ids[c.pos] != c.left || j < 0 || ids[j] != c.right {
			continue
		}
		ids[c.pos] = t.merges[pairKey(c.left, c.right)].result
		ids[j] = -1
		nj := next[j]
		next[c.pos] = nj
		if nj >= 0 {
			prev[nj] = c.pos
		}
		if p := prev[c.pos]; p >= 0 {
			push(p)
		}
		push(c.pos)
	}
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, ids[i])
	}
	return dst
}

type pairCand struct {
	rank        int32
	pos         int32
	left, right int32
}

func (a pairCand) less(b pairCand) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

type pairHeap []pairCand

func (h *pairHeap) push(c pairCand) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() pairCand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].less(s[l]) {
			m = r
		}
		if !s[m].less(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// wordCache remembers the BPE of recent words. It is shared by concurrent
// Encode calls; when full it starts over, which keeps memory bounded
// without bookkeeping per hit.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

const (
	cacheEntries = 1 << 16
	cacheMaxWord = 48 // bytes; longer words are rare and not worth keeping
)

type cacheMiss struct {
	word       string
	start, end int // the word's ids in the encoded output
}

func (c *wordCache) add(misses []cacheMiss, ids []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range misses {
		if c.m == nil || len(c.m) >= cacheEntries {
			c.m = make(map[string][]int32, 1024)
		}
		c.m[strings.Clone(m.word)] = append([]int32(nil), ids[m.start:m.end]...)
	}
}
