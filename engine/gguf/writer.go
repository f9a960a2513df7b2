package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Writer builds a GGUF version 3 file. Add metadata with Set and tensors
// with AddTensor or AddTensorFrom, then call WriteTo once.
//
// The data section is aligned to general.alignment if that key is set (it
// must be an unsigned integer power of two), DefaultAlignment otherwise.
type Writer struct {
	kvs     []keyValue
	kvIndex map[string]int
	tensors []writerTensor
	names   map[string]bool
}

type writerTensor struct {
	info TensorInfo
	data []byte
	src  io.Reader
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{kvIndex: map[string]int{}, names: map[string]bool{}}
}

// Set stores a metadata value, replacing any earlier value for key while
// keeping its position.
func (w *Writer) Set(key string, v Value) {
	if i, ok := w.kvIndex[key]; ok {
		w.kvs[i].val = v
		return
	}
	w.kvIndex[key] = len(w.kvs)
	w.kvs = append(w.kvs, keyValue{key, v})
}

// AddTensor adds a tensor whose bytes are in data. dims are in GGUF order
// (dims[0] fastest-varying). data must be exactly the tensor's size.
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, data []byte) error {
	t, err := w.newTensor(name, typ, dims)
	if err != nil {
		return err
	}
	if int64(len(data)) != t.Size {
		return fmt.Errorf("gguf: tensor %q: %w: %d data bytes, want %d", name, ErrInvalidTensor, len(data), t.Size)
	}
	w.tensors = append(w.tensors, writerTensor{info: t, data: data})
	return nil
}

// AddTensorFrom adds a tensor whose bytes are read from src during WriteTo,
// so large models need not be held in memory. src must yield at least the
// tensor's size in bytes.
func (w *Writer) AddTensorFrom(name string, typ Type, dims []uint64, src io.Reader) error {
	t, err := w.newTensor(name, typ, dims)
	if err != nil {
		return err
	}
	w.tensors = append(w.tensors, writerTensor{info: t, src: src})
	return nil
}

func (w *Writer) newTensor(name string, typ Type, dims []uint64) (TensorInfo, error) {
	if w.names[name] {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w", name, ErrDuplicate)
	}
	if !typ.Known() {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w %d", name, ErrUnknownTensorType, uint32(typ))
	}
	if len(dims) == 0 || len(dims) > MaxDims {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w: %d dimensions", name, ErrInvalidTensor, len(dims))
	}
	elems := uint64(1)
	for _, d := range dims {
		if d == 0 || d > math.MaxInt64/elems {
			return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w: dims %v", name, ErrInvalidTensor, dims)
		}
		elems *= d
	}
	if dims[0]%typ.BlockSize() != 0 {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w: row of %d is not a whole number of %s blocks", name, ErrInvalidTensor, dims[0], typ)
	}
	size, _ := typ.RowBytes(elems)
	if size > math.MaxInt64 {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w: too large", name, ErrInvalidTensor)
	}
	w.names[name] = true
	return TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: typ, Size: int64(size)}, nil
}

func (w *Writer) alignment() (uint64, error) {
	i, ok := w.kvIndex[AlignmentKey]
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := w.kvs[i].val.AsUint()
	if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
		return 0, fmt.Errorf("gguf: key %q: %w", AlignmentKey, ErrAlignment)
	}
	return a, nil
}

// WriteTo writes the file to out and returns the number of bytes written.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: bufio.NewWriterSize(out, 1<<20)}
	e := encoder{w: cw}
	e.u32(magic)
	e.u32(3)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.key)
		e.u32(uint32(kv.val.typ))
		e.value(kv.val)
	}
	var off uint64
	for i := range w.tensors {
		t := &w.tensors[i].info
		off = alignUp(off, align)
		t.RelOffset = off
		off += uint64(t.Size)
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.RelOffset)
	}
	if len(w.tensors) > 0 {
		e.pad(align)
	}
	dataStart := cw.n
	for _, t := range w.tensors {
		e.pad(align)
		if cw.n-dataStart != int64(t.info.RelOffset) {
			return cw.n, fmt.Errorf("gguf: tensor %q: internal offset mismatch", t.info.Name)
		}
		if t.src != nil {
			n, err := io.CopyN(cw, t.src, t.info.Size)
			if err != nil {
				return cw.n, fmt.Errorf("gguf: tensor %q: read %d of %d bytes: %w", t.info.Name, n, t.info.Size, err)
			}
		} else {
			cw.Write(t.data)
		}
	}
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}

type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

type encoder struct {
	w   *countingWriter
	buf [8]byte
}

func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], x)
	e.w.Write(e.buf[:4])
}

func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.w.Write(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.w.w.WriteString(s)
	e.w.n += int64(len(s))
}

func (e *encoder) pad(align uint64) {
	var zeros [64]byte
	for n := alignUp(uint64(e.w.n), align) - uint64(e.w.n); n > 0; {
		k := min(n, uint64(len(zeros)))
		e.w.Write(zeros[:k])
		n -= k
	}
}

func (e *encoder) value(v Value) {
	switch v.typ {
	case ValueString:
		e.str(v.str)
	case ValueArray:
		a := v.arr
		e.u32(uint32(a.elem))
		e.u64(uint64(a.n))
		switch a.elem {
		case ValueString:
			for i := range a.n {
				e.str(a.stringAt(i))
			}
		case ValueArray:
			for _, x := range a.vals {
				e.value(x)
			}
		default:
			e.w.Write(a.raw)
		}
	default:
		size := v.typ.fixedSize()
		e.w.Write(appendUint(e.buf[:0], v.bits, size))
	}
}

// Get returns the metadata value set for key.
func (w *Writer) Get(key string) (Value, bool) {
	i, ok := w.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return w.kvs[i].val, true
}

// Tensors is the number of tensors added.
func (w *Writer) Tensors() int { return len(w.tensors) }
