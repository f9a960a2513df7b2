package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The repacked Q4_0 path: close to the plain dot, and bit-identical between
// one token at a time (decode) and any batch (prefill tiles plus leftover
// tokens), for shapes with and without rows past the last group of eight.
func TestQ4x8MatMul(t *testing.T) {
	withEachKernelSet(t, testQ4x8MatMul)
}

func testQ4x8MatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	pool := NewPool(2)
	defer pool.Close()
	for _, shape := range [][2]int{{8, 32}, {16, 64}, {67, 2560}, {200, 96}, {7, 64}} {
		rows, cols := shape[0], shape[1]
		m := Matrix{DType: Q4_0, Rows: rows, Cols: cols, Data: quantize(Q4_0, rows, cols, randVec(r, rows*cols))}
		pm := m.Repacked()
		if q4x8Gemv == nil {
			if pm.q4x8 != nil {
				t.Fatal("repacked without packed kernels")
			}
			return
		}
		if (rows >= 8) != (pm.q4x8 != nil) {
			t.Fatalf("%dx%d: repacked %v", rows, cols, pm.q4x8 != nil)
		}
		for _, tokens := range []int{1, 3, 4, 6, 9} {
			name := fmt.Sprintf("%dx%d/%d tokens", rows, cols, tokens)
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
	packed := packQ4_0x8(data, rows, cols)
	blocks := cols / QK
	for row := 0; row < rows; row++ {
		for b := 0; b < blocks; b++ {
			src := data[(row*blocks+b)*18:][:18]
			g, rr := row/8, row%8
			dst := packed[(g*blocks+b)*q4x8BlockBytes:][:q4x8BlockBytes]
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

// FuzzQ4x8 checks the packed kernels against the generic dot on arbitrary
// blocks (finite scales) for eight rows and four tokens, and the decode
// kernel against the tile bit for bit.
func FuzzQ4x8(f *testing.F) {
	f.Add(make([]byte, 8*18+4*34))
	f.Add(make([]byte, 3*(8*18+4*34)))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := asmKernels(t)
		if k.q4x8Gemv == nil {
			t.Skip("no packed Q4_0 kernels")
		}
		per := 8*18 + 4*34
		blocks := len(data) / per
		if blocks == 0 {
			return
		}
		w := append([]byte(nil), data[:8*18*blocks]...)
		x := append([]byte(nil), data[8*18*blocks:per*blocks]...)
		finiteScales(w, 18)
		finiteScales(x, 34)
		for i := 0; i < len(x); i += 34 { // activations within ±127, as QuantizeQ8_0 makes them
			for j := 2; j < 34; j++ {
				if x[i+j] == 0x80 {
					x[i+j] = 0x81
				}
			}
		}
		rb, xrb := 18*blocks, 34*blocks
		packed := packQ4_0x8(w, 8, blocks*QK)
		pstride := blocks * q4x8PrepBytes
		prep := make([]byte, 4*pstride)
		for tk := 0; tk < 4; tk++ {
			q4x8Prep(prep[tk*pstride:], x[tk*xrb:(tk+1)*xrb])
		}
		var o32 [32]float32
		k.q4x8Tile(&o32, packed, prep, blocks, pstride)
		for tk := 0; tk < 4; tk++ {
			var o8 [8]float32
			k.q4x8Gemv(&o8, packed, prep[tk*pstride:(tk+1)*pstride], blocks)
			for row := 0; row < 8; row++ {
				got := o8[row]
				if tile := o32[tk*8+row]; math.Float32bits(tile) != math.Float32bits(got) && !(isNaN(tile) && isNaN(got)) {
					t.Fatalf("token %d row %d: gemv %v, tile %v", tk, row, got, tile)
				}
				wr, xr := w[row*rb:(row+1)*rb], x[tk*xrb:(tk+1)*xrb]
				if want := dotQ4_0Generic(wr, xr); !near(got, want, absDotQ(Q4_0, wr, xr)) {
					t.Errorf("%d blocks, token %d row %d: %v, generic %v", blocks, tk, row, got, want)
				}
			}
		}
	})
}
