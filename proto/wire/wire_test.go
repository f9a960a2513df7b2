package wire

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"google.golang.org/protobuf/proto"
)

const (
	f32 = phalanxpb.DType_DTYPE_F32
	f16 = phalanxpb.DType_DTYPE_F16

	hidden = 2560 // Phi-2
)

func randomF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 4)
	}
	return v
}

// The fast F32 path must agree with the encoding/binary reference byte for
// byte, at lengths around every unroll width and at the real sizes.
func TestF32MatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, hidden, 4 * hidden} {
		v := randomF32(rng, n)
		v = append(v, float32(math.NaN()), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32)
		want := make([]byte, 4*len(v))
		putF32Generic(want, v)
		got := make([]byte, 4*len(v))
		putF32(got, v)
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: putF32 differs from the generic code", n)
		}
		back, backGeneric := make([]float32, len(v)), make([]float32, len(v))
		getF32(back, want)
		getF32Generic(backGeneric, want)
		for i := range v {
			if math.Float32bits(back[i]) != math.Float32bits(v[i]) || math.Float32bits(backGeneric[i]) != math.Float32bits(v[i]) {
				t.Fatalf("n=%d: element %d: got %x / %x, want %x", n, i,
					math.Float32bits(back[i]), math.Float32bits(backGeneric[i]), math.Float32bits(v[i]))
			}
		}
	}
}

// The wire format is little-endian whatever the host.
func TestF32LittleEndianBytes(t *testing.T) {
	tn, err := EncodeF32(1, 2, []float32{1, -2}, f32)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}
	if !bytes.Equal(tn.GetData(), want) {
		t.Fatalf("data = % x, want % x", tn.GetData(), want)
	}
	tn, err = EncodeF32(1, 2, []float32{1, -2}, f16)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x00, 0x3c, 0x00, 0xc0}; !bytes.Equal(tn.GetData(), want) {
		t.Fatalf("f16 data = % x, want % x", tn.GetData(), want)
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range []phalanxpb.DType{f32, f16} {
		for _, rows := range []int{0, 1, 3, 17} {
			v := randomF32(rng, rows*hidden)
			tn, err := EncodeF32(rows, hidden, v, dt)
			if err != nil {
				t.Fatalf("%v rows=%d: %v", dt, rows, err)
			}
			if got := tn.GetShape(); len(got) != 2 || got[0] != int64(rows) || got[1] != hidden {
				t.Fatalf("%v: shape %v", dt, got)
			}
			if tn.GetDtype() != dt {
				t.Fatalf("dtype %v, want %v", tn.GetDtype(), dt)
			}
			// Through proto.Marshal, as on a real link.
			raw, err := proto.Marshal(tn)
			if err != nil {
				t.Fatal(err)
			}
			var back phalanxpb.Tensor
			if err := proto.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			got, gotRows, err := DecodeF32(&back, hidden, 64, nil)
			if err != nil {
				t.Fatalf("%v rows=%d: %v", dt, rows, err)
			}
			if gotRows != rows || len(got) != len(v) {
				t.Fatalf("%v: %d rows / %d values, want %d / %d", dt, gotRows, len(got), rows, len(v))
			}
			for i := range v {
				want := v[i]
				if dt == f16 {
					want = kernels.F16ToF32(kernels.F32ToF16(v[i]))
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("%v rows=%d: element %d = %v, want %v", dt, rows, i, got[i], want)
				}
			}
		}
	}
}

