package kernels

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The repacked Q4_0 and Q8_0 paths: close to the plain dot, and
// bit-identical between one token at a time (decode) and any batch (prefill
// tiles plus leftover tokens), for shapes with and without rows past the
// last group of eight (and, for sets with two-group tiles, with an even and
// an odd number of groups in a thread's share: 16 and 200 rows).
func TestX8MatMul(t *testing.T) {
	withEachKernelSet(t, func(t *testing.T) {
		for _, dt := range []DType{Q4_0, Q8_0} {
			testX8MatMul(t, dt)
		}
	})
}

func testX8MatMul(t *testing.T, dt DType) {
	r := rand.New(rand.NewPCG(21, 22))
	pool := NewPool(2)
	defer pool.Close()
	for _, shape := range [][2]int{{8, 32}, {16, 64}, {67, 2560}, {200, 96}, {7, 64}} {
		rows, cols := shape[0], shape[1]
		m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: quantize(dt, rows, cols, randVec(r, rows*cols))}
		pm := m.Repacked()
		if !active.x8 {
			if pm.x8 != nil {
				t.Fatal("repacked for a set that reads the plain layout")
			}
			return
		}
		if (rows >= 8) != (pm.x8 != nil) {
			t.Fatalf("%v %dx%d: repacked %v", dt, rows, cols, pm.x8 != nil)
		}
		for _, tokens := range []int{1, 3, 4, 6, 9} {
			name := fmt.Sprintf("%v %dx%d/%d tokens", dt, rows, cols, tokens)
			x := randVec(r, tokens*cols)
			bias := randVec(r, rows)
			got, plain := make([]float32, tokens*rows), make([]float32, tokens*rows)
			MatMul(pool, got, pm, x, bias, tokens)
			MatMul(pool, plain, m, x, bias, tokens)
			xq := make([]float32, len(x))
			for tk := 0; tk < tokens; tk++ {
				DequantizeRow(Q8_0, quantize(Q8_0, 1, cols, x[tk*cols:(tk+1)*cols]), xq[tk*cols:(tk+1)*cols])
			}
			want := ref(m, xq, bias, tokens)
			for i := range got {
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-4*math.Sqrt(float64(cols)) {
					t.Fatalf("%s: y[%d] = %v, want %v (plain layout %v)", name, i, got[i], want[i], plain[i])
				}
			}
			one := make([]float32, rows)
			for tk := 0; tk < tokens; tk++ {
				MatVec(pool, one, pm, x[tk*cols:(tk+1)*cols], bias)
				for i := range one {
					if math.Float32bits(one[i]) != math.Float32bits(got[tk*rows+i]) {
						t.Fatalf("%s: token %d row %d: %v one by one, %v batched", name, tk, i, one[i], got[tk*rows+i])
					}
				}
			}
		}
	}
}

// The packed layout holds exactly the plain layout's blocks.
func TestPackQ4_0x8(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	rows, cols := 16, 96
	data := randQ4_0(r, rows*cols/QK)
	packed := make([]byte, rows/8*cols/QK*x8BlockBytes(Q4_0))
	packQ4_0x8(packed, data, rows, cols)
	blocks := cols / QK
	for row := 0; row < rows; row++ {
		for b := 0; b < blocks; b++ {
			src := data[(row*blocks+b)*18:][:18]
			g, rr := row/8, row%8
			dst := packed[(g*blocks+b)*x8BlockBytes(Q4_0):][:x8BlockBytes(Q4_0)]
			if dst[2*rr] != src[0] || dst[2*rr+1] != src[1] {
				t.Fatalf("row %d block %d: scale", row, b)
			}
			for j := 0; j < 16; j++ {
				off := 16 + 8*rr + j
				if j >= 8 {
					off = 80 + 8*rr + j - 8
				}
				if dst[off] != src[2+j] {
					t.Fatalf("row %d block %d: quant byte %d", row, b, j)
				}
			}
		}
	}
}

