package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
)

// Sentinel errors. Errors returned by this package wrap one of these and
// name the file, key or tensor concerned.
var (
	ErrBadMagic          = errors.New("gguf: not a GGUF file")
	ErrBigEndian         = errors.New("gguf: big-endian GGUF files are not supported")
	ErrVersion           = errors.New("gguf: unsupported GGUF version")
	ErrTruncated         = errors.New("gguf: file truncated")
	ErrLimit             = errors.New("gguf: size limit exceeded")
	ErrValueType         = errors.New("gguf: invalid metadata value type")
	ErrDuplicate         = errors.New("gguf: duplicate name")
	ErrAlignment         = errors.New("gguf: invalid alignment")
	ErrUnknownTensorType = errors.New("gguf: unknown tensor type")
	ErrInvalidTensor     = errors.New("gguf: invalid tensor")
	ErrKeyNotFound       = errors.New("gguf: key not found")
	ErrTypeMismatch      = errors.New("gguf: metadata type mismatch")
	ErrTensorNotFound    = errors.New("gguf: tensor not found")
)

const (
	magic = 0x46554747 // "GGUF" read as little-endian uint32

	// DefaultAlignment is the data alignment when general.alignment is absent.
	DefaultAlignment = 32

	// AlignmentKey is the metadata key that overrides DefaultAlignment.
	AlignmentKey = "general.alignment"

	// MaxDims is the largest number of dimensions a tensor may have.
	MaxDims = 4

	maxStringLen  = 1 << 28 // no legitimate key or value comes near this
	maxKeyLen     = 1 << 16
	maxArrayDepth = 8
)

// TensorInfo describes one tensor in a GGUF file.
type TensorInfo struct {
	Name string
	// Dims in GGUF order: Dims[0] is the fastest-varying dimension (ggml
	// ne[0]); a PyTorch weight of shape [out, in] has Dims {in, out}.
	Dims []uint64
	Type Type
	// RelOffset is the offset from the start of the data section, as
	// stored in the file.
	RelOffset uint64
	// Offset is the absolute byte offset of the tensor's data in the file.
	Offset int64
	// Size is the number of data bytes.
	Size int64
}

// Elements returns the number of elements of the tensor.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

type keyValue struct {
	key string
	val Value
}

// File is an opened GGUF file: its metadata and tensor descriptors are held
// in memory, tensor data stays in the underlying reader.
type File struct {
	Name    string // file name used in errors
	Version uint32
	// Alignment of the data section and of every tensor offset.
	Alignment uint64
	// DataOffset is the absolute offset of the data section. For a file
	// without tensors it may equal or exceed the file size.
	DataOffset int64
	Tensors    []TensorInfo

	kvs      []keyValue
	kvIndex  map[string]int
	tensorIx map[string]int
	r        io.ReaderAt
	size     int64
	closer   io.Closer
	mapped   []byte // the whole file, for a File from Map
	unmapped bool   // Close has released mapped
}

// Open opens and parses the GGUF file at path. Close releases it.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, err
	}
	f, err := NewFile(fd, st.Size(), path)
	if err != nil {
		fd.Close()
		return nil, err
	}
	f.closer = fd
	return f, nil
}

// NewFile parses a GGUF file of the given size from r. name is used only in
// error messages. The File keeps r for tensor access.
func NewFile(r io.ReaderAt, size int64, name string) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("%s: %w: negative size", name, ErrTruncated)
	}
	d := &decoder{
		br:   bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10),
		size: size,
		name: name,
	}
	f := &File{Name: name, r: r, size: size}
	if err := f.parse(d); err != nil {
		return nil, err
	}
	return f, nil
}

// Close closes the underlying file if the File was created by Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	if f.mapped != nil {
		f.mapped, f.unmapped = nil, true
	}
	return err
}

// Size returns the size of the file in bytes.
func (f *File) Size() int64 { return f.size }

// ReaderAt returns the reader the file was parsed from, for callers that
// read tensor data by absolute offset.
func (f *File) ReaderAt() io.ReaderAt { return f.r }

// decoder reads the header sequentially through a buffer, keeping count of
// the position so every length can be checked against the bytes left.
type decoder struct {
	br   *bufio.Reader
	pos  int64
	size int64
	name string
	buf  [8]byte
}

func (d *decoder) remaining() int64 { return d.size - d.pos }

func (d *decoder) read(n int) ([]byte, error) {
	if int64(n) > d.remaining() {
		return nil, ErrTruncated
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.br, b); err != nil {
		return nil, ErrTruncated
	}
	d.pos += int64(n)
	return b, nil
}

func (d *decoder) uint(size int) (uint64, error) {
	b, err := d.read(size)
	if err != nil {
		return 0, err
	}
	return readUint(b, size), nil
}

func (d *decoder) u32() (uint32, error) {
	u, err := d.uint(4)
	return uint32(u), err
}

func (d *decoder) u64() (uint64, error) { return d.uint(8) }

