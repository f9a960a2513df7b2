package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func allTypesWriter(t testing.TB) *Writer {
	w := NewWriter()
	w.Set("u8", Uint8(200))
	w.Set("i8", Int8(-100))
	w.Set("u16", Uint16(60000))
	w.Set("i16", Int16(-30000))
	w.Set("u32", Uint32(4000000000))
	w.Set("i32", Int32(-2000000000))
	w.Set("f32", Float32(1.5))
	w.Set("bool", Bool(true))
	w.Set("str", String("héllo\x00world"))
	w.Set("u64", Uint64(math.MaxUint64))
	w.Set("i64", Int64(math.MinInt64))
	w.Set("f64", Float64(math.Pi))
	w.Set("empty", String(""))
	w.Set("strs", StringArray([]string{"a", "", "ccc", "Ġthe"}))
	w.Set("i32s", NumberArray([]int32{1, -2, 3}))
	w.Set("u8s", NumberArray([]uint8{0, 255}))
	w.Set("i64s", NumberArray([]int64{math.MinInt64, math.MaxInt64}))
	w.Set("u16s", NumberArray([]uint16{7, 65535}))
	w.Set("f32s", NumberArray([]float32{0.25, -1}))
	w.Set("f64s", NumberArray([]float64{1e300}))
	w.Set("bools", BoolArray([]bool{true, false}))
	w.Set("nested", Array(ValueArray,
		NumberArray([]int8{-1, 2}),
		StringArray([]string{"x"}),
		Array(ValueArray, NumberArray([]uint32{9}))))
	w.Set("emptyarr", NumberArray([]uint64{}))
	data := make([]byte, 4*3*2)
	for i := range data {
		data[i] = byte(i)
	}
	if err := w.AddTensor("a", TypeF32, []uint64{3, 2}, data); err != nil {
		t.Fatal(err)
	}
	q := make([]byte, 2*18)
	for i := range q {
		q[i] = byte(100 + i)
	}
	if err := w.AddTensor("b", TypeQ4_0, []uint64{32, 2}, q); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensorFrom("c", TypeQ4_K, []uint64{256}, bytes.NewReader(make([]byte, 144))); err != nil {
		t.Fatal(err)
	}
	return w
}

