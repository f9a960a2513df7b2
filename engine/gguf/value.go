package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types, numbered as in the GGUF specification.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("ValueType(%d)", uint32(t))
}

// valid reports whether t is a known value type.
func (t ValueType) valid() bool { return t <= ValueFloat64 }

// fixedSize is the encoded size of a scalar of type t, or 0 for strings
// and arrays.
func (t ValueType) fixedSize() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minSize is the smallest number of bytes a value of type t occupies in a
// file; it bounds array counts before anything is allocated.
func (t ValueType) minSize() int {
	switch t {
	case ValueString:
		return 8 // length
	case ValueArray:
		return 4 + 8 // element type, count
	}
	return t.fixedSize()
}

func (t ValueType) isInteger() bool {
	switch t {
	case ValueUint8, ValueInt8, ValueUint16, ValueInt16, ValueUint32, ValueInt32, ValueUint64, ValueInt64:
		return true
	}
	return false
}

func (t ValueType) isSigned() bool {
	switch t {
	case ValueInt8, ValueInt16, ValueInt32, ValueInt64:
		return true
	}
	return false
}

// Value is one metadata value: a scalar, a string, or an array. Values are
// immutable and cheap to copy. The zero Value is the uint8 0.
type Value struct {
	typ  ValueType
	bits uint64 // scalars: the little-endian bits, sign-extended for signed ints
	str  string
	arr  *array
}

// array keeps its elements compactly. Exactly one representation is used,
// chosen by elem.
type array struct {
	elem ValueType
	n    int
	raw  []byte   // fixed-size elements, little-endian as in the file
	blob string   // string elements, concatenated
	ends []uint32 // string i is blob[ends[i-1]:ends[i]]
	vals []Value  // nested arrays
}

// Type returns the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// Uint8 and the other scalar constructors build metadata values for the
// Writer.
func Uint8(x uint8) Value { return Value{typ: ValueUint8, bits: uint64(x)} }

// Int8 returns an int8 value.
func Int8(x int8) Value { return Value{typ: ValueInt8, bits: uint64(int64(x))} }

// Uint16 returns a uint16 value.
func Uint16(x uint16) Value { return Value{typ: ValueUint16, bits: uint64(x)} }

// Int16 returns an int16 value.
func Int16(x int16) Value { return Value{typ: ValueInt16, bits: uint64(int64(x))} }

// Uint32 returns a uint32 value.
func Uint32(x uint32) Value { return Value{typ: ValueUint32, bits: uint64(x)} }

// Int32 returns an int32 value.
func Int32(x int32) Value { return Value{typ: ValueInt32, bits: uint64(int64(x))} }

// Float32 returns a float32 value.
func Float32(x float32) Value {
	return Value{typ: ValueFloat32, bits: uint64(math.Float32bits(x))}
}

// Bool returns a bool value.
func Bool(x bool) Value {
	v := Value{typ: ValueBool}
	if x {
		v.bits = 1
	}
	return v
}

// String returns a string value.
func String(s string) Value { return Value{typ: ValueString, str: s} }

// Uint64 returns a uint64 value.
func Uint64(x uint64) Value { return Value{typ: ValueUint64, bits: x} }

// Int64 returns an int64 value.
func Int64(x int64) Value { return Value{typ: ValueInt64, bits: uint64(x)} }

// Float64 returns a float64 value.
func Float64(x float64) Value { return Value{typ: ValueFloat64, bits: math.Float64bits(x)} }

// StringArray returns an array of strings.
func StringArray(ss []string) Value {
	a := &array{elem: ValueString, n: len(ss), ends: make([]uint32, len(ss))}
	var b strings.Builder
	for i, s := range ss {
		b.WriteString(s)
		a.ends[i] = uint32(b.Len())
	}
	a.blob = b.String()
	return Value{typ: ValueArray, arr: a}
}

// Number is the set of Go types that map onto numeric GGUF array elements.
type Number interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~float32 | ~uint64 | ~int64 | ~float64
}

