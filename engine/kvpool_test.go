package engine

import (
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A pool hands out distinct blocks, takes them back for reuse, and unmaps a
// chunk whose blocks are all free unless it is the only idle one.
func TestKVPoolReuseAndIdleChunks(t *testing.T) {
	p := &kvPool{floats: 1000, perChunk: 4}
	var got []kvBlock
	seen := map[*float32]bool{}
	for i := range 10 { // three chunks: 4 + 4 + 2
		b := p.get()
		if len(b.data) != 1000 || cap(b.data) != 1000 {
			t.Fatalf("block %d: len %d cap %d", i, len(b.data), cap(b.data))
		}
		if seen[&b.data[0]] {
			t.Fatalf("block %d handed out twice", i)
		}
		seen[&b.data[0]] = true
		b.data[0], b.data[999] = float32(i), float32(i) // every float is writable
		got = append(got, b)
	}
	if c, u := p.stats(); c != 3 || u != 10 {
		t.Fatalf("%d chunks, %d blocks in use; want 3, 10", c, u)
	}
	for i, b := range got {
		if b.data[0] != float32(i) || b.data[999] != float32(i) {
			t.Fatalf("block %d overwritten by another", i)
		}
	}
	p.put(got[:4]) // the first chunk idle: kept
	if c, u := p.stats(); c != 3 || u != 6 {
		t.Fatalf("after freeing a chunk: %d chunks, %d in use; want 3, 6", c, u)
	}
	again := p.get() // reuses a freed block rather than mapping
	if c, _ := p.stats(); c != 3 || !seen[&again.data[0]] {
		t.Fatalf("a free block was not reused (%d chunks)", c)
	}
	p.put([]kvBlock{again})
	p.put(got[4:]) // every chunk idle: one is kept
	if c, u := p.stats(); c != 1 || u != 0 {
		t.Fatalf("all free: %d chunks, %d in use; want 1, 0", c, u)
	}
}

// Idle chunks stay mapped for keep, so a burst of sessions after a pause
// shorter than that finds its memory faulted in; after keep all but one go.
func TestKVPoolKeepsIdleChunksForAWhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &kvPool{floats: 1000, perChunk: 4, keep: time.Minute}
		burst := func() []kvBlock {
			bs := make([]kvBlock, 12)
			for i := range bs {
				bs[i] = p.get()
			}
			return bs
		}
		first := burst()
		addrs := map[*float32]bool{}
		for _, b := range first {
			addrs[&b.data[0]] = true
		}
		p.put(first)
		if c, u := p.stats(); c != 3 || u != 0 {
			t.Fatalf("just idle: %d chunks, %d in use; want 3, 0", c, u)
		}
		time.Sleep(30 * time.Second)
		second := burst() // within keep: the same memory, nothing mapped
		for i, b := range second {
			if !addrs[&b.data[0]] {
				t.Fatalf("block %d of the second burst is new memory", i)
			}
		}
		if c, _ := p.stats(); c != 3 {
			t.Fatalf("second burst: %d chunks, want 3", c)
		}
		p.put(second[:4]) // one chunk idle from now
		time.Sleep(45 * time.Second)
		synctest.Wait()
		if c, u := p.stats(); c != 3 || u != 8 {
			t.Fatalf("one chunk idle for 45 s: %d chunks, %d in use; want 3, 8", c, u)
		}
		p.put(second[4:])
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if c, u := p.stats(); c != 1 || u != 0 {
			t.Fatalf("all idle for over a minute: %d chunks, %d in use; want 1, 0", c, u)
		}
		p.mu.Lock()
		pending := p.sweep != nil
		p.mu.Unlock()
		if pending {
			t.Fatal("a sweep is still pending with nothing left to release")
		}
	})
}

// Caches holding blocks find one more each already mapped: the pool maps
// chunks ahead on a goroutine of its own, and stops at one block per cache.
func TestKVPoolWarmsAhead(t *testing.T) {
	p := &kvPool{floats: 1000, perChunk: 4, keep: time.Minute}
	free := func() (n int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.chunks {
			n += len(c.free)
		}
		return n
	}
	waitFree := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			p.mu.Lock()
			warming := p.warming
			p.mu.Unlock()
			if !warming && free() >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d blocks free, want %d mapped ahead", free(), want)
			}
		}
	}
	var held [][]kvBlock
	for i := range 6 { // six caches, each with two blocks
		p.hold()
		held = append(held, []kvBlock{p.get(), p.get()})
		waitFree(i + 1)
	}
	if c, u := p.stats(); u != 12 || c*4 > 12+6+4 {
		t.Fatalf("%d chunks for %d blocks in use and 6 ahead: more than one chunk beyond", c, u)
	}
	for _, bs := range held {
		p.release(bs)
	}
	p.mu.Lock()
	holders := p.holders
	p.mu.Unlock()
	if holders != 0 {
		t.Fatalf("%d holders after every cache released", holders)
	}
}