// F16 narrowing rounds to nearest, ties to even, and saturates to infinity.
func TestF16Rounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{65504, 0x7bff},                       // largest half
		{65520, 0x7c00},                       // halfway to the next: rounds to even = +Inf
		{1e6, 0x7c00},                         // overflow
		{float32(math.Inf(-1)), 0xfc00},       // -Inf
		{1 + 1.0/2048, 0x3c00},                // tie between 1 and 1+2^-10: even (1)
		{1 + 3.0/2048, 0x3c02},                // tie between 1+2^-10 and 1+2^-9: even
		{float32(math.Ldexp(1, -24)), 0x0001}, // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0x0000}, // half of it: tie to even (0)
		{float32(math.Ldexp(3, -25)), 0x0002}, // 1.5 ulp: tie to even (2)
		{float32(math.Ldexp(1, -14)), 0x0400}, // smallest normal
	}
	for _, c := range cases {
		tn, err := EncodeF32(1, 1, []float32{c.in}, f16)
		if err != nil {
			t.Fatal(err)
		}
		got := uint16(tn.Data[0]) | uint16(tn.Data[1])<<8
		if got != c.want {
			t.Errorf("F16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	tn, err := EncodeF32(1, 1, []float32{float32(math.NaN())}, f16)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := DecodeF32(tn, 1, 1, nil)
	if err != nil || !math.IsNaN(float64(out[0])) {
		t.Fatalf("NaN through f16: %v, %v", out, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name       string
		rows, cols int
		n          int
		dt         phalanxpb.DType
		want       error
	}{
		{"unspecified dtype", 1, 4, 4, phalanxpb.DType_DTYPE_UNSPECIFIED, ErrDType},
		{"unknown dtype", 1, 4, 4, phalanxpb.DType(99), ErrDType},
		{"negative rows", -1, 4, 4, f32, ErrShape},
		{"zero cols", 1, 0, 0, f32, ErrShape},
		{"too few values", 2, 4, 7, f32, ErrShape},
		{"too many values", 2, 4, 9, f16, ErrShape},
		{"overflow", math.MaxInt / 2, 4, 4, f32, ErrShape},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tn := &phalanxpb.Tensor{Dtype: f32, Shape: []int64{7, 7}}
			err := EncodeF32Into(tn, c.rows, c.cols, make([]float32, c.n), c.dt)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if tn.Dtype != f32 || len(tn.Shape) != 2 || tn.Shape[0] != 7 {
				t.Fatalf("tensor changed on error: %v", tn)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := func() *phalanxpb.Tensor {
		return &phalanxpb.Tensor{Dtype: f32, Shape: []int64{2, 4}, Data: make([]byte, 2*4*4)}
	}
	cases := []struct {
		name     string
		mutate   func(*phalanxpb.Tensor) *phalanxpb.Tensor
		cols     int
		maxRows  int
		want     error
		wantRows int
	}{
		{"nil tensor", func(*phalanxpb.Tensor) *phalanxpb.Tensor { return nil }, 4, 8, ErrShape, 0},
		{"unspecified dtype", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Dtype = 0; return t }, 4, 8, ErrDType, 0},
		{"unknown dtype", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Dtype = 7; return t }, 4, 8, ErrDType, 0},
		{"no dims", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape = nil; return t }, 4, 8, ErrShape, 0},
		{"one dim", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape = []int64{8}; return t }, 4, 8, ErrShape, 0},
		{"three dims", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape = []int64{1, 2, 4}; return t }, 4, 8, ErrShape, 0},
		{"negative rows", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape[0] = -2; return t }, 4, 8, ErrShape, 0},
		{"too many rows", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape[0] = 9; return t }, 4, 8, ErrShape, 0},
		{"huge rows", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape[0] = math.MaxInt64; return t }, 4, 8, ErrShape, 0},
		{"wrong cols", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape[1] = 3; return t }, 4, 8, ErrShape, 0},
		{"negative cols", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape[1] = -4; return t }, 4, 8, ErrShape, 0},
		{"short data", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Data = t.Data[:31]; return t }, 4, 8, ErrShape, 0},
		{"long data", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Data = append(t.Data, 0); return t }, 4, 8, ErrShape, 0},
		{"f16 with f32 length", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Dtype = f16; return t }, 4, 8, ErrShape, 0},
		{"bad limits cols", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { return t }, 0, 8, ErrShape, 0},
		{"bad limits rows", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { return t }, 4, -1, ErrShape, 0},
		// Product overflow: both dims within the caller's limits, the byte
		// count beyond an int.
		{"product overflow", func(t *phalanxpb.Tensor) *phalanxpb.Tensor {
			t.Shape = []int64{math.MaxInt / 2, 4}
			return t
		}, 4, math.MaxInt, ErrShape, 0},
		{"ok", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { return t }, 4, 8, nil, 2},
		{"ok at max rows", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { return t }, 4, 2, nil, 2},
		{"ok empty", func(t *phalanxpb.Tensor) *phalanxpb.Tensor { t.Shape[0] = 0; t.Data = nil; return t }, 4, 0, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, rows, err := DecodeF32(c.mutate(good()), c.cols, c.maxRows, nil)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if rows != c.wantRows || len(out) != rows*c.cols {
					t.Fatalf("rows=%d len=%d, want rows=%d", rows, len(out), c.wantRows)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if rows != 0 {
				t.Fatalf("rows = %d on error", rows)
			}
		})
	}
}