// NumberArray returns an array whose element type follows T: []int32
// becomes an int32 array, []float32 a float32 array, and so on.
func NumberArray[T Number](xs []T) Value {
	var elem ValueType
	var zero T
	switch any(zero).(type) {
	case uint8:
		elem = ValueUint8
	case int8:
		elem = ValueInt8
	case uint16:
		elem = ValueUint16
	case int16:
		elem = ValueInt16
	case uint32:
		elem = ValueUint32
	case int32:
		elem = ValueInt32
	case float32:
		elem = ValueFloat32
	case uint64:
		elem = ValueUint64
	case int64:
		elem = ValueInt64
	default:
		elem = ValueFloat64
	}
	size := elem.fixedSize()
	raw := make([]byte, 0, len(xs)*size)
	for _, x := range xs {
		switch elem {
		case ValueFloat32:
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(x)))
		case ValueFloat64:
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(float64(x)))
		default:
			u := uint64(int64(x))
			if !elem.isSigned() {
				u = uint64(x)
			}
			raw = appendUint(raw, u, size)
		}
	}
	return Value{typ: ValueArray, arr: &array{elem: elem, n: len(xs), raw: raw}}
}

// BoolArray returns an array of bools.
func BoolArray(xs []bool) Value {
	raw := make([]byte, len(xs))
	for i, x := range xs {
		if x {
			raw[i] = 1
		}
	}
	return Value{typ: ValueArray, arr: &array{elem: ValueBool, n: len(xs), raw: raw}}
}

// Array returns an array of the given values, which must all have type
// elem; use it for nested arrays. It panics on a type mismatch because
// that is a programming error in the caller.
func Array(elem ValueType, vals ...Value) Value {
	if !elem.valid() {
		panic("gguf: Array: invalid element type " + elem.String())
	}
	switch elem {
	case ValueString:
		ss := make([]string, len(vals))
		for i, v := range vals {
			mustType(v, elem)
			ss[i] = v.str
		}
		return StringArray(ss)
	case ValueArray:
		for _, v := range vals {
			mustType(v, elem)
		}
		return Value{typ: ValueArray, arr: &array{elem: elem, n: len(vals), vals: append([]Value(nil), vals...)}}
	}
	size := elem.fixedSize()
	raw := make([]byte, 0, len(vals)*size)
	for _, v := range vals {
		mustType(v, elem)
		raw = appendUint(raw, v.bits, size)
	}
	return Value{typ: ValueArray, arr: &array{elem: elem, n: len(vals), raw: raw}}
}

func mustType(v Value, t ValueType) {
	if v.typ != t {
		panic("gguf: Array: element of type " + v.typ.String() + " in array of " + t.String())
	}
}

func appendUint(b []byte, u uint64, size int) []byte {
	switch size {
	case 1:
		return append(b, byte(u))
	case 2:
		return binary.LittleEndian.AppendUint16(b, uint16(u))
	case 4:
		return binary.LittleEndian.AppendUint32(b, uint32(u))
	}
	return binary.LittleEndian.AppendUint64(b, u)
}

// scalarFromBits converts little-endian bits read from a file into the
// canonical representation (sign-extended for signed integers).
func scalarFromBits(t ValueType, u uint64) Value {
	switch t {
	case ValueInt8:
		u = uint64(int64(int8(u)))
	case ValueInt16:
		u = uint64(int64(int16(u)))
	case ValueInt32:
		u = uint64(int64(int32(u)))
	}
	return Value{typ: t, bits: u}
}

// AsUint returns an integer value of any width and signedness as uint64;
// it fails for negative numbers and non-integers.
func (v Value) AsUint() (uint64, bool) {
	if !v.typ.isInteger() {
		return 0, false
	}
	if v.typ.isSigned() && int64(v.bits) < 0 {
		return 0, false
	}
	return v.bits, true
}

// AsInt returns an integer value of any width and signedness as int64; it
// fails for uint64 values above math.MaxInt64 and non-integers.
func (v Value) AsInt() (int64, bool) {
	if !v.typ.isInteger() {
		return 0, false
	}
	if !v.typ.isSigned() && v.bits > math.MaxInt64 {
		return 0, false
	}
	return int64(v.bits), true
}

