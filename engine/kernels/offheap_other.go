//go:build !unix

package kernels

// offHeap: see offheap_unix.go; elsewhere it is ordinary heap memory.
type offHeap struct{ b []byte }

func allocOffHeap(n int) *offHeap { return &offHeap{b: make([]byte, n)} }

func (h *offHeap) free() {
	if h != nil {
		h.b = nil
	}
}

func (h *offHeap) populate() {}
