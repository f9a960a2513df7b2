package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is a fixed set of goroutines that run the chunks of a parallel loop.
// Threads are started once, so a product costs a channel send per thread,
// not a goroutine per call. A Pool may be used by one caller at a time per
// Run; concurrent Runs are serialized.
type Pool struct {
	threads int
	scratch [][]float32 // per worker, see Scratch
	mu      sync.Mutex
	work    chan *task
	closed  atomic.Bool
}

type task struct {
	fn     func(worker, chunk int)
	chunks int
	next   atomic.Int64
	done   sync.WaitGroup
}

// NewPool starts a pool of n threads (n < 1 means 1). The calling goroutine
// counts as one of them.
func NewPool(n int) *Pool {
	if n < 1 {
		n = 1
	}
	p := &Pool{threads: n, work: make(chan *task), scratch: make([][]float32, n)}
	for w := 1; w < n; w++ {
		go p.loop(w)
	}
	return p
}

// Threads is the number of threads that run a loop.
func (p *Pool) Threads() int { return p.threads }

// spinPolls is how many times an idle thread polls for the next task
// before it parks (about 20 µs): during a forward pass products follow each
// other within microseconds, and waking a parked goroutine costs more than
// a small product takes.
const spinPolls = 1000

func (p *Pool) loop(worker int) {
	for {
		var t *task
	spin:
		for i := 0; i < spinPolls; i++ {
			select {
			case t = <-p.work:
				break spin
			default:
				if i%64 == 63 {
					runtime.Gosched()
				}
			}
		}
		if t == nil {
			var ok bool
			if t, ok = <-p.work; !ok {
				return
			}
		}
		if t == nil { // closed channel during the spin
			return
		}
		t.drain(worker)
		t.done.Done()
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
	if p.threads == 1 || chunks == 1 {
		p.mu.Lock()
		for c := 0; c < chunks; c++ {
			fn(0, c)
		}
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &task{fn: fn, chunks: chunks}
	helpers := min(p.threads-1, chunks-1)
	t.done.Add(helpers)
	for i := 0; i < helpers; i++ {
		p.work <- t
	}
	t.drain(0)
	t.done.Wait()
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
		close(p.work)
	}
}
