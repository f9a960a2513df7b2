package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The repacked Q4_0 and Q8_0 paths: close to the plain dot, and
// bit-identical between one token at a time (decode) and any batch (prefill
// tiles plus leftover tokens), for shapes with and without rows past the
// last group of eight.
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
		if gemv, _ := x8Kernels(dt); gemv == nil {
			if pm.x8 != nil {
				t.Fatal("repacked without packed kernels")
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

// FuzzX8 checks the packed kernels against the generic dots on arbitrary
// blocks (finite scales) for eight rows and four tokens, and the decode
// kernel against the tile bit for bit. The first byte picks Q4_0 (even) or
// Q8_0 (odd).
func FuzzX8(f *testing.F) {
	f.Add(make([]byte, 1+8*18+4*34))
	f.Add(make([]byte, 1+3*(8*18+4*34)))
	f.Add(append([]byte{1}, make([]byte, 2*(8*34+4*34))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		asmKernels(t)
		if len(data) == 0 {
			return
		}
		var first []float32 // the first set's results: every set gives the same bits
		for _, k := range kernelSets()[1:] {
			dt, pack, gemv, tile, ref := Q4_0, packQ4_0x8, k.q4x8Gemv, k.q4x8Tile, dotQ4_0Generic
			if data[0]%2 == 1 {
				dt, pack, gemv, tile, ref = Q8_0, packQ8_0x8, k.q8x8Gemv, k.q8x8Tile, dotQ8_0Generic
			}
			if gemv == nil {
				continue
			}
			first = checkX8(t, k.name, data[1:], dt, pack, gemv, tile, ref, first)
		}
	})
}

// checkX8 is one kernel set's FuzzX8 case; it returns the tile's results
// and compares them with first when that is not nil.
func checkX8(t *testing.T, set string, data []byte, dt DType, pack func(out, data []byte, rows, cols int),
	gemv func(out *[8]float32, w, p []byte, blocks int), tile func(out *[32]float32, w, p []byte, blocks, pstride int),
	ref func(w, x []byte) float32, first []float32) []float32 {
	bs := dt.BlockBytes()
	per := 8*bs + 4*34
	blocks := len(data) / per
	if blocks == 0 {
		return first
	}
	w := append([]byte(nil), data[:8*bs*blocks]...)
	x := append([]byte(nil), data[8*bs*blocks:per*blocks]...)
	finiteScales(w, bs)
	finiteScales(x, 34)
	for i := 0; i < len(x); i += 34 { // activations within ±127, as QuantizeQ8_0 makes them
		for j := 2; j < 34; j++ {
			if x[i+j] == 0x80 {
				x[i+j] = 0x81
			}
		}
	}
	rb, xrb := bs*blocks, 34*blocks
	packed := make([]byte, blocks*x8BlockBytes(dt))
	pack(packed, w, 8, blocks*QK)
	pstride := blocks * x8PrepBytes
	prep := make([]byte, 4*pstride)
	for tk := 0; tk < 4; tk++ {
		x8Prep(prep[tk*pstride:], x[tk*xrb:(tk+1)*xrb])
	}
	var o32 [32]float32
	tile(&o32, packed, prep, blocks, pstride)
	for tk := 0; tk < 4; tk++ {
		var o8 [8]float32
		gemv(&o8, packed, prep[tk*pstride:(tk+1)*pstride], blocks)
		for row := 0; row < 8; row++ {
			got := o8[row]
			if tile := o32[tk*8+row]; math.Float32bits(tile) != math.Float32bits(got) && !(isNaN(tile) && isNaN(got)) {
				t.Fatalf("%s: token %d row %d: gemv %v, tile %v", set, tk, row, got, tile)
			}
			wr, xr := w[row*rb:(row+1)*rb], x[tk*xrb:(tk+1)*xrb]
			if want := ref(wr, xr); !near(got, want, absDotQ(dt, wr, xr)) {
				t.Errorf("%s: %d blocks, token %d row %d: %v, generic %v", set, blocks, tk, row, got, want)
			}
		}
	}
	if first == nil {
		return o32[:]
	}
	for i, v := range o32 {
		if math.Float32bits(v) != math.Float32bits(first[i]) && !(isNaN(v) && isNaN(first[i])) {
			t.Fatalf("%s: result %d is %v, another set's %v", set, i, v, first[i])
		}
	}
	return first
}