func TestPackQ8_0x8(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	rows, cols := 16, 96
	data := randQ8_0(r, rows*cols/QK, true)
	packed := make([]byte, rows/8*cols/QK*x8BlockBytes(Q8_0))
	packQ8_0x8(packed, data, rows, cols)
	blocks := cols / QK
	for row := 0; row < rows; row++ {
		for b := 0; b < blocks; b++ {
			src := data[(row*blocks+b)*34:][:34]
			g, rr := row/8, row%8
			dst := packed[(g*blocks+b)*x8BlockBytes(Q8_0):][:x8BlockBytes(Q8_0)]
			if dst[2*rr] != src[0] || dst[2*rr+1] != src[1] {
				t.Fatalf("row %d block %d: scale", row, b)
			}
			for j := 0; j < 32; j++ {
				if dst[16+64*(j/8)+8*rr+j%8] != src[2+j] {
					t.Fatalf("row %d block %d: quant %d", row, b, j)
				}
			}
		}
	}
}

// TestX8Kernels runs every set's packed kernels against the generic ones,
// bit for bit, on random blocks (finite scales, subnormals included) for
// eight rows and four tokens, from no block to the real sizes (2,560 and
// 10,240 columns); the generic kernels are checked against the plain
// generic dots, exactly with unit scales. Every set carries x8 kernels,
// the generic ones where it has no assembly.
func TestX8Kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	for _, k := range kernelSets() {
		t.Run(k.name, func(t *testing.T) {
			for _, dt := range []DType{Q4_0, Q8_0} {
				per := 8*dt.BlockBytes() + 4*34
				for _, blocks := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 80, 320} {
					data := make([]byte, blocks*per)
					for i := range data {
						data[i] = byte(r.Uint32())
					}
					checkX8(t, k, dt, data, false)
					if blocks <= 16 { // exact integer sums below 2^24
						setScales(data[:8*dt.BlockBytes()*blocks], dt.BlockBytes(), 0x3c00)
						setScales(data[8*dt.BlockBytes()*blocks:], 34, 0x3c00)
						checkX8(t, k, dt, data, true)
					}
				}
			}
		})
	}
}

// FuzzX8 is TestX8Kernels on the fuzzer's blocks. The first byte picks
// Q4_0 (even) or Q8_0 (odd).
func FuzzX8(f *testing.F) {
	f.Add(make([]byte, 1+8*18+4*34))
	f.Add(make([]byte, 1+3*(8*18+4*34)))
	f.Add(append([]byte{1}, make([]byte, 2*(8*34+4*34))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		dt := Q4_0
		if data[0]%2 == 1 {
			dt = Q8_0
		}
		for _, k := range kernelSets() {
			checkX8(t, k, dt, data[1:], false)
		}
	})
}

