package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a fixed set of goroutines that run the chunks of a parallel loop.
// Threads are started once, so a product costs a store per thread, not a
// goroutine per call. A Pool may be used by one caller at a time per Run;
// concurrent Runs are serialized.
//
// Between Runs a helper spins for a while before it parks, and the caller
// spins while the last helpers finish: a forward pass is a few hundred Runs
// separated by microseconds of serial work, and on the VMs measured waking
// a parked thread cost ~50 µs (a futex and an IPI to a halted vCPU), about
// as long as a product's chunk.
type Pool struct {
	threads int
	scratch [][]float32 // per worker, see Scratch
	mu      sync.Mutex
	helpers []*helper
	closed  atomic.Bool
}

// helper is one of the pool's threads beyond the caller's.
type helper struct {
	task   atomic.Pointer[task] // the next task, taken by the helper
	parked atomic.Bool          // the helper sleeps on wake
	wake   chan struct{}        // buffered: a Run or Close wakes the helper
}

type task struct {
	fn      func(worker, chunk int)
	chunks  int
	next    atomic.Int64
	pending atomic.Int32  // helpers still draining
	waiting atomic.Bool   // the caller sleeps on fin
	fin     chan struct{} // buffered: the last helper wakes the caller
}

// NewPool starts a pool of n threads (n < 1 means 1). The calling goroutine
// counts as one of them.
func NewPool(n int) *Pool {
	if n < 1 {
		n = 1
	}
	p := &Pool{threads: n, scratch: make([][]float32, n)}
	for w := 1; w < n; w++ {
		h := &helper{wake: make(chan struct{}, 1)}
		p.helpers = append(p.helpers, h)
		go p.loop(w, h)
	}
	return p
}

// Threads is the number of threads that run a loop.
func (p *Pool) Threads() int { return p.threads }

// helperSpin is how long an idle helper polls for the next task before it
// parks, and callerSpin how long a caller whose chunks are done polls for
// the helpers before it parks (a chunk takes up to a few hundred µs).
const (
	helperSpin = 200 * time.Microsecond
	callerSpin = 2 * time.Millisecond
)

// spinUntil polls ready until it is true (then true) or d has passed
// (then false), yielding the processor now and then.
func spinUntil(d time.Duration, ready func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if ready() {
			return true
		}
		if i%128 == 127 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > d {
				return false
			}
			runtime.Gosched()
		}
	}
}

func (p *Pool) loop(worker int, h *helper) {
	for {
		var t *task
		take := func() bool { t = h.task.Swap(nil); return t != nil || p.closed.Load() }
		if !spinUntil(helperSpin, take) {
			// Park. A Run stores its task before it looks at parked, and
			// the helper sets parked before it looks again for a task, so
			// one of the two sees the other (a stale wake is harmless).
			h.parked.Store(true)
			for !take() {
				<-h.wake
			}
			h.parked.Store(false)
		}
		if t == nil { // closed
			return
		}
		t.drain(worker)
		if t.pending.Add(-1) == 0 && t.waiting.Load() {
			t.fin <- struct{}{}
		}
	}
}

func (t *task) drain(worker int) {
	for {
		c := int(t.next.Add(1)) - 1
		if c >= t.chunks {
			return
		}
		t.fn(worker, c)
	}
}

// Run calls fn(worker, chunk) for every chunk in [0, chunks), spread over
// the pool's threads; worker is in [0, Threads()) and no two concurrent
// calls share a worker index, so fn may use per-worker scratch space.
func (p *Pool) Run(chunks int, fn func(worker, chunk int)) {
	if chunks <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.threads == 1 || chunks == 1 || p.closed.Load() { // a closed pool has no helpers: the caller runs it all
		for c := 0; c < chunks; c++ {
			fn(0, c)
		}
		return
	}
	t := &task{fn: fn, chunks: chunks}
	helpers := p.helpers[:min(len(p.helpers), chunks-1)]
	t.pending.Store(int32(len(helpers)))
	for _, h := range helpers {
		h.task.Store(t)
		if h.parked.Load() {
			select {
			case h.wake <- struct{}{}:
			default: // already woken
			}
		}
	}
	t.drain(0)
	if spinUntil(callerSpin, func() bool { return t.pending.Load() == 0 }) {
		return
	}
	t.fin = make(chan struct{}, 1)
	t.waiting.Store(true)
	if t.pending.Load() != 0 {
		<-t.fin
	}
}

// scratch is worker's scratch space of at least n floats, kept between
// calls: within a Run no two concurrent calls share a worker index, so a
// loop body may use it freely (but not across Runs).
func (p *Pool) scratchFor(worker, n int) []float32 {
	if len(p.scratch[worker]) < n {
		p.scratch[worker] = make([]float32, n)
	}
	return p.scratch[worker][:n]
}

// Close stops the pool's threads. The pool must not be used afterwards.
func (p *Pool) Close() {
	if p.closed.CompareAndSwap(false, true) {
		for _, h := range p.helpers {
			select {
			case h.wake <- struct{}{}:
			default:
			}
		}
	}
}
