//go:build unix

package mmapfile

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

func mapFile(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return &Mapping{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: %d bytes cannot be mapped on this platform", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &Mapping{Data: data}, nil
}

func unmap(b []byte) error { return unix.Munmap(b) }

func willNeed(b []byte) { adviseWidened(b, unix.MADV_WILLNEED) }

// adviseWidened gives b's pages the advice. madvise wants a page-aligned
// start, so the range is widened down to b's first page, which may lie
// before b: hence addresses and the raw call, with b kept alive across it.
func adviseWidened(b []byte, advice int) {
	if len(b) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := p &^ uintptr(os.Getpagesize()-1)
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, start, p-start+uintptr(len(b)), uintptr(advice))
	runtime.KeepAlive(b)
}

func dontNeed(b []byte) {
	// Only the pages wholly inside b: its neighbours may still be in use.
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	p := unsafe.Pointer(unsafe.SliceData(b))
	start := uintptr(p)
	lo := (start + page - 1) / page * page
	hi := (start + uintptr(len(b))) / page * page
	if hi <= lo {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, lo-start)), hi-lo), unix.MADV_DONTNEED)
}