// checkX8 checks set k's packed kernels for dt on data: whole blocks of
// eight weight rows' block (dt's block bytes each) and four activation
// blocks (34 bytes each), made finite, activations within ±127 as
// QuantizeQ8_0 makes them. The gemv and the tile must give the generic
// gemv's bits for every (row, token), which must be near the plain generic
// dot (equal to it when exact).
func checkX8(t *testing.T, k kernelSet, dt DType, data []byte, exact bool) {
	t.Helper()
	bs := dt.BlockBytes()
	per := 8*bs + 4*34
	blocks := len(data) / per
	w := append([]byte(nil), data[:8*bs*blocks]...)
	x := append([]byte(nil), data[8*bs*blocks:per*blocks]...)
	finiteScales(w, bs)
	finiteScales(x, 34)
	for i := 0; i < len(x); i += 34 {
		for j := 2; j < 34; j++ {
			if x[i+j] == 0x80 {
				x[i+j] = 0x81
			}
		}
	}
	pack, plain := packQ4_0x8, dotQ4_0Generic
	if dt == Q8_0 {
		pack, plain = packQ8_0x8, dotQ8_0Generic
	}
	rb, xrb := bs*blocks, 34*blocks
	packed := make([]byte, blocks*x8BlockBytes(dt))
	pack(packed, w, 8, blocks*QK)
	// Each set reads its own prepared form (prepX8): the set's and the
	// generic one's, from the same activation rows.
	prepare := func(k kernelSet) ([]byte, int) {
		pstride := blocks * k.prepX8Bytes
		prep := make([]byte, 4*pstride)
		for tk := 0; tk < 4; tk++ {
			k.prepX8(prep[tk*pstride:], x[tk*xrb:(tk+1)*xrb])
		}
		return prep, pstride
	}
	prep, pstride := prepare(k)
	gprep, gstride := prepare(genericKernels)
	q, ref := k.quant(dt), genericKernels.quant(dt)
	var tile [32]float32
	q.x8Tile(&tile, packed, prep, blocks, pstride)
	for tk := 0; tk < 4; tk++ {
		var got, want [8]float32
		q.x8Gemv(&got, packed, prep[tk*pstride:(tk+1)*pstride], blocks)
		ref.x8Gemv(&want, packed, gprep[tk*gstride:(tk+1)*gstride], blocks)
		for row := 0; row < 8; row++ {
			if !sameBits(got[row], want[row]) {
				t.Fatalf("%s %v %d blocks: token %d row %d: gemv %v, generic %v", k.name, dt, blocks, tk, row, got[row], want[row])
			}
			if v := tile[tk*8+row]; !sameBits(v, want[row]) {
				t.Fatalf("%s %v %d blocks: token %d row %d: tile %v, generic gemv %v", k.name, dt, blocks, tk, row, v, want[row])
			}
			wr, xr := w[row*rb:(row+1)*rb], x[tk*xrb:(tk+1)*xrb]
			d := plain(wr, xr)
			if exact && !sameBits(want[row], d) || !near(want[row], d, absDotQ(dt, wr, xr)) {
				t.Fatalf("%v %d blocks: token %d row %d: generic x8 %v, plain dot %v", dt, blocks, tk, row, want[row], d)
			}
		}
	}
}

// sameBits reports whether a and b are the same float32, or both NaN.
func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || isNaN(a) && isNaN(b)
}

// fma32 must round a·b+c once. The first cases are where rounding the
// float64 FMA again to float32 goes wrong: a·b lies on a float32 midpoint
// and c, far below float64's precision there, decides the side.
func TestFMA32(t *testing.T) {
	one12 := float32(1 + 1.0/4096) // (1+2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴
	cases := [][3]float32{
		{one12, one12, 0x1p-80}, {one12, one12, -0x1p-80}, {-one12, one12, 0x1p-80},
		{one12, one12, 0}, {0, 5, float32(math.Copysign(0, -1))}, {2, 3, -6},
		{float32(math.Inf(1)), 1, 1}, {0x1p-70, 0x1p-70, 1e-45}, {3, 0x1p-149, 0x1p-149},
	}
	r := rand.New(rand.NewPCG(29, 30))
	for range 200000 {
		// Integer lane sums times scales plus accumulators, as the x8
		// kernels have them, and exponents close enough to cancel.
		a := float32(int32(r.Uint32()) >> (8 + r.IntN(24)))
		b := math.Float32frombits(r.Uint32()&0x807fffff | uint32(100+r.IntN(40))<<23)
		c := math.Float32frombits(r.Uint32()&0x807fffff | uint32(90+r.IntN(70))<<23)
		cases = append(cases, [3]float32{a, b, c})
	}
	for _, c := range cases {
		if got, want := fma32(c[0], c[1], c[2]), fmaExact(c[0], c[1], c[2]); !sameBits(got, want) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#08x), want %g (%#08x)", c[0], c[1], c[2], got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
}

// fmaExact is a·b+c computed exactly and rounded once to float32.
func fmaExact(a, b, c float32) float32 {
	if isNaN(a) || isNaN(b) || isNaN(c) || math.IsInf(float64(a), 0) || math.IsInf(float64(b), 0) || math.IsInf(float64(c), 0) {
		return float32(float64(a)*float64(b) + float64(c))
	}
	x := new(big.Float).SetPrec(1000).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetFloat64(float64(c)))
	f, _ := x.Float32()
	if f == 0 && x.Sign() == 0 && math.Signbit(float64(a)*float64(b)) && math.Signbit(float64(c)) {
		return float32(math.Copysign(0, -1)) // −0 + −0
	}
	return f
}