// count reads a uint64 count of items each at least minSize bytes long and
// rejects counts the rest of the file could not hold.
func (d *decoder) count(minSize int) (int, error) {
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if minSize > 0 && n > uint64(d.remaining())/uint64(minSize) {
		return 0, fmt.Errorf("%w: count %d exceeds what the remaining %d bytes can hold", ErrTruncated, n, d.remaining())
	}
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("%w: count %d", ErrLimit, n)
	}
	return int(n), nil
}

func (d *decoder) length(limit int) (int, error) {
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.remaining()) {
		return 0, fmt.Errorf("%w: string of %d bytes, %d left", ErrTruncated, n, d.remaining())
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("%w: string of %d bytes", ErrLimit, n)
	}
	return int(n), nil
}

func (d *decoder) appendBytes(dst []byte, n int) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	if _, err := io.ReadFull(d.br, dst[start:]); err != nil {
		return dst[:start], ErrTruncated
	}
	d.pos += int64(n)
	return dst, nil
}

func (d *decoder) string(limit int) (string, error) {
	n, err := d.length(limit)
	if err != nil {
		return "", err
	}
	b, err := d.appendBytes(nil, n)
	return string(b), err
}

func (d *decoder) value(t ValueType, depth int) (Value, error) {
	switch t {
	case ValueString:
		s, err := d.string(maxStringLen)
		return Value{typ: ValueString, str: s}, err
	case ValueArray:
		return d.array(depth)
	case ValueBool:
		u, err := d.uint(1)
		if err == nil && u > 1 {
			err = fmt.Errorf("%w: bool byte %d", ErrValueType, u)
		}
		return Value{typ: ValueBool, bits: u}, err
	}
	if !t.valid() {
		return Value{}, fmt.Errorf("%w %d", ErrValueType, uint32(t))
	}
	u, err := d.uint(t.fixedSize())
	return scalarFromBits(t, u), err
}

func (d *decoder) array(depth int) (Value, error) {
	if depth >= maxArrayDepth {
		return Value{}, fmt.Errorf("%w: arrays nested deeper than %d", ErrLimit, maxArrayDepth)
	}
	et, err := d.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, fmt.Errorf("%w %d in array", ErrValueType, et)
	}
	n, err := d.count(elem.minSize())
	if err != nil {
		return Value{}, err
	}
	a := &array{elem: elem, n: n}
	switch elem {
	case ValueString:
		a.ends = make([]uint32, n)
		var blob []byte
		for i := range n {
			ln, err := d.length(maxStringLen)
			if err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			if uint64(len(blob))+uint64(ln) > math.MaxUint32 {
				return Value{}, fmt.Errorf("%w: string array larger than 4 GiB", ErrLimit)
			}
			if blob, err = d.appendBytes(blob, ln); err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			a.ends[i] = uint32(len(blob))
		}
		a.blob = string(blob)
	case ValueArray:
		a.vals = make([]Value, n)
		for i := range n {
			v, err := d.array(depth + 1)
			if err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			a.vals[i] = v
		}
	default:
		// count already checked n*size against the bytes left.
		raw, err := d.appendBytes(nil, n*elem.fixedSize())
		if err != nil {
			return Value{}, err
		}
		if elem == ValueBool {
			for i, b := range raw {
				if b > 1 {
					return Value{}, fmt.Errorf("element %d: %w: bool byte %d", i, ErrValueType, b)
				}
			}
		}
		a.raw = raw
	}
	return Value{typ: ValueArray, arr: a}, nil
}