func writeBytes(t testing.TB, w *Writer) []byte {
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func parse(b []byte) (*File, error) {
	return NewFile(bytes.NewReader(b), int64(len(b)), "test.gguf")
}

func TestRoundTrip(t *testing.T) {
	b := writeBytes(t, allTypesWriter(t))
	f, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.DataOffset%32 != 0 {
		t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	u := func(k string, want uint64) {
		t.Helper()
		if got, err := f.Uint(k); err != nil || got != want {
			t.Errorf("Uint(%q) = %d, %v; want %d", k, got, err, want)
		}
	}
	i := func(k string, want int64) {
		t.Helper()
		if got, err := f.Int(k); err != nil || got != want {
			t.Errorf("Int(%q) = %d, %v; want %d", k, got, err, want)
		}
	}
	u("u8", 200)
	u("u16", 60000)
	u("u32", 4000000000)
	u("u64", math.MaxUint64)
	i("i8", -100)
	i("i16", -30000)
	i("i32", -2000000000)
	i("i64", math.MinInt64)
	if _, err := f.Uint("i8"); !errors.Is(err, ErrTypeMismatch) {
		t.Errorf("Uint of negative: %v", err)
	}
	if _, err := f.Int("u64"); !errors.Is(err, ErrTypeMismatch) {
		t.Errorf("Int of MaxUint64: %v", err)
	}
	if x, err := f.Float("f32"); err != nil || x != 1.5 {
		t.Errorf("f32 = %v, %v", x, err)
	}
	if x, err := f.Float("f64"); err != nil || x != math.Pi {
		t.Errorf("f64 = %v, %v", x, err)
	}
	if x, err := f.Bool("bool"); err != nil || !x {
		t.Errorf("bool = %v, %v", x, err)
	}
	if s, err := f.String("str"); err != nil || s != "héllo\x00world" {
		t.Errorf("str = %q, %v", s, err)
	}
	if s, err := f.String("empty"); err != nil || s != "" {
		t.Errorf("empty = %q, %v", s, err)
	}
	if ss, err := f.Strings("strs"); err != nil || !reflect.DeepEqual(ss, []string{"a", "", "ccc", "Ġthe"}) {
		t.Errorf("strs = %q, %v", ss, err)
	}
	for k, want := range map[string][]int64{
		"i32s": {1, -2, 3}, "u8s": {0, 255}, "i64s": {math.MinInt64, math.MaxInt64}, "u16s": {7, 65535}, "emptyarr": {},
	} {
		if got, err := f.Ints(k); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Ints(%q) = %v, %v; want %v", k, got, err, want)
		}
	}
	if got, err := f.Float32s("f32s"); err != nil || !reflect.DeepEqual(got, []float32{0.25, -1}) {
		t.Errorf("f32s = %v, %v", got, err)
	}
	if got, err := f.Float32s("f64s"); err != nil || len(got) != 1 {
		t.Errorf("f64s = %v, %v", got, err)
	}
	bv, _ := f.Value("bools")
	e0, _ := bv.Index(0)
	if b0, _ := e0.AsBool(); !b0 || bv.Len() != 2 {
		t.Errorf("bools = %v", bv)
	}
	nv, _ := f.Value("nested")
	if et, _ := nv.ElemType(); et != ValueArray || nv.Len() != 3 {
		t.Fatalf("nested = %v", nv)
	}
	n0, _ := nv.Index(0)
	if xs, ok := n0.AsInts(); !ok || !reflect.DeepEqual(xs, []int64{-1, 2}) {
		t.Errorf("nested[0] = %v", n0)
	}
	n1, _ := nv.Index(1)
	if ss, ok := n1.AsStrings(); !ok || !reflect.DeepEqual(ss, []string{"x"}) {
		t.Errorf("nested[1] = %v", n1)
	}
	n2, _ := nv.Index(2)
	n20, _ := n2.Index(0)
	if xs, ok := n20.AsInts(); !ok || !reflect.DeepEqual(xs, []int64{9}) {
		t.Errorf("nested[2] = %v", n2)
	}
	if _, ok := nv.Index(3); ok {
		t.Error("Index out of range succeeded")
	}
	if s := nv.String(); s != `[3]array{[2]int8{-1, 2}, [1]string{"x"}, [1]array{[1]uint32{9}}}` {
		t.Errorf("String = %s", s)
	}
	if _, err := f.String("missing"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := f.Strings("i32s"); !errors.Is(err, ErrTypeMismatch) {
		t.Errorf("Strings of ints: %v", err)
	}
	wantKeys := []string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "u64", "i64", "f64", "empty",
		"strs", "i32s", "u8s", "i64s", "u16s", "f32s", "f64s", "bools", "nested", "emptyarr"}
	if !reflect.DeepEqual(f.Keys(), wantKeys) {
		t.Errorf("Keys = %q", f.Keys())
	}

	if len(f.Tensors) != 3 {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	a, err := f.Tensor("a")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Dims, []uint64{3, 2}) || a.Type != TypeF32 || a.Size != 24 || a.Offset != f.DataOffset {
		t.Errorf("a = %+v", a)
	}
	data, err := f.ReadTensor(a)
	if err != nil || data[23] != 23 {
		t.Errorf("a data = %v, %v", data, err)
	}
	bt, _ := f.Tensor("b")
	if bt.Size != 36 || bt.RelOffset != 32 || bt.Offset%32 != 0 {
		t.Errorf("b = %+v", bt)
	}
	data, _ = f.ReadTensor(bt)
	if data[0] != 100 || data[35] != 135 {
		t.Errorf("b data = %v", data)
	}
	ct, _ := f.Tensor("c")
	if ct.Size != 144 || ct.Offset+ct.Size != int64(len(b)) {
		t.Errorf("c = %+v, file %d", ct, len(b))
	}
	if _, err := f.Tensor("zzz"); !errors.Is(err, ErrTensorNotFound) {
		t.Errorf("missing tensor: %v", err)
	}

	// Writing what we read gives the same bytes.
	w2 := NewWriter()
	for _, k := range f.Keys() {
		v, _ := f.Value(k)
		w2.Set(k, v)
	}
	for _, tn := range f.Tensors {
		d, _ := f.ReadTensor(&tn)
		if err := w2.AddTensor(tn.Name, tn.Type, tn.Dims, d); err != nil {
			t.Fatal(err)
		}
	}
	if b2 := writeBytes(t, w2); !bytes.Equal(b, b2) {
		t.Error("rewrite differs from original")
	}
}

func TestAlignment(t *testing.T) {
	w := NewWriter()
	w.Set(AlignmentKey, Uint32(64))
	w.AddTensor("x", TypeF16, []uint64{3}, make([]byte, 6))
	w.AddTensor("y", TypeBF16, []uint64{1}, make([]byte, 2))
	f, err := parse(writeBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 || f.Tensors[1].RelOffset != 64 {
		t.Errorf("alignment %d data %d y at %d", f.Alignment, f.DataOffset, f.Tensors[1].RelOffset)
	}
	for _, bad := range []Value{Uint32(0), Uint32(48), String("32"), Int32(-32)} {
		w := NewWriter()
		w.Set(AlignmentKey, bad)
		if _, err := w.WriteTo(&bytes.Buffer{}); !errors.Is(err, ErrAlignment) {
			t.Errorf("writer alignment %v: %v", bad, err)
		}
	}
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter()
	cases := []struct {
		name string
		typ  Type
		dims []uint64
		data []byte
	}{
		{"zero dim", TypeF32, []uint64{0}, nil},
		{"no dims", TypeF32, nil, nil},
		{"five dims", TypeF32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)},
		{"partial block", TypeQ8_0, []uint64{16}, make([]byte, 17)},
		{"unknown type", Type(4), []uint64{32}, make([]byte, 20)},
		{"short data", TypeF32, []uint64{2}, make([]byte, 4)},
	}
	for _, c := range cases {
		if err := w.AddTensor(c.name, c.typ, c.dims, c.data); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if err := w.AddTensor("dup", TypeF32, []uint64{1}, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("dup", TypeF32, []uint64{1}, make([]byte, 4)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestTypeSizes(t *testing.T) {
	want := map[Type][2]uint64{
		TypeF32: {1, 4}, TypeF16: {1, 2}, TypeBF16: {1, 2},
		TypeQ4_0: {32, 18}, TypeQ4_1: {32, 20}, TypeQ5_0: {32, 22}, TypeQ5_1: {32, 24},
		TypeQ8_0: {32, 34}, TypeQ8_1: {32, 36},
		TypeQ2_K: {256, 84}, TypeQ3_K: {256, 110}, TypeQ4_K: {256, 144}, TypeQ5_K: {256, 176},
		TypeQ6_K: {256, 210}, TypeQ8_K: {256, 292},
	}
	for typ, w := range want {
		if typ.BlockSize() != w[0] || typ.BlockBytes() != w[1] {
			t.Errorf("%v: %d/%d, want %d/%d", typ, typ.BlockBytes(), typ.BlockSize(), w[1], w[0])
		}
	}
	if n, err := TypeQ6_K.RowBytes(2500); err == nil {
		t.Errorf("Q6_K row of 2500 = %d, want error", n)
	}
	if n, err := TypeQ6_K.RowBytes(10240); err != nil || n != 40*210 {
		t.Errorf("Q6_K row of 10240 = %d, %v", n, err)
	}
}

func TestPhi2Vocab(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "tokenizer", "ggml-vocab-phi-2.gguf")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if s, err := f.String("tokenizer.ggml.model"); err != nil || s != "gpt2" {
		t.Errorf("model = %q, %v", s, err)
	}
	if s, err := f.String("tokenizer.ggml.pre"); err != nil || s != "phi-2" {
		t.Errorf("pre = %q, %v", s, err)
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 51200 {
		t.Fatalf("tokens: %d, %v", len(toks), err)
	}
	if toks[50256] != "<|endoftext|>" || toks[262] != "Ġthe" {
		t.Errorf("tokens[50256] = %q, tokens[262] = %q", toks[50256], toks[262])
	}
	merges, err := f.Strings("tokenizer.ggml.merges")
	if err != nil || len(merges) != 50000 {
		t.Errorf("merges: %d, %v", len(merges), err)
	}
	types, err := f.Ints("tokenizer.ggml.token_type")
	if err != nil || len(types) != 51200 || types[0] != 1 || types[50257] != 4 {
		t.Errorf("token_type: %d, %v", len(types), err)
	}
	for _, k := range []string{"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"} {
		if id, err := f.Uint(k); err != nil || id != 50256 {
			t.Errorf("%s = %d, %v", k, id, err)
		}
	}
	if len(f.Tensors) != 0 {
		t.Errorf("%d tensors", len(f.Tensors))
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

// TestTruncated parses every prefix of a file; each must fail cleanly.
func TestTruncated(t *testing.T) {
	b := writeBytes(t, allTypesWriter(t))
	for n := range len(b) {
		if _, err := parse(b[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes parsed", n, len(b))
		}
	}
}

func header(version uint32, nTensors, nKV uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint64(b, nTensors)
	return binary.LittleEndian.AppendUint64(b, nKV)
}

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func tensorInfo(b []byte, name string, dims []uint64, typ uint32, off uint64) []byte {
	b = appendStr(b, name)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(dims)))
	for _, d := range dims {
		b = binary.LittleEndian.AppendUint64(b, d)
	}
	b = binary.LittleEndian.AppendUint32(b, typ)
	return binary.LittleEndian.AppendUint64(b, off)
}

func pad(b []byte, n int) []byte {
	for len(b)%32 != 0 {
		b = append(b, 0)
	}
	return append(b, make([]byte, n)...)
}

func TestHostile(t *testing.T) {
	be := binary.BigEndian.AppendUint32([]byte("GGUF"), 3)
	be = append(be, make([]byte, 16)...)
	arrayOf := func(elem uint32, count uint64) []byte {
		b := appendStr(header(3, 0, 1), "k")
		b = binary.LittleEndian.AppendUint32(b, uint32(ValueArray))
		b = binary.LittleEndian.AppendUint32(b, elem)
		return binary.LittleEndian.AppendUint64(b, count)
	}
	deep := appendStr(header(3, 0, 1), "k")
	deep = binary.LittleEndian.AppendUint32(deep, uint32(ValueArray))
	for range 20 {
		deep = binary.LittleEndian.AppendUint32(deep, uint32(ValueArray))
		deep = binary.LittleEndian.AppendUint64(deep, 1)
	}
	deep = append(deep, make([]byte, 64)...)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrBadMagic},
		{"magic", []byte("GGML\x03\x00\x00\x00"), ErrBadMagic},
		{"v1", header(1, 0, 0), ErrVersion},
		{"v4", header(4, 0, 0), ErrVersion},
		{"big-endian", be, ErrBigEndian},
		{"huge tensor count", header(3, 1<<60, 0), ErrTruncated},
		{"huge kv count", header(3, 0, 1<<62), ErrTruncated},
		{"huge key", binary.LittleEndian.AppendUint64(header(3, 0, 1), 1<<40), ErrTruncated},
		{"huge string array", append(arrayOf(uint32(ValueString), 1<<50), make([]byte, 100)...), ErrTruncated},
		{"huge u64 array", append(arrayOf(uint32(ValueUint64), 1<<61), make([]byte, 100)...), ErrTruncated},
		{"bad elem type", arrayOf(13, 0), ErrValueType},
		{"deep nesting", deep, ErrLimit},
		{"bad value type", binary.LittleEndian.AppendUint32(appendStr(header(3, 0, 1), "k"), 99), ErrValueType},
		{"zero dims", pad(tensorInfo(header(3, 1, 0), "t", nil, 0, 0), 4), ErrInvalidTensor},
		{"five dims", pad(tensorInfo(header(3, 1, 0), "t", []uint64{1, 1, 1, 1, 1}, 0, 0), 4), ErrInvalidTensor},
		{"zero dim", pad(tensorInfo(header(3, 1, 0), "t", []uint64{4, 0}, 0, 0), 16), ErrInvalidTensor},
		{"overflow", pad(tensorInfo(header(3, 1, 0), "t", []uint64{1 << 32, 1 << 32}, 0, 0), 16), ErrInvalidTensor},
		{"unknown type", pad(tensorInfo(header(3, 1, 0), "t", []uint64{32}, 4, 0), 64), ErrUnknownTensorType},
		{"partial block", pad(tensorInfo(header(3, 1, 0), "t", []uint64{16, 2}, uint32(TypeQ8_0), 0), 64), ErrInvalidTensor},
		{"outside file", pad(tensorInfo(header(3, 1, 0), "t", []uint64{16}, 0, 0), 63), ErrTruncated},
		{"misaligned", pad(tensorInfo(header(3, 1, 0), "t", []uint64{1}, 0, 4), 64), ErrAlignment},
		{"overlap", pad(tensorInfo(tensorInfo(header(3, 2, 0), "a", []uint64{16}, 0, 0), "b", []uint64{1}, 0, 32), 128), ErrInvalidTensor},
		{"duplicate tensor", pad(tensorInfo(tensorInfo(header(3, 2, 0), "a", []uint64{1}, 0, 0), "a", []uint64{1}, 0, 32), 128), ErrDuplicate},
	}
	for _, c := range cases {
		_, err := parse(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	dupKey := NewWriter()
	dupKey.Set("k", Uint8(1))
	b := writeBytes(t, dupKey)
	b = append(b, b[24:]...) // repeat the key/value
	binary.LittleEndian.PutUint64(b[16:], 2)
	if _, err := parse(b); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate key: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(writeBytes(f, allTypesWriter(f)))
	small := NewWriter()
	small.Set("general.architecture", String("phi2"))
	small.Set(AlignmentKey, Uint32(16))
	small.AddTensor("w", TypeQ8_0, []uint64{32, 1}, make([]byte, 34))
	small.AddTensor("v", TypeF32, []uint64{2, 2}, make([]byte, 16))
	f.Add(writeBytes(f, small))
	f.Add(header(3, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parse(b)
		if err != nil {
			return
		}
		for _, k := range file.Keys() {
			v, _ := file.Value(k)
			_ = v.String()
			file.Strings(k)
			file.Ints(k)
			file.Float32s(k)
		}
		for i := range file.Tensors {
			tn := &file.Tensors[i]
			if tn.Offset < file.DataOffset || tn.Offset+tn.Size > int64(len(b)) {
				t.Fatalf("tensor %q outside file", tn.Name)
			}
			if _, err := file.ReadTensor(tn); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, writeBytes(t, allTypesWriter(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Map(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(m.Tensors) == 0 || len(m.Tensors) != len(f.Tensors) {
		t.Fatalf("%d mapped tensors, %d read", len(m.Tensors), len(f.Tensors))
	}
	for i := range m.Tensors {
		a, err := m.TensorData(&m.Tensors[i])
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.TensorData(&f.Tensors[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || cap(a) != len(a) {
			t.Errorf("tensor %q: mapped bytes differ from read ones", m.Tensors[i].Name)
		}
		m.Prefetch(&m.Tensors[i])
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TensorData(&m.Tensors[0]); err == nil {
		t.Error("TensorData after Close succeeded")
	}
	if _, err := Map(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("mapped a missing file")
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00"), 0o644)
	if _, err := Map(bad); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated file: %v", err)
	}
}
