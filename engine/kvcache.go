package engine

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/phalanx-llm/phalanx/engine/kernels"
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
	layers   LayerRange
	kvDim    int
	head     int           // values of one head's key (or value) at one position
	dtype    kernels.DType // F32 or F16: how keys and values are kept
	perBlock int           // positions a block holds: kvBlockPositions, twice that in F16
	maxLen   int
	held     *kvHeld
	n        int
}

// kvHeld is a cache's blocks, apart from the cache so that a cleanup can
// return them when the cache is gone (the cleanup runs only then, so it
// never races with the cache's owner).
type kvHeld struct {
	pool   *kvPool
	blocks []kvBlock
}

// NewCache returns an empty cache for the model's layers that keeps keys
// and values as Options.KVCache says (float32 unless F16 was asked for).
func (m *Model) NewCache() *KVCache {
	c, err := m.NewCacheOf(cmp.Or(m.kvType, kernels.F32)) // a Model built without Load has none
	if err != nil {
		panic(err) // Load accepted m.kvType
	}
	return c
}

// NewCacheOf returns an empty cache for the model's layers that keeps keys
// and values as dt: F32, or F16 (rounded to nearest even as they are
// written, widened exactly as they are read: half the memory and half the
// bytes attention reads a step, for a rounding of each key and value).
// Caches of either type fill blocks of one size, from one pool.
func (m *Model) NewCacheOf(dt kernels.DType) (*KVCache, error) {
	per, err := kvPerBlock(dt)
	if err != nil {
		return nil, err
	}
	c := &KVCache{
		layers:   m.Layers,
		kvDim:    m.Config.KVDim(),
		head:     m.Config.HeadDim,
		dtype:    dt,
		perBlock: per,
		maxLen:   m.Config.MaxPositionEmbeddings,
	}
	c.held = &kvHeld{pool: kvPoolFor(m.kvBlockFloats())}
	runtime.AddCleanup(c, func(h *kvHeld) { h.release() }, c.held)
	return c, nil
}

// kvPerBlock is the positions a block holds in a cache that keeps keys and
// values as dt, or an error for a dtype no cache keeps.
func kvPerBlock(dt kernels.DType) (int, error) {
	switch dt {
	case kernels.F32:
		return kvBlockPositions, nil
	case kernels.F16:
		return 2 * kvBlockPositions, nil
	}
	return 0, fmt.Errorf("%w: a KV cache keeps keys and values as F32 or F16, not %v", ErrInput, dt)
}

// DType is how the cache keeps keys and values: F32 or F16.
func (c *KVCache) DType() kernels.DType { return c.dtype }

// kvBlockFloats is the size of one KV block of the model's caches, in
// float32s: kvBlockPositions positions of float32 keys and values (or
// twice as many in F16) for every layer.
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
	return int64((n+c.perBlock-1)/c.perBlock) * int64(c.held.pool.floats) * 4
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
	for len(h.blocks)*c.perBlock < need {
		if len(h.blocks) == 0 {
			h.pool.hold()
		}
		h.blocks = append(h.blocks, h.pool.get())
	}
	return nil
}

// headRows returns the keys and values of head h's positions [p, p+n) of
// layer li (n ≤ what is left of p's block), n×head values each, one
// position's after the other, in a float32 cache.
func (c *KVCache) headRows(li, h, p, n int) (k, v []float32) {
	off, per := c.headOffset(li, h, p)
	b := c.held.blocks[p/c.perBlock].data
	return b[off : off+n*c.head], b[off+per : off+per+n*c.head]
}

// headRows16 is headRows for an F16 cache.
func (c *KVCache) headRows16(li, h, p, n int) (k, v []uint16) {
	off, per := c.headOffset(li, h, p)
	b := c.held.blocks[p/c.perBlock].halves()
	return b[off : off+n*c.head], b[off+per : off+per+n*c.head]
}

// headOffset is where head h's keys at position p of layer li start in
// p's block, and how far its values are from them, in values of the cache's
// type: every layer's keys then values, each head's positions side by side.
func (c *KVCache) headOffset(li, h, p int) (off, per int) {
	per = c.perBlock * c.kvDim
	return li*2*per + (h*c.perBlock+p%c.perBlock)*c.head, per
}

// headWide returns head h's keys (or values) of positions [p, p+n) of
// layer li (n ≤ what is left of p's block) as float32s: the cache's own
// memory, or for an F16 cache the halves widened into wide.
func (c *KVCache) headWide(li, h, p, n int, values bool, wide []float32) []float32 {
	if c.dtype == kernels.F16 {
		k, v := c.headRows16(li, h, p, n)
		if values {
			k = v
		}
		kernels.WidenF16(wide, k)
		return wide[:len(k)]
	}
	k, v := c.headRows(li, h, p, n)
	if values {
		k = v
	}
	return k
}

// prefetchHead asks for head h's keys (or values) of positions [p, p+n) of
// layer li ahead of their use.
func (c *KVCache) prefetchHead(li, h, p, n int, values bool) {
	if c.dtype == kernels.F16 {
		k, v := c.headRows16(li, h, p, n)
		if values {
			k = v
		}
		kernels.Prefetch(k)
		return
	}
	k, v := c.headRows(li, h, p, n)
	if values {
		k = v
	}
	kernels.Prefetch(k)
}

// write stores the keys and values of positions [p, p+n) of layer li
// (rows of kvDim floats, every head's in turn), rounded to F16 in an F16
// cache.
func (c *KVCache) write(li, p int, k, v []float32) {
	c.writeHeads(li, p, k, v, 0, c.kvDim/c.head)
}

// writeHeads is write for heads [h0, h1) only: attention's jobs each write
// the heads they read, in parallel, just before reading them.
func (c *KVCache) writeHeads(li, p int, k, v []float32, h0, h1 int) {
	for r := 0; r < len(k)/c.kvDim; r++ {
		for h := h0; h < h1; h++ {
			sk, sv := k[r*c.kvDim+h*c.head:][:c.head], v[r*c.kvDim+h*c.head:][:c.head]
			if c.dtype == kernels.F16 {
				dk, dv := c.headRows16(li, h, p+r, 1)
				kernels.NarrowF16(dk, sk)
				kernels.NarrowF16(dv, sv)
				continue
			}
			dk, dv := c.headRows(li, h, p+r, 1)
			copy(dk, sk)
			copy(dv, sv)
		}
	}
}

// read is write's inverse: the keys and values of position p of layer li
// as rows of kvDim floats.
func (c *KVCache) read(li, p int) (k, v []float32) {
	k, v = make([]float32, c.kvDim), make([]float32, c.kvDim)
	for h := 0; h < c.kvDim/c.head; h++ {
		if c.dtype == kernels.F16 {
			dk, dv := c.headRows16(li, h, p, 1)
			kernels.WidenF16(k[h*c.head:], dk)
			kernels.WidenF16(v[h*c.head:], dv)
			continue
		}
		dk, dv := c.headRows(li, h, p, 1)
		copy(k[h*c.head:], dk)
		copy(v[h*c.head:], dv)
	}
	return k, v
}

// halves is the block's memory as F16 values, twice as many as its floats.
func (b kvBlock) halves() []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b.data))), 2*len(b.data))
}