// WarmKV maps and faults in chunks for a model's caches and keeps them
// through idle sweeps; warming another block size lets the first go.
func TestWarmKVKeepsItsChunks(t *testing.T) {
	cfg := &Config{HiddenSize: 24, NumHeads: 3, NumKVHeads: 3, HeadDim: 8, MaxPositionEmbeddings: 64} // a block size no other test uses
	a := &Model{Config: cfg, Layers: LayerRange{Start: 0, End: 7}}
	b := &Model{Config: cfg, Layers: LayerRange{Start: 0, End: 5}}
	pa, pb := kvPoolFor(a.kvBlockFloats()), kvPoolFor(b.kvBlockFloats())
	chunk := int64(pa.perChunk) * int64(pa.floats) * 4
	sweep := func(p *kvPool) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.releaseIdleLocked(time.Now().Add(time.Hour))
		return len(p.chunks)
	}
	if got := a.WarmKV(3*chunk - 1); got != 3*chunk {
		t.Fatalf("WarmKV mapped %d bytes, want %d", got, 3*chunk)
	}
	if n := sweep(pa); n != 3 {
		t.Fatalf("%d chunks after an idle sweep, want the 3 warmed", n)
	}
	if got := a.WarmKV(chunk); got != 3*chunk { // already there: nothing more
		t.Fatalf("WarmKV again mapped %d bytes, want %d", got, 3*chunk)
	}
	b.WarmKV(chunk)
	if n := sweep(pa); n != 1 {
		t.Fatalf("%d chunks of the old block size after an idle sweep, want 1", n)
	}
	if n := sweep(pb); n != 1 {
		t.Fatalf("%d chunks of the warmed block size, want 1", n)
	}
	c := a.NewCache() // the warmed memory serves caches
	if err := c.reserve(1); err != nil {
		t.Fatal(err)
	}
	if n, used := pa.stats(); n != 1 || used != 1 {
		t.Fatalf("a cache's first block: %d chunks, %d blocks in use; want 1, 1", n, used)
	}
	c.Release()
}

// Many goroutines taking and returning blocks of one pool never share a
// block (run with -race).
func TestKVPoolConcurrent(t *testing.T) {
	p := &kvPool{floats: 64, perChunk: 8}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range 200 {
				bs := make([]kvBlock, 1+r.IntN(12))
				for i := range bs {
					bs[i] = p.get()
					for j := range bs[i].data {
						bs[i].data[j] = float32(g)
					}
				}
				for i, b := range bs {
					for _, v := range b.data {
						if v != float32(g) {
							t.Errorf("goroutine %d block %d: found %v, another goroutine's", g, i, v)
							return
						}
					}
				}
				p.put(bs)
			}
		}()
	}
	wg.Wait()
	if c, u := p.stats(); c != 1 || u != 0 {
		t.Fatalf("after all returned: %d chunks, %d in use; want 1, 0", c, u)
	}
}

