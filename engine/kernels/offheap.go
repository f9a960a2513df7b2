package kernels

// Mem is memory outside the Go heap, 2 MB aligned and backed by large pages
// where the kernel offers them (ordinary heap memory where there is no
// mmap), for buffers that live long and are written a little at a time, as
// KV caches are: with 4 KB pages each first write to a page is a fault,
// which cost ~12 µs on a VM measured here.
type Mem struct{ h *offHeap }

// AllocMem maps n zero-filled bytes. Free returns them; memory that becomes
// unreachable is returned after a garbage collection as well.
func AllocMem(n int) Mem { return Mem{allocOffHeap(n)} }

// Bytes is the memory; nothing may use it after Free.
func (m Mem) Bytes() []byte { return m.h.b }

// Free returns the memory now.
func (m Mem) Free() { m.h.free() }

// Populate faults the memory in now, ahead of its first writes, without
// changing its contents (MADV_POPULATE_WRITE; where the kernel lacks it,
// by writing a zero to every page, so only call it before anything else
// uses the memory). It blocks for as long as the faults take: a caller
// that wants them off its path runs it on a goroutine of its own.
func (m Mem) Populate() { m.h.populate() }