func TestDecodeReusesDst(t *testing.T) {
	v := randomF32(rand.New(rand.NewPCG(5, 6)), 3*hidden)
	for _, dt := range []phalanxpb.DType{f32, f16} {
		tn, err := EncodeF32(3, hidden, v, dt)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]float32, 0, 4*hidden)
		out, _, err := DecodeF32(tn, hidden, 8, buf)
		if err != nil {
			t.Fatal(err)
		}
		if &out[0] != &buf[:1][0] {
			t.Fatalf("%v: dst with enough capacity was not reused", dt)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if _, _, err := DecodeF32(tn, hidden, 8, buf); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v: DecodeF32 into a large enough dst allocates %v times", dt, allocs)
		}
		allocs = testing.AllocsPerRun(20, func() {
			if err := EncodeF32Into(tn, 3, hidden, v, dt); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v: EncodeF32Into a used tensor allocates %v times", dt, allocs)
		}
	}
}

// FuzzDecodeF32 feeds hostile tensors to DecodeF32: it must never panic,
// must only fail with the package's sentinels, and what it accepts must
// encode back to the same bytes.
func FuzzDecodeF32(f *testing.F) {
	f.Add(int32(1), int64(2), int64(4), false, 4, 8, make([]byte, 32))
	f.Add(int32(2), int64(2), int64(4), false, 4, 8, make([]byte, 16))
	f.Add(int32(2), int64(1), int64(3), true, 3, 1, []byte{0, 0x3c, 0xff, 0x7f, 1, 0x80})
	f.Add(int32(0), int64(0), int64(0), false, 1, 0, []byte{})
	f.Add(int32(1), int64(-1), int64(4), false, 4, 8, []byte{})
	f.Add(int32(1), int64(math.MaxInt64/4), int64(4), false, 4, math.MaxInt, []byte{1})
	f.Fuzz(func(t *testing.T, dtype int32, rows, cols int64, extraDim bool, wantCols, maxRows int, data []byte) {
		shape := []int64{rows, cols}
		if extraDim {
			shape = append(shape, 1)
		}
		tn := &phalanxpb.Tensor{Dtype: phalanxpb.DType(dtype), Shape: shape, Data: data}
		out, gotRows, err := DecodeF32(tn, wantCols, maxRows, nil)
		if err != nil {
			if !errors.Is(err, ErrShape) && !errors.Is(err, ErrDType) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		per, _ := rowBytes(tn.Dtype, wantCols)
		if gotRows != int(rows) || int64(wantCols) != cols || gotRows > maxRows || len(out) != gotRows*wantCols || len(data) != gotRows*per {
			t.Fatalf("accepted inconsistent tensor: shape %v, %d bytes, rows %d, %d values", shape, len(data), gotRows, len(out))
		}
		if tn.Dtype == phalanxpb.DType_DTYPE_Q8 {
			return // lossy: re-encoding is checked by TestQ8RoundTrip
		}
		size := per / wantCols
		again, err := EncodeF32(gotRows, wantCols, out, tn.Dtype)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		for i := range out {
			b := data[size*i : size*(i+1)]
			g := again.Data[size*i : size*(i+1)]
			// A half NaN widens and narrows back to the canonical quiet NaN.
			if size == 2 && math.IsNaN(float64(out[i])) {
				if g[1]&0x7c != 0x7c || g[1]&0x80 != b[1]&0x80 {
					t.Fatalf("element %d: NaN %x became %x", i, b, g)
				}
				continue
			}
			if !bytes.Equal(b, g) {
				t.Fatalf("element %d: %x re-encodes as %x", i, b, g)
			}
		}
	})
}

func benchmarkEncode(b *testing.B, rows int, dt phalanxpb.DType) {
	v := randomF32(rand.New(rand.NewPCG(7, 8)), rows*hidden)
	var tn phalanxpb.Tensor
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		if err := EncodeF32Into(&tn, rows, hidden, v, dt); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkDecode(b *testing.B, rows int, dt phalanxpb.DType) {
	v := randomF32(rand.New(rand.NewPCG(7, 8)), rows*hidden)
	tn, err := EncodeF32(rows, hidden, v, dt)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, len(v))
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		if _, _, err := DecodeF32(tn, hidden, rows, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeF32Decode(b *testing.B)  { benchmarkEncode(b, 1, f32) }
func BenchmarkEncodeF16Decode(b *testing.B)  { benchmarkEncode(b, 1, f16) }
func BenchmarkEncodeF32Prefill(b *testing.B) { benchmarkEncode(b, 512, f32) }
func BenchmarkEncodeF16Prefill(b *testing.B) { benchmarkEncode(b, 512, f16) }
func BenchmarkDecodeF32Decode(b *testing.B)  { benchmarkDecode(b, 1, f32) }
func BenchmarkDecodeF16Decode(b *testing.B)  { benchmarkDecode(b, 1, f16) }
func BenchmarkDecodeF32Prefill(b *testing.B) { benchmarkDecode(b, 512, f32) }
func BenchmarkDecodeF16Prefill(b *testing.B) { benchmarkDecode(b, 512, f16) }

// BenchmarkGenericF32 measures the encoding/binary path big-endian hosts and
// -tags purego builds use, for comparison with BenchmarkEncodeF32Prefill.
func BenchmarkGenericF32(b *testing.B) {
	v := randomF32(rand.New(rand.NewPCG(7, 8)), 512*hidden)
	dst := make([]byte, 4*len(v))
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		putF32Generic(dst, v)
	}
}

// putF16 must agree with the kernels' reference conversion bit for bit:
// every sign and exponent, every half mantissa, and the low bits around each
// rounding point (for normal results the point is bit 12; for subnormal ones
// it moves up, so those exponents are tried around every point).
func TestPutF16MatchesKernels(t *testing.T) {
	var in []uint32
	lows := []uint32{0, 1, 2, 0xffe, 0xfff, 0x1000, 0x1001, 0x1002, 0x1fff}
	for se := uint32(0); se < 1<<9; se++ {
		for hi := uint32(0); hi < 1<<10; hi++ {
			for _, lo := range lows {
				in = append(in, se<<23|hi<<13|lo)
			}
		}
		exp := se & 0xff
		if exp >= 127-25 && exp < 127-14 { // results are subnormal halves or zero
			ulp := uint32(1) << (126 - exp) // one subnormal half step, in mantissa units
			for m := uint32(0); m < 1<<23; m += ulp {
				for _, d := range []uint32{0, 1, ulp/2 - 1, ulp / 2, ulp/2 + 1, ulp - 1} {
					in = append(in, se<<23|(m+d)&0x7fffff)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for range 1 << 20 {
		in = append(in, rng.Uint32())
	}
	src := make([]float32, len(in))
	for i, b := range in {
		src[i] = math.Float32frombits(b)
	}
	buf := make([]byte, 2*len(src)+1)
	for _, dst := range [][]byte{buf[:2*len(src)], buf[1:]} { // aligned, and not (the buffered path)
		putF16(dst, src)
		for i, f := range src {
			got := uint16(dst[2*i]) | uint16(dst[2*i+1])<<8
			if want := kernels.F32ToF16(f); got != want {
				t.Fatalf("F16(%#08x = %g) = %#04x, kernels say %#04x", in[i], f, got, want)
			}
		}
	}
}

// Q8 keeps every value within half a quantization step of its block's
// scale, decodes exactly what it encoded on a second pass, and marks a
// block with a non-finite value instead of hiding it.
func TestQ8RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 3, 2560
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * float32(1+i%7)
	}
	clear(v[64:96]) // an all-zero block
	tn, err := EncodeF32(rows, cols, v, phalanxpb.DType_DTYPE_Q8)
	if err != nil {
		t.Fatal(err)
	}
	if len(tn.Data) != rows*2720 {
		t.Fatalf("%d bytes for %d Phi-2 rows, want 2720 each", len(tn.Data), rows)
	}
	out, n, err := DecodeF32(tn, cols, rows, nil)
	if err != nil || n != rows {
		t.Fatal(n, err)
	}
	for b := 0; b < len(v)/Q8Block; b++ {
		var amax float64
		for _, x := range v[b*Q8Block : (b+1)*Q8Block] {
			amax = max(amax, math.Abs(float64(x)))
		}
		step := amax / 127
		for i := b * Q8Block; i < (b+1)*Q8Block; i++ {
			if d := math.Abs(float64(out[i] - v[i])); d > step*0.51+amax*1e-3 {
				t.Fatalf("value %d: %v decoded as %v (step %v)", i, v[i], out[i], step)
			}
		}
	}
	for i := 64; i < 96; i++ {
		if out[i] != 0 {
			t.Fatalf("zero block decoded %v", out[i])
		}
	}
	again, _ := EncodeF32(rows, cols, out, phalanxpb.DType_DTYPE_Q8)
	twice, _, _ := DecodeF32(again, cols, rows, nil)
	for i := range out {
		if math.Abs(float64(twice[i]-out[i])) > math.Abs(float64(out[i]))*2e-3 {
			t.Fatalf("value %d: %v then %v", i, out[i], twice[i])
		}
	}
	v[5] = float32(math.Inf(1))
	tn, _ = EncodeF32(rows, cols, v, phalanxpb.DType_DTYPE_Q8)
	out, _, _ = DecodeF32(tn, cols, rows, nil)
	if !math.IsNaN(float64(out[0])) || math.IsNaN(float64(out[40])) {
		t.Fatalf("a block with an infinity decoded %v, the next %v", out[0], out[40])
	}
	if _, err := EncodeF32(1, 48, make([]float32, 48), phalanxpb.DType_DTYPE_Q8); !errors.Is(err, ErrShape) {
		t.Fatalf("rows of 48 values as Q8: %v", err)
	}
}

// The flags' dtype names go both ways, and a name outside what a flag
// allows is refused with the allowed ones listed.
func TestDTypeNames(t *testing.T) {
	for _, d := range []phalanxpb.DType{phalanxpb.DType_DTYPE_F32, phalanxpb.DType_DTYPE_F16, phalanxpb.DType_DTYPE_Q8} {
		if got, err := ParseName(Name(d)); err != nil || got != d {
			t.Errorf("%v: %q parses as %v, %v", d, Name(d), got, err)
		}
	}
	if Name(phalanxpb.DType_DTYPE_UNSPECIFIED) != "f32" {
		t.Errorf("unspecified is %q, want f32", Name(phalanxpb.DType_DTYPE_UNSPECIFIED))
	}
	_, err := ParseName("q8", phalanxpb.DType_DTYPE_F32, phalanxpb.DType_DTYPE_F16)
	if err == nil || !strings.Contains(err.Error(), "want f32, f16") {
		t.Errorf("q8 where f32 or f16 are allowed: %v", err)
	}
	if _, err := ParseName("F16"); err == nil {
		t.Error("F16 accepted: the flags are lower case")
	}
}
