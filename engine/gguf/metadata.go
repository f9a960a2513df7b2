package gguf

import (
	"fmt"
	"io"
)

// Keys returns the metadata keys in file order.
func (f *File) Keys() []string {
	keys := make([]string, len(f.kvs))
	for i, kv := range f.kvs {
		keys[i] = kv.key
	}
	return keys
}

// Value returns the value stored under key.
func (f *File) Value(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].val, true
}

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Value(key)
	if !ok {
		return Value{}, fmt.Errorf("%s: %w: %q", f.Name, ErrKeyNotFound, key)
	}
	return v, nil
}

func (f *File) mismatch(key string, v Value, want string) error {
	t := v.typ.String()
	if v.typ == ValueArray {
		t = "array of " + v.arr.elem.String()
	}
	return fmt.Errorf("%s: key %q: %w: have %s, want %s", f.Name, key, ErrTypeMismatch, t, want)
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.AsString()
	if !ok {
		return "", f.mismatch(key, v, "string")
	}
	return s, nil
}

// Uint returns a non-negative integer value of any integer type.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	u, ok := v.AsUint()
	if !ok {
		return 0, f.mismatch(key, v, "non-negative integer")
	}
	return u, nil
}

// Int returns an integer value of any integer type.
func (f *File) Int(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, ok := v.AsInt()
	if !ok {
		return 0, f.mismatch(key, v, "integer fitting int64")
	}
	return i, nil
}

// Float returns a floating-point (or integer) value as float64.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.AsFloat()
	if !ok {
		return 0, f.mismatch(key, v, "number")
	}
	return x, nil
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.AsBool()
	if !ok {
		return false, f.mismatch(key, v, "bool")
	}
	return b, nil
}

// Strings returns an array of strings.
func (f *File) Strings(key string) ([]string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	ss, ok := v.AsStrings()
	if !ok {
		return nil, f.mismatch(key, v, "array of string")
	}
	return ss, nil
}

// Ints returns an array of any integer type as int64s.
func (f *File) Ints(key string) ([]int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	xs, ok := v.AsInts()
	if !ok {
		return nil, f.mismatch(key, v, "array of integers fitting int64")
	}
	return xs, nil
}

// Float32s returns an array of float32 (or float64, narrowed).
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	xs, ok := v.AsFloat32s()
	if !ok {
		return nil, f.mismatch(key, v, "array of float")
	}
	return xs, nil
}

// Tensor returns the descriptor of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, error) {
	i, ok := f.tensorIx[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w: %q", f.Name, ErrTensorNotFound, name)
	}
	return &f.Tensors[i], nil
}

// TensorReader returns a reader over the tensor's data bytes.
func (f *File) TensorReader(t *TensorInfo) *io.SectionReader {
	return io.NewSectionReader(f.r, t.Offset, t.Size)
}

// ReadTensor reads the tensor's data bytes into memory.
func (f *File) ReadTensor(t *TensorInfo) ([]byte, error) {
	b := make([]byte, t.Size)
	if n, err := f.r.ReadAt(b, t.Offset); n < len(b) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s: tensor %q: %w", f.Name, t.Name, err)
	}
	return b, nil
}
