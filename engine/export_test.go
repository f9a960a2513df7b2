package engine

import "math/rand/v2"

// FillCacheForBench is fillCache for the external benchmarks.
func FillCacheForBench(c *KVCache, n int, r *rand.Rand) { fillCache(c, n, r) }
