package engine

import (
	"errors"
	"fmt"
)

// ErrContextFull reports a sequence that would grow past the model's context
// window (max_position_embeddings).
var ErrContextFull = errors.New("engine: context window full")

// KVCache holds one sequence's post-rotary keys and values for the layers of
// the model that made it. Storage grows by doubling, so appending n
// positions costs O(n) copies in total and a decode step never copies the
// whole cache.
type KVCache struct {
	layers LayerRange
	kvDim  int
	maxLen int
	k, v   [][]float32 // per layer: positions × kvDim
	n      int
}

// NewCache returns an empty cache for the model's layers.
func (m *Model) NewCache() *KVCache {
	n := m.Layers.Len()
	return &KVCache{
		layers: m.Layers,
		kvDim:  m.Config.KVDim(),
		maxLen: m.Config.MaxPositionEmbeddings,
		k:      make([][]float32, n),
		v:      make([][]float32, n),
	}
}

// Len is the number of positions the cache holds.
func (c *KVCache) Len() int { return c.n }

// Bytes is the memory the cache has allocated.
func (c *KVCache) Bytes() int64 {
	var b int64
	for i := range c.k {
		b += int64(cap(c.k[i])+cap(c.v[i])) * 4
	}
	return b
}

// BytesFor is what a cache of n positions needs at least.
func (c *KVCache) BytesFor(n int) int64 {
	return int64(n) * int64(c.kvDim) * 2 * 4 * int64(len(c.k))
}

// Truncate forgets every position from n on.
func (c *KVCache) Truncate(n int) error {
	if n < 0 || n > c.n {
		return fmt.Errorf("engine: cannot truncate a %d-position cache to %d", c.n, n)
	}
	c.n = n
	for i := range c.k {
		c.k[i] = c.k[i][:n*c.kvDim]
		c.v[i] = c.v[i][:n*c.kvDim]
	}
	return nil
}

// reserve makes room for extra more positions in every layer.
func (c *KVCache) reserve(extra int) error {
	need := c.n + extra
	if need > c.maxLen {
		return fmt.Errorf("%w: %d positions held, %d more asked, window is %d", ErrContextFull, c.n, extra, c.maxLen)
	}
	for i := range c.k {
		c.k[i] = grow(c.k[i], need*c.kvDim, c.maxLen*c.kvDim)
		c.v[i] = grow(c.v[i], need*c.kvDim, c.maxLen*c.kvDim)
	}
	return nil
}

func grow(s []float32, need, limit int) []float32 {
	if need <= cap(s) {
		return s
	}
	nc := max(2*cap(s), need, 64)
	nc = min(nc, limit)
	out := make([]float32, len(s), nc)
	copy(out, s)
	return out
}
