package engine

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrContextFull reports a sequence that would grow past the model's context
// window (max_position_embeddings).
var ErrContextFull = errors.New("engine: context window full")

// KVCache holds one sequence's post-rotary keys and values for the layers of
// the model that made it, in blocks of kvBlockPositions positions (every
// layer's keys, then its values, in each block, each head's positions side
// by side: an attention head reads its keys and values of a block as one
// run of memory, not a head's slice of every position's row) taken from the process's
// pool as the sequence grows: growing never copies what the cache holds,
// and a released cache's blocks serve the next one without new faults.
// Release returns the blocks; a cache that becomes unreachable returns them
// after a garbage collection.
type KVCache struct {
	layers LayerRange
	kvDim  int
	head   int // floats of one head's key (or value) at one position
	maxLen int
	held   *kvHeld
	n      int
}

// kvHeld is a cache's blocks, apart from the cache so that a cleanup can
// return them when the cache is gone (the cleanup runs only then, so it
// never races with the cache's owner).
type kvHeld struct {
	pool   *kvPool
	blocks []kvBlock
}

// NewCache returns an empty cache for the model's layers.
func (m *Model) NewCache() *KVCache {
	kvDim := m.Config.KVDim()
	c := &KVCache{
		layers: m.Layers,
		kvDim:  kvDim,
		head:   m.Config.HeadDim,
		maxLen: m.Config.MaxPositionEmbeddings,
	}
	c.held = &kvHeld{pool: kvPoolFor(m.kvBlockFloats())}
	runtime.AddCleanup(c, func(h *kvHeld) { h.release() }, c.held)
	return c
}

// kvBlockFloats is the floats of one KV block of the model's caches.
func (m *Model) kvBlockFloats() int {
	return 2 * kvBlockPositions * m.Config.KVDim() * max(m.Layers.Len(), 1)
}

func (h *kvHeld) release() {
	h.pool.release(h.blocks)
	h.blocks = nil
}

// Len is the number of positions the cache holds.
func (c *KVCache) Len() int { return c.n }

// Bytes is the memory the cache has taken.
func (c *KVCache) Bytes() int64 {
	return int64(len(c.held.blocks)) * int64(c.held.pool.floats) * 4
}

// BytesFor is what a cache of n positions takes.
func (c *KVCache) BytesFor(n int) int64 {
	return int64((n+kvBlockPositions-1)/kvBlockPositions) * int64(c.held.pool.floats) * 4
}

// Truncate forgets every position from n on. The blocks stay with the
// cache, for the positions that follow.
func (c *KVCache) Truncate(n int) error {
	if n < 0 || n > c.n {
		return fmt.Errorf("engine: cannot truncate a %d-position cache to %d", c.n, n)
	}
	c.n = n
	return nil
}

// Release forgets every position and returns the cache's memory to the
// pool; the cache stays usable (it takes blocks again as it grows). Nothing
// may be running on the cache.
func (c *KVCache) Release() {
	c.n = 0
	c.held.release()
}

// reserve makes room for extra more positions in every layer.
func (c *KVCache) reserve(extra int) error {
	need := c.n + extra
	if need > c.maxLen {
		return fmt.Errorf("%w: %d positions held, %d more asked, window is %d", ErrContextFull, c.n, extra, c.maxLen)
	}
	h := c.held
	for len(h.blocks)*kvBlockPositions < need {
		if len(h.blocks) == 0 {
			h.pool.hold()
		}
		h.blocks = append(h.blocks, h.pool.get())
	}
	return nil
}

// headRows returns the keys and values of head h's positions [p, p+n) of
// layer li (n ≤ what is left of p's block), n×head floats each, one
// position's after the other.
func (c *KVCache) headRows(li, h, p, n int) (k, v []float32) {
	b := c.held.blocks[p/kvBlockPositions].data
	per := kvBlockPositions * c.kvDim
	off := li*2*per + (h*kvBlockPositions+p%kvBlockPositions)*c.head
	return b[off : off+n*c.head], b[off+per : off+per+n*c.head]
}

// write stores the keys and values of positions [p, p+n) of layer li
// (rows of kvDim floats, every head's in turn).
func (c *KVCache) write(li, p int, k, v []float32) {
	for r := 0; r < len(k)/c.kvDim; r++ {
		for h := 0; h < c.kvDim/c.head; h++ {
			dk, dv := c.headRows(li, h, p+r, 1)
			copy(dk, k[r*c.kvDim+h*c.head:])
			copy(dv, v[r*c.kvDim+h*c.head:])
		}
	}
}

// read is write's inverse: the keys and values of position p of layer li
// as rows of kvDim floats.
func (c *KVCache) read(li, p int) (k, v []float32) {
	k, v = make([]float32, c.kvDim), make([]float32, c.kvDim)
	for h := 0; h < c.kvDim/c.head; h++ {
		dk, dv := c.headRows(li, h, p, 1)
		copy(k[h*c.head:], dk)
		copy(v[h*c.head:], dv)
	}
	return k, v
}
