package engine

import (
	"sync"
	"time"
	"unsafe"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// kvBlockPositions is the positions one KV block holds, for every layer of
// the cache: a cache grows a block at a time and never copies what it holds.
const kvBlockPositions = 16

// kvChunkBytes is about how much memory a pool maps at once. Chunks are
// mapped outside the Go heap with large pages, so a fresh block costs a
// fault per 2 MB rather than per 4 KB page (on the VMs measured, 4 KB faults
// made a batch of 8 streams' first 60 decode steps ~6 % slower).
const kvChunkBytes = 32 << 20

// kvIdleKeep is how long a chunk whose blocks are all free stays mapped
// before it is unmapped. Faulting memory in is the expensive part of a
// fresh block (on the VMs measured ~4 ms per 2 MB page, in the step's serial
// part, when the hypervisor backs the page on first touch), so a burst of
// sessions followed by the next one within this time reuses the first
// burst's memory.
const kvIdleKeep = 30 * time.Second

// kvPool hands out KV blocks of one size to every cache that needs that
// size (the same layer count and KV width), across models: a session's
// cache may outlive the model that filled it when the same layers are
// loaded again, so blocks belong to the process, not to a model. Freed
// blocks are reused by the next cache, already faulted in; a chunk whose
// blocks are all free is unmapped once it has been idle for keep, unless it
// is the only such chunk (kept so that sessions coming and going do not map
// and unmap memory each time).
type kvPool struct {
	floats   int           // per block
	perChunk int           // blocks per chunk
	keep     time.Duration // kvIdleKeep, or a test's

	mu      sync.Mutex
	chunks  []*kvChunk
	sweep   *time.Timer // pending release of idle chunks; nil when none
	holders int         // caches holding blocks (hold, release)
	warming bool        // a warm goroutine is mapping a chunk
	kept    int         // idle chunks never unmapped (Model.WarmKV); at least 1 is
}

type kvChunk struct {
	mem       kernels.Mem
	data      []float32 // perChunk blocks back to back
	free      []int     // indexes of the free blocks
	used      int       // blocks handed out
	idleSince time.Time // when used last fell to 0
}

// kvBlock is one block of a cache: its floats and where they came from.
type kvBlock struct {
	data  []float32
	chunk *kvChunk
	index int
}

var kvPools struct {
	mu sync.Mutex
	m  map[int]*kvPool
}

// kvPoolFor is the process's pool of blocks of floats floats.
func kvPoolFor(floats int) *kvPool {
	kvPools.mu.Lock()
	defer kvPools.mu.Unlock()
	if kvPools.m == nil {
		kvPools.m = make(map[int]*kvPool)
	}
	p := kvPools.m[floats]
	if p == nil {
		p = &kvPool{floats: floats, perChunk: max(1, kvChunkBytes/(floats*4)), keep: kvIdleKeep}
		kvPools.m[floats] = p
	}
	return p
}

// get returns a block whose floats hold whatever its last user left.
func (p *kvPool) get() kvBlock {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.warmLocked()
	var c *kvChunk
	for _, ch := range p.chunks { // the first chunk with room: caches pack into few chunks
		if len(ch.free) > 0 {
			c = ch
			break
		}
	}
	if c == nil {
		c = p.newChunk()
		p.chunks = append(p.chunks, c)
	}
	i := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.used++
	return kvBlock{data: c.data[i*p.floats : (i+1)*p.floats : (i+1)*p.floats], chunk: c, index: i}
}

// newChunk maps a chunk, every block free.
func (p *kvPool) newChunk() *kvChunk {
	mem := kernels.AllocMem(p.perChunk * p.floats * 4)
	b := mem.Bytes()
	c := &kvChunk{mem: mem, data: unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)}
	c.free = make([]int, p.perChunk)
	for i := range c.free {
		c.free[i] = p.perChunk - 1 - i // lowest index first
	}
	return c
}

// hold counts a cache that has taken its first block; release counts it
// out.
func (p *kvPool) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holders++
	p.warmLocked()
}

// release returns a cache's blocks and counts it out of the holders.
func (p *kvPool) release(blocks []kvBlock) {
	if len(blocks) == 0 {
		return
	}
	p.mu.Lock()
	p.holders--
	p.mu.Unlock()
	p.put(blocks)
}

// warmLocked starts mapping a chunk in the background when fewer blocks
// are free than caches hold blocks: each of those caches will want one
// more within 16 positions, and a block faulted in by its first writes
// stalls the step that writes it (the keys and values are written by one
// thread; on the VMs measured a never-used 2 MB page took 3.5 ms), while
// a chunk faulted in on a goroutine of its own costs the step only the
// CPU time it takes. So at most one block per cache is mapped ahead.
func (p *kvPool) warmLocked() {
	if p.warming || p.holders == 0 {
		return
	}
	free := 0
	for _, c := range p.chunks {
		free += len(c.free)
	}
	if free >= p.holders {
		return
	}
	p.warming = true
	go p.warm()
}