// A cache grows block by block without moving what it holds, Release
// returns its blocks, and a cache that is dropped returns them after a
// garbage collection.
func TestKVCacheBlocks(t *testing.T) {
	m := loadFull(t, fixtureDir("phi-tiny-f32"))
	c := m.NewCache()
	kvDim := m.Config.KVDim()
	per := c.BytesFor(1)
	if want := int64(2*kvBlockPositions*kvDim*m.Layers.Len()) * 4; per != want {
		t.Fatalf("a block is %d bytes, want %d", per, want)
	}
	if c.BytesFor(kvBlockPositions) != per || c.BytesFor(kvBlockPositions+1) != 2*per {
		t.Fatalf("BytesFor does not round up to blocks")
	}
	n := 3*kvBlockPositions + 5
	r := rand.New(rand.NewPCG(3, 4))
	want := make([]float32, n*kvDim)
	for i := range want {
		want[i] = float32(r.NormFloat64())
	}
	for p := 0; p < n; { // grow in uneven steps, as prefill chunks and decode do
		step := min(1+r.IntN(7), n-p)
		if err := c.reserve(step); err != nil {
			t.Fatal(err)
		}
		for li := range m.Layers.Len() {
			k := want[p*kvDim : (p+step)*kvDim]
			c.write(li, p, k, k)
		}
		c.n += step
		p += step
	}
	if c.Bytes() != c.BytesFor(n) {
		t.Fatalf("%d positions take %d bytes, want %d", n, c.Bytes(), c.BytesFor(n))
	}
	for li := range m.Layers.Len() {
		for p := range n {
			k, v := c.read(li, p)
			for j := range k {
				if k[j] != want[p*kvDim+j] || v[j] != want[p*kvDim+j] {
					t.Fatalf("layer %d position %d moved or was overwritten", li, p)
				}
			}
		}
	}
	// An F16 cache: twice the positions in a block of the same size, from
	// the same pool, each value rounded to the nearest half.
	h, err := m.NewCacheOf(kernels.F16)
	if err != nil {
		t.Fatal(err)
	}
	if h.held.pool != c.held.pool || h.BytesFor(2*kvBlockPositions) != per || h.BytesFor(2*kvBlockPositions+1) != 2*per {
		t.Fatalf("an F16 cache's blocks: same pool %v, %d bytes for %d positions",
			h.held.pool == c.held.pool, h.BytesFor(2*kvBlockPositions), 2*kvBlockPositions)
	}
	if err := h.reserve(n); err != nil {
		t.Fatal(err)
	}
	for li := range m.Layers.Len() {
		for p := range n {
			h.write(li, p, want[p*kvDim:(p+1)*kvDim], want[p*kvDim:(p+1)*kvDim])
		}
	}
	h.n = n
	if h.Bytes() != h.BytesFor(n) || 2*h.Bytes() > c.Bytes()+per {
		t.Fatalf("F16: %d positions take %d bytes (float32: %d)", n, h.Bytes(), c.Bytes())
	}
	for li := range m.Layers.Len() {
		for p := range n {
			k, v := h.read(li, p)
			for j := range k {
				if w := kernels.F16ToF32(kernels.F32ToF16(want[p*kvDim+j])); k[j] != w || v[j] != w {
					t.Fatalf("F16: layer %d position %d: %v, want %v", li, p, k[j], w)
				}
			}
		}
	}
	h.Release()
	_, before := c.held.pool.stats()
	c.Release()
	if _, after := c.held.pool.stats(); before-after != 4 || c.Len() != 0 || c.Bytes() != 0 {
		t.Fatalf("Release returned %d blocks, want 4 (len %d, %d bytes)", before-after, c.Len(), c.Bytes())
	}
	// Dropped caches: their blocks come back once they are collected.
	_, base := c.held.pool.stats()
	for range 8 {
		d := m.NewCache()
		if err := d.reserve(kvBlockPositions + 1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if _, u := c.held.pool.stats(); u <= base {
			break
		}
		if time.Now().After(deadline) {
			_, u := c.held.pool.stats()
			t.Fatalf("dropped caches still hold %d blocks", u-base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Caches of two models with the same layers share a pool, and a cache keeps
// working after the model that filled it is closed and its layers loaded
// again (the stage server keeps sessions across such a reload).
func TestKVCacheOutlivesModel(t *testing.T) {
	dir := fixtureDir("phi-tiny-f32")
	a := loadFull(t, dir)
	ids := []int{5, 9, 2, 7}
	H := a.Config.HiddenSize
	run := func(m *Model, c *KVCache, ids []int) []float32 {
		x := make([]float32, len(ids)*H)
		if err := m.Embed(ids, x); err != nil {
			t.Fatal(err)
		}
		if err := m.Forward(x, []Span{{Cache: c, Tokens: len(ids)}}); err != nil {
			t.Fatal(err)
		}
		return x
	}
	c := a.NewCache()
	run(a, c, ids[:2])
	a.Close()
	b := loadFull(t, dir)
	got := run(b, c, ids[2:])
	ref := b.NewCache()
	want := run(b, ref, ids)[2*H:]
	if d := maxDiff(got, want); d != 0 {
		t.Fatalf("a cache carried across a reload differs by %g", d)
	}
	c.Release()
	ref.Release()
}