// The wide prepared form holds the plain one's fields, repeated as the
// AVX2 kernels load them.
func TestX8PrepWide(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const blocks = 5
	x := quantize(Q8_0, 1, blocks*QK, randVec(r, blocks*QK))
	narrow := make([]byte, blocks*x8PrepBytes)
	wide := make([]byte, blocks*x8WideBytes)
	x8Prep(narrow, x)
	x8PrepWide(wide, x)
	for b := 0; b < blocks; b++ {
		n, w := narrow[b*x8PrepBytes:][:x8PrepBytes], wide[b*x8WideBytes:][:x8WideBytes]
		for i := 0; i < 128; i++ { // quants k·8 … k·8+7 at 32k, four times
			if w[i] != n[i/32*8+i%8] {
				t.Fatalf("block %d: byte %d = %d, want quant %d", b, i, w[i], n[i/32*8+i%8])
			}
		}
		for i := 0; i < 32; i++ {
			if w[128+i] != n[32+i%8] {
				t.Fatalf("block %d: correction byte %d", b, i)
			}
			if w[160+i] != n[48+i%4] {
				t.Fatalf("block %d: scale byte %d", b, i)
			}
		}
	}
}

// BenchmarkX8Kernels is each set's Q4_0 and Q8_0 packed kernels on one
// group of eight rows × 2,560 columns from L1, on one core: the gemv (one
// token) and the four-token tile, in ns per packed block and token (eight
// rows × 32 weights).
func BenchmarkX8Kernels(b *testing.B) {
	r := rand.New(rand.NewPCG(33, 34))
	const cols = 2560
	blocks := cols / QK
	for _, k := range kernelSets() {
		for _, dt := range []DType{Q4_0, Q8_0} {
			packed := make([]byte, blocks*x8BlockBytes(dt))
			pack := packQ4_0x8
			if dt == Q8_0 {
				pack = packQ8_0x8
			}
			pack(packed, quantize(dt, x8Rows, cols, randVec(r, x8Rows*cols)), x8Rows, cols)
			pstride := blocks * k.prepX8Bytes
			prep := make([]byte, x8Tokens*pstride)
			for t := 0; t < x8Tokens; t++ {
				k.prepX8(prep[t*pstride:], quantize(Q8_0, 1, cols, randVec(r, cols)))
			}
			q := k.quant(dt)
			b.Run(fmt.Sprintf("%s/%v/gemv", k.name, dt), func(b *testing.B) {
				var out [8]float32
				for b.Loop() {
					q.x8Gemv(&out, packed, prep, blocks)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*blocks), "ns/block-token")
			})
			b.Run(fmt.Sprintf("%s/%v/tile", k.name, dt), func(b *testing.B) {
				var out [32]float32
				for b.Loop() {
					q.x8Tile(&out, packed, prep, blocks, pstride)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*blocks*x8Tokens), "ns/block-token")
			})
			if q.x8Tile2 == nil {
				continue
			}
			two := append(append([]byte(nil), packed...), packed...)
			b.Run(fmt.Sprintf("%s/%v/tile2", k.name, dt), func(b *testing.B) {
				var out [64]float32
				for b.Loop() {
					q.x8Tile2(&out, two, prep, blocks, pstride)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*blocks*x8Tokens), "ns/block-token")
			})
		}
	}
}
