//go:build unix

package mmapfile

import (
	"fmt"
	"os"
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

func willNeed(b []byte) {
	if len(b) == 0 {
		return
	}
	// madvise wants a page-aligned start; widen the range down to the page.
	p := unsafe.Pointer(unsafe.SliceData(b))
	off := int(uintptr(p) % uintptr(os.Getpagesize()))
	full := unsafe.Slice((*byte)(unsafe.Add(p, -off)), len(b)+off)
	_ = unix.Madvise(full, unix.MADV_WILLNEED)
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