func (p *kvPool) warm() {
	c := p.populatedChunk()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addIdleLocked(c)
	p.warming = false
	p.warmLocked()
}

// populatedChunk maps a chunk and faults it in (without the lock: it
// takes milliseconds).
func (p *kvPool) populatedChunk() *kvChunk {
	c := p.newChunk()
	c.mem.Populate()
	return c
}

// addIdleLocked adds a chunk none of whose blocks is handed out.
func (p *kvPool) addIdleLocked(c *kvChunk) {
	c.idleSince = time.Now()
	p.chunks = append(p.chunks, c)
	p.scheduleSweepLocked()
}

// scheduleSweepLocked makes sure a release of idle chunks is pending.
func (p *kvPool) scheduleSweepLocked() {
	if p.keep > 0 && p.sweep == nil {
		p.sweep = time.AfterFunc(p.keep, p.releaseIdle)
	}
}

// put returns blocks to their pool. Nothing may use them afterwards.
func (p *kvPool) put(blocks []kvBlock) {
	if len(blocks) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for _, b := range blocks {
		c := b.chunk
		c.free = append(c.free, b.index)
		c.used--
		if c.used == 0 {
			c.idleSince = now
			if p.keep <= 0 {
				p.releaseIdleLocked(now)
			}
			p.scheduleSweepLocked()
		}
	}
}

// releaseIdle unmaps the chunks idle for keep, and comes back later for
// those idle for less.
func (p *kvPool) releaseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep = nil
	if next := p.releaseIdleLocked(time.Now()); next > 0 {
		p.sweep = time.AfterFunc(next, p.releaseIdle)
	}
}

// releaseIdleLocked unmaps every chunk idle for keep but the first kept
// idle ones (at least one: caches pack into the first chunks with room)
// and returns how long until the next idle chunk is due (0: none).
func (p *kvPool) releaseIdleLocked(now time.Time) time.Duration {
	var next time.Duration
	kept, live := 0, p.chunks[:0]
	for _, c := range p.chunks {
		if c.used > 0 {
			live = append(live, c)
			continue
		}
		if kept < max(p.kept, 1) {
			kept++
			live = append(live, c)
			continue
		}
		if wait := c.idleSince.Add(p.keep).Sub(now); wait > 0 {
			live = append(live, c)
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		c.mem.Free()
		c.data, c.free = nil, nil
	}
	clear(p.chunks[len(live):])
	p.chunks = live
	return next
}

// WarmKV maps and faults in KV cache memory for the model's caches until
// the pool of its block size holds about bytes (less, if it already does),
// and keeps that much mapped while the process runs; pools of other block
// sizes (layers held before a plan change) fall back to keeping one idle
// chunk. It returns the bytes the pool has mapped. The first sessions then
// grow into memory that is already there: on the VMs measured, memory the
// guest had never used cost 3.5 ms per 2 MB page on first touch, and an
// 8-stream step that crossed a block boundary took ~100 ms longer.
func (m *Model) WarmKV(bytes int64) int64 {
	p := kvPoolFor(m.kvBlockFloats())
	chunkBytes := int64(p.perChunk) * int64(p.floats) * 4
	want := int((bytes + chunkBytes - 1) / chunkBytes)
	kvPools.mu.Lock()
	for _, o := range kvPools.m {
		if o != p {
			o.mu.Lock()
			o.kept = 0
			o.mu.Unlock()
		}
	}
	kvPools.mu.Unlock()
	for {
		p.mu.Lock()
		have := len(p.chunks)
		p.kept = want
		p.mu.Unlock()
		if have >= want {
			return int64(have) * chunkBytes
		}
		c := p.populatedChunk()
		p.mu.Lock()
		p.addIdleLocked(c)
		p.mu.Unlock()
	}
}

// stats is the pool's chunks and blocks in use, for tests.
func (p *kvPool) stats() (chunks, used int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.chunks {
		used += c.used
	}
	return len(p.chunks), used
}

// KVPoolBytes is the memory the process's KV block pools have mapped, and
// how much of it caches hold now; the rest is free blocks kept for the next
// sessions (free blocks in chunks partly in use, chunks idle for less than
// 30 s, one idle chunk of ~32 MB per block size, and about a block per
// cache mapped ahead of its growth).
func KVPoolBytes() (mapped, inUse int64) {
	kvPools.mu.Lock()
	pools := make([]*kvPool, 0, len(kvPools.m))
	for _, p := range kvPools.m {
		pools = append(pools, p)
	}
	kvPools.mu.Unlock()
	for _, p := range pools {
		chunks, used := p.stats()
		mapped += int64(chunks) * int64(p.perChunk) * int64(p.floats) * 4
		inUse += int64(used) * int64(p.floats) * 4
	}
	return mapped, inUse
}