// AsFloat returns a float32, float64 or integer value as float64.
func (v Value) AsFloat() (float64, bool) {
	switch v.typ {
	case ValueFloat32:
		return float64(math.Float32frombits(uint32(v.bits))), true
	case ValueFloat64:
		return math.Float64frombits(v.bits), true
	}
	if v.typ.isInteger() {
		if v.typ.isSigned() {
			return float64(int64(v.bits)), true
		}
		return float64(v.bits), true
	}
	return 0, false
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, bool) {
	if v.typ != ValueBool {
		return false, false
	}
	return v.bits != 0, true
}

// AsString returns a string value.
func (v Value) AsString() (string, bool) {
	if v.typ != ValueString {
		return "", false
	}
	return v.str, true
}

// ElemType returns the element type of an array value.
func (v Value) ElemType() (ValueType, bool) {
	if v.typ != ValueArray {
		return 0, false
	}
	return v.arr.elem, true
}

// Len returns the number of elements of an array value, or 0 for scalars.
func (v Value) Len() int {
	if v.typ != ValueArray {
		return 0
	}
	return v.arr.n
}

// Index returns element i of an array value; ok is false if v is not an
// array or i is out of range.
func (v Value) Index(i int) (elem Value, ok bool) {
	if v.typ != ValueArray || i < 0 || i >= v.arr.n {
		return Value{}, false
	}
	return v.arr.at(i), true
}

func (a *array) at(i int) Value {
	switch a.elem {
	case ValueString:
		return Value{typ: ValueString, str: a.stringAt(i)}
	case ValueArray:
		return a.vals[i]
	}
	size := a.elem.fixedSize()
	return scalarFromBits(a.elem, readUint(a.raw[i*size:], size))
}

func (a *array) stringAt(i int) string {
	start := uint32(0)
	if i > 0 {
		start = a.ends[i-1]
	}
	return a.blob[start:a.ends[i]]
}

func readUint(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	}
	return binary.LittleEndian.Uint64(b)
}

// AsStrings returns an array of strings. The strings share one backing
// allocation.
func (v Value) AsStrings() ([]string, bool) {
	if v.typ != ValueArray || v.arr.elem != ValueString {
		return nil, false
	}
	out := make([]string, v.arr.n)
	for i := range out {
		out[i] = v.arr.stringAt(i)
	}
	return out, true
}

// AsInts returns an array of integers of any width as int64s.
func (v Value) AsInts() ([]int64, bool) {
	if v.typ != ValueArray || !v.arr.elem.isInteger() {
		return nil, false
	}
	out := make([]int64, v.arr.n)
	for i := range out {
		x, ok := v.arr.at(i).AsInt()
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// AsFloat32s returns an array of float32 (or float64, narrowed) values.
func (v Value) AsFloat32s() ([]float32, bool) {
	if v.typ != ValueArray || (v.arr.elem != ValueFloat32 && v.arr.elem != ValueFloat64) {
		return nil, false
	}
	out := make([]float32, v.arr.n)
	for i := range out {
		f, _ := v.arr.at(i).AsFloat()
		out[i] = float32(f)
	}
	return out, true
}

// AsValues returns the elements of an array value.
func (v Value) AsValues() ([]Value, bool) {
	if v.typ != ValueArray {
		return nil, false
	}
	out := make([]Value, v.arr.n)
	for i := range out {
		out[i] = v.arr.at(i)
	}
	return out, true
}

// String formats the value for humans; long arrays are abbreviated.
func (v Value) String() string {
	switch v.typ {
	case ValueString:
		return strconv.Quote(v.str)
	case ValueBool:
		return strconv.FormatBool(v.bits != 0)
	case ValueFloat32, ValueFloat64:
		f, _ := v.AsFloat()
		return strconv.FormatFloat(f, 'g', -1, 64)
	case ValueArray:
		var b strings.Builder
		fmt.Fprintf(&b, "[%d]%s{", v.arr.n, v.arr.elem)
		for i := 0; i < v.arr.n && i < 8; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v.arr.at(i).String())
		}
		if v.arr.n > 8 {
			b.WriteString(", ...")
		}
		b.WriteString("}")
		return b.String()
	}
	if v.typ.isSigned() {
		return strconv.FormatInt(int64(v.bits), 10)
	}
	if v.typ.isInteger() {
		return strconv.FormatUint(v.bits, 10)
	}
	return "<invalid>"
}
