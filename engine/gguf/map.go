package gguf

import (
	"bytes"
	"fmt"

	"github.com/phalanx-llm/phalanx/engine/mmapfile"
)

// Map opens the GGUF file at path like Open, but memory-maps it read-only:
// TensorData then returns views of the map, so tensor bytes are neither
// copied nor read until they are used, and memory follows the tensors a
// caller touches. Close unmaps the file; views must not be used after it.
//
// The file must not shrink while it is mapped (reading a page past the new
// end faults the process), the same contract as any mmap-based loader.
func Map(path string) (*File, error) {
	m, err := mmapfile.Map(path)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(bytes.NewReader(m.Data), int64(len(m.Data)), path)
	if err != nil {
		m.Close()
		return nil, err
	}
	f.closer = m
	f.mapped = m.Data
	return f, nil
}

// TensorData returns the tensor's data bytes: a read-only view of the map
// for a File from Map, a fresh copy read from the file otherwise. The
// reader has already checked that the range lies inside the file.
func (f *File) TensorData(t *TensorInfo) ([]byte, error) {
	if f.unmapped {
		return nil, fmt.Errorf("%s: tensor %q: file is closed", f.Name, t.Name)
	}
	if f.mapped == nil {
		return f.ReadTensor(t)
	}
	if t.Offset < 0 || t.Size < 0 || t.Offset > int64(len(f.mapped)) || t.Size > int64(len(f.mapped))-t.Offset {
		return nil, fmt.Errorf("%s: tensor %q: %w: bytes [%d, +%d) of a %d-byte file", f.Name, t.Name, ErrTruncated, t.Offset, t.Size, len(f.mapped))
	}
	return f.mapped[t.Offset : t.Offset+t.Size : t.Offset+t.Size], nil
}

// Release tells the kernel that b, a range of a mapped tensor's data, will
// not be read again soon (its pages leave the resident set and are read
// back if touched); it does nothing for a File that is not mapped.
func (f *File) Release(b []byte) {
	if f.mapped != nil {
		mmapfile.DontNeed(b)
	}
}

// Prefetch asks the kernel to read a mapped tensor's pages ahead of use;
// it does nothing for a File that is not mapped.
func (f *File) Prefetch(t *TensorInfo) {
	if b, err := f.TensorData(t); err == nil && f.mapped != nil {
		mmapfile.WillNeed(b)
	}
}