func (f *File) parse(d *decoder) error {
	m, err := d.u32()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, ErrBadMagic)
	}
	if m != magic {
		return fmt.Errorf("%s: %w", f.Name, ErrBadMagic)
	}
	v, err := d.u32()
	if err != nil {
		return fmt.Errorf("%s: header: %w", f.Name, err)
	}
	switch {
	case v == 2 || v == 3:
	case v != 0 && v&0xffff == 0 && bits.ReverseBytes32(v) <= 0xffff:
		return fmt.Errorf("%s: %w (version field reads %#x)", f.Name, ErrBigEndian, v)
	default:
		return fmt.Errorf("%s: %w %d (want 2 or 3)", f.Name, ErrVersion, v)
	}
	f.Version = v

	// Minimal sizes: a tensor descriptor is name length + n_dims + type +
	// offset; a key/value is key length + type + one byte.
	nTensors, err := d.count(8 + 4 + 4 + 8)
	if err != nil {
		return fmt.Errorf("%s: tensor count: %w", f.Name, err)
	}
	nKV, err := d.count(8 + 4 + 1)
	if err != nil {
		return fmt.Errorf("%s: metadata count: %w", f.Name, err)
	}

	f.kvs = make([]keyValue, 0, nKV)
	f.kvIndex = make(map[string]int, nKV)
	for i := range nKV {
		key, err := d.string(maxKeyLen)
		if err != nil {
			return fmt.Errorf("%s: metadata key %d: %w", f.Name, i, err)
		}
		t, err := d.u32()
		if err != nil {
			return fmt.Errorf("%s: key %q: %w", f.Name, key, err)
		}
		val, err := d.value(ValueType(t), 0)
		if err != nil {
			return fmt.Errorf("%s: key %q: %w", f.Name, key, err)
		}
		if _, dup := f.kvIndex[key]; dup {
			return fmt.Errorf("%s: key %q: %w", f.Name, key, ErrDuplicate)
		}
		f.kvIndex[key] = len(f.kvs)
		f.kvs = append(f.kvs, keyValue{key, val})
	}

	f.Alignment = DefaultAlignment
	if av, ok := f.Value(AlignmentKey); ok {
		a, ok := av.AsUint()
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
			return fmt.Errorf("%s: key %q = %v: %w: must be a power of two", f.Name, AlignmentKey, av, ErrAlignment)
		}
		f.Alignment = a
	}

	f.Tensors = make([]TensorInfo, nTensors)
	f.tensorIx = make(map[string]int, nTensors)
	for i := range nTensors {
		if err := d.tensorInfo(&f.Tensors[i]); err != nil {
			if f.Tensors[i].Name != "" {
				return fmt.Errorf("%s: tensor %q: %w", f.Name, f.Tensors[i].Name, err)
			}
			return fmt.Errorf("%s: tensor %d: %w", f.Name, i, err)
		}
		name := f.Tensors[i].Name
		if _, dup := f.tensorIx[name]; dup {
			return fmt.Errorf("%s: tensor %q: %w", f.Name, name, ErrDuplicate)
		}
		f.tensorIx[name] = i
	}

	f.DataOffset = int64(alignUp(uint64(d.pos), f.Alignment))
	return f.checkTensorRanges()
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

func (d *decoder) tensorInfo(t *TensorInfo) error {
	name, err := d.string(maxKeyLen)
	if err != nil {
		return err
	}
	t.Name = name
	nd, err := d.u32()
	if err != nil {
		return err
	}
	if nd == 0 || nd > MaxDims {
		return fmt.Errorf("%w: %d dimensions (want 1..%d)", ErrInvalidTensor, nd, MaxDims)
	}
	t.Dims = make([]uint64, nd)
	elems := uint64(1)
	for j := range t.Dims {
		x, err := d.u64()
		if err != nil {
			return err
		}
		if x == 0 || x > math.MaxInt64 {
			return fmt.Errorf("%w: dimension %d is %d", ErrInvalidTensor, j, x)
		}
		hi, lo := bits.Mul64(elems, x)
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("%w: element count overflows", ErrInvalidTensor)
		}
		elems = lo
		t.Dims[j] = x
	}
	typ, err := d.u32()
	if err != nil {
		return err
	}
	t.Type = Type(typ)
	if !t.Type.Known() {
		return fmt.Errorf("%w %d", ErrUnknownTensorType, typ)
	}
	if t.Dims[0]%t.Type.BlockSize() != 0 {
		return fmt.Errorf("%w: row of %d elements is not a whole number of %s blocks of %d",
			ErrInvalidTensor, t.Dims[0], t.Type, t.Type.BlockSize())
	}
	size := elems / t.Type.BlockSize()
	hi, size := bits.Mul64(size, t.Type.BlockBytes())
	if hi != 0 || size > math.MaxInt64 {
		return fmt.Errorf("%w: byte size overflows", ErrInvalidTensor)
	}
	t.Size = int64(size)
	if t.RelOffset, err = d.u64(); err != nil {
		return err
	}
	return nil
}

func (f *File) checkTensorRanges() error {
	if len(f.Tensors) == 0 {
		return nil
	}
	dataLen := uint64(0)
	if f.size > f.DataOffset {
		dataLen = uint64(f.size - f.DataOffset)
	}
	order := make([]int, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.RelOffset%f.Alignment != 0 {
			return fmt.Errorf("%s: tensor %q: %w: offset %d is not a multiple of %d", f.Name, t.Name, ErrAlignment, t.RelOffset, f.Alignment)
		}
		if t.RelOffset > dataLen || uint64(t.Size) > dataLen-t.RelOffset {
			return fmt.Errorf("%s: tensor %q: %w: bytes [%d, +%d) of a %d-byte data section", f.Name, t.Name, ErrTruncated, t.RelOffset, t.Size, dataLen)
		}
		t.Offset = f.DataOffset + int64(t.RelOffset)
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		return f.Tensors[order[a]].RelOffset < f.Tensors[order[b]].RelOffset
	})
	for k := 1; k < len(order); k++ {
		prev, cur := &f.Tensors[order[k-1]], &f.Tensors[order[k]]
		if prev.Offset+prev.Size > cur.Offset {
			return fmt.Errorf("%s: tensors %q and %q: %w: data ranges overlap", f.Name, prev.Name, cur.Name, ErrInvalidTensor)
		}
	}
	return nil
}
