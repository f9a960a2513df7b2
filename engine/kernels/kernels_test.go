package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func encode(dt DType, v []float32) []byte {
	out := make([]byte, 0, len(v)*dt.Size())
	for _, x := range v {
		switch dt {
		case F32:
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
		case F16:
			out = binary.LittleEndian.AppendUint16(out, F32ToF16(x))
		case BF16:
			out = binary.LittleEndian.AppendUint16(out, F32ToBF16(x))
		}
	}
	return out
}

// ref is the float64 product of the matrix as stored with x.
func ref(m Matrix, x []float32, bias []float32, tokens int) []float64 {
	out := make([]float64, tokens*m.Rows)
	row := make([]float32, m.Cols)
	for r := 0; r < m.Rows; r++ {
		m.Row(r, row)
		for t := 0; t < tokens; t++ {
			var s float64
			for i, w := range row {
				s += float64(w) * float64(x[t*m.Cols+i])
			}
			if bias != nil {
				s += float64(bias[r])
			}
			out[t*m.Rows+r] = s
		}
	}
	return out
}

func TestMatMulAgainstFloat64(t *testing.T) {
	withEachKernelSet(t, testMatMulAgainstFloat64)
}

func testMatMulAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pool := NewPool(3)
	defer pool.Close()
	for _, dt := range []DType{F32, F16, BF16} {
		for _, shape := range [][3]int{{1, 1, 1}, {7, 9, 1}, {33, 17, 3}, {64, 80, 5}, {100, 2560, 2}, {5, 10240, 1}} {
			rows, cols, tokens := shape[0], shape[1], shape[2]
			m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: encode(dt, randVec(r, rows*cols))}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			x := randVec(r, tokens*cols)
			bias := randVec(r, rows)
			y := make([]float32, tokens*rows)
			MatMul(pool, y, m, x, bias, tokens)
			want := ref(m, x, bias, tokens)
			for i := range y {
				tol := 1e-5 * math.Sqrt(float64(cols)) * 4
				if d := math.Abs(float64(y[i]) - want[i]); d > tol {
					t.Fatalf("%v %dx%d×%d: y[%d] = %v, want %v", dt, rows, cols, tokens, i, y[i], want[i])
				}
			}
		}
	}
}

func TestDotGenericLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 33; n++ {
		a, b := randVec(r, n), randVec(r, n)
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		if d := math.Abs(float64(active.f32(a, b)) - want); d > 1e-5 {
			t.Errorf("n=%d: dot %v, want %v", n, active.f32(a, b), want)
		}
	}
}

func TestF16ConversionExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		if math.IsNaN(float64(f)) {
			if g := F32ToF16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, g)
			}
			continue
		}
		if g := F32ToF16(f); g != h {
			t.Fatalf("half %#04x → %v → %#04x", h, f, g)
		}
	}
	// Round to nearest even between two halves.
	one, next := F16ToF32(0x3c00), F16ToF32(0x3c01)
	mid := (one + next) / 2
	if F32ToF16(mid) != 0x3c00 {
		t.Errorf("tie did not round to even")
	}
	if F32ToF16(math.Nextafter32(mid, 2)) != 0x3c01 {
		t.Errorf("above the tie did not round up")
	}
	if F32ToF16(70000) != 0x7c00 || F32ToF16(-70000) != 0xfc00 {
		t.Errorf("overflow is not infinity")
	}
	if F32ToF16(1e-8) != 0 {
		t.Errorf("underflow is not zero")
	}
}

func TestBF16Rounding(t *testing.T) {
	for _, v := range []float32{0, 1, -2.5, 3.1415927, 1e-30, 6e37} {
		b := F32ToBF16(v)
		back := BF16ToF32(b)
		if d := math.Abs(float64(back - v)); d > math.Abs(float64(v))/256 {
			t.Errorf("%v → %v", v, back)
		}
	}
	if F32ToBF16(math.Float32frombits(0x3f808000)) != 0x3f80 { // tie, even stays
		t.Error("tie to even")
	}
	if F32ToBF16(math.Float32frombits(0x3f818000)) != 0x3f82 { // tie, odd rounds up
		t.Error("tie to even (odd)")
	}
	if !math.IsNaN(float64(BF16ToF32(F32ToBF16(float32(math.NaN()))))) {
		t.Error("NaN lost")
	}
}

func TestPoolRunsEveryChunkOnce(t *testing.T) {
	p := NewPool(4)
	defer p.Close()
	for _, n := range []int{0, 1, 2, 3, 4, 5, 100} {
		seen := make([]int32, n)
		var mu sync.Mutex
		p.Run(n, func(w, c int) {
			if w < 0 || w >= p.Threads() {
				t.Errorf("worker index %d outside [0, %d)", w, p.Threads())
			}
			mu.Lock()
			seen[c]++
			mu.Unlock()
		})
		for c, s := range seen {
			if s != 1 {
				t.Fatalf("n=%d: chunk %d ran %d times", n, c, s)
			}
		}
	}
}

// TestPoolParksAndWakes runs loops from several goroutines at once while
// the helpers alternate between spinning and parked (pauses longer than
// helperSpin) and the caller between spinning and parked on the helpers
// (chunks longer than callerSpin): every chunk runs once, no two running
// chunks share a worker index, and Close stops parked helpers.
func TestPoolParksAndWakes(t *testing.T) {
	for _, threads := range []int{2, 3} {
		before := runtime.NumGoroutine()
		p := NewPool(threads)
		busy := make([]atomic.Int32, threads)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					n := 1 + (g+i)%7
					var ran atomic.Int64
					slow := i%10 == 3 // one chunk outlasts the caller's spin
					p.Run(n, func(w, c int) {
						if busy[w].Add(1) != 1 {
							t.Errorf("worker %d runs two chunks at once", w)
						}
						if slow && c == n-1 {
							time.Sleep(callerSpin + time.Millisecond)
						}
						ran.Add(1 << (4 * c))
						busy[w].Add(-1)
					})
					for c := 0; c < n; c++ {
						if got := ran.Load() >> (4 * c) & 15; got != 1 {
							t.Errorf("chunk %d of %d ran %d times", c, n, got)
						}
					}
					if i%5 == 0 {
						time.Sleep(helperSpin + 2*time.Millisecond) // helpers park
					}
				}
			}()
		}
		wg.Wait()
		time.Sleep(helperSpin + 2*time.Millisecond)
		p.Close()
		p.Close() // twice is harmless
		var after atomic.Int32
		p.Run(5, func(w, c int) { after.Add(1) }) // a closed pool still runs a loop, on the caller
		if after.Load() != 5 {
			t.Fatalf("a closed pool ran %d of 5 chunks", after.Load())
		}
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines after Close, %d before the pool", runtime.NumGoroutine(), before)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestOps(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	LayerNorm(x, x, []float32{1, 1, 1, 1}, []float32{0, 0, 0, 0}, 0)
	var mean, ss float64
	for _, v := range x {
		mean += float64(v) / 4
	}
	for _, v := range x {
		ss += (float64(v) - mean) * (float64(v) - mean) / 4
	}
	if math.Abs(mean) > 1e-6 || math.Abs(ss-1) > 1e-5 {
		t.Errorf("layernorm: mean %v var %v", mean, ss)
	}
	s := []float32{1, 2, float32(math.Inf(-1))}
	Softmax(s)
	if s[2] != 0 || math.Abs(float64(s[0]+s[1])-1) > 1e-6 || s[1] <= s[0] {
		t.Errorf("softmax %v", s)
	}
	g := []float32{0, 1, -1}
	GELUNew(g)
	if g[0] != 0 || math.Abs(float64(g[1])-0.841192) > 1e-5 || math.Abs(float64(g[2])+0.158808) > 1e-5 {
		t.Errorf("gelu_new %v", g)
	}
}

// BenchmarkMatVec is the decode product: memory-bound, so it reports the
// weight bytes streamed per second (MB/s from SetBytes) besides GFLOP/s.
func BenchmarkMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, shape := range [][2]int{{2560, 2560}, {10240, 2560}} {
		rows, cols := shape[0], shape[1]
		w := randVec(r, rows*cols)
		for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
			b.Run(fmt.Sprintf("%v/%dx%d", dt, rows, cols), func(b *testing.B) {
				m := benchMatrix(dt, rows, cols, w)
				x, y := randVec(r, cols), make([]float32, rows)
				p := NewPool(2)
				defer p.Close()
				b.SetBytes(int64(len(m.Data)))
				for b.Loop() {
					MatVec(p, y, m, x, nil)
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(len(m.Data))*float64(b.N)/sec/1e9, "GB/s")
				b.ReportMetric(float64(2*rows*cols)*float64(b.N)/sec/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMatMulPrefill is a 64-token prompt's product (2560×2560), and
// batch=8 the product of a batch of 8 decode streams (one token each), the
// step of a cluster serving 8 requests at once, on a 10240-row matrix
// (Phi-2's fc1), too big for the caches as in a real step.
func BenchmarkMatMulPrefill(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, shape := range [][3]int{{2560, 2560, 64}, {10240, 2560, 8}} {
		rows, cols, tokens := shape[0], shape[1], shape[2]
		for _, dt := range []DType{F32, F16, Q8_0, Q4_0} {
			name := dt.String()
			if tokens != 64 {
				name = fmt.Sprintf("batch=%d/%v", tokens, dt)
			}
			b.Run(name, func(b *testing.B) {
				m := benchMatrix(dt, rows, cols, randVec(r, rows*cols))
				x, y := randVec(r, tokens*cols), make([]float32, tokens*rows)
				p := NewPool(2)
				defer p.Close()
				for b.Loop() {
					MatMul(p, y, m, x, nil, tokens)
				}
				b.ReportMetric(float64(2*rows*cols*tokens)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// Decode (one row at a time) and prefill (rows widened in blocks) must give
// the same bits: replaying a prompt rebuilds a KV cache exactly.
func TestMatMulRowByRowBitIdentical(t *testing.T) {
	withEachKernelSet(t, testMatMulRowByRowBitIdentical)
}

func testMatMulRowByRowBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pool := NewPool(2)
	defer pool.Close()
	for _, dt := range []DType{F32, F16, BF16, Q4_K} {
		// Rows past 1024 columns go through the tile in parts (tilePartLength):
		// a last part with a 16+8 tail, one exactly 32 long, one of 8, one of
		// 16+10; tokens past the 3-token tiles go through a set's rest tile
		// (one or two tokens) where it has one.
		for _, shape := range [][3]int{{37, 203, 5}, {37, 256, 4}, {9, 0, 3}, {13, 2600, 7}, {9, 2080, 6}, {5, 1032, 3}, {11, 1050, 5}, {9, 50, 8}} {
			rows, cols, tokens := shape[0], shape[1], shape[2]
			if dt.RowBytes(cols) < 0 {
				continue
			}
			var data []byte
			if dt == Q4_K {
				data = make([]byte, rows*dt.RowBytes(cols))
				for i := range data {
					data[i] = byte(r.Uint32())
				}
				for i := 0; i < len(data); i += dt.BlockBytes() {
					binary.LittleEndian.PutUint16(data[i:], randHalf(r))
					binary.LittleEndian.PutUint16(data[i+2:], randHalf(r))
				}
			} else {
				data = encode(dt, randVec(r, rows*cols))
			}
			m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: data}
			checkBatchedBits(t, pool, m, randVec(r, tokens*cols), tokens)
		}
	}
}

// Batches of 1 to 40 tokens over random shapes (rows not a multiple of the
// tile, columns with every tail, within one part and over several) give
// each token the bits of its own product, for float rows in every set:
// the 4×3 tiles (4×6 for AVX-512 F16), the rest tiles (of one or two
// tokens; one to five for AVX-512 F16, which take small batches alone),
// whole rows for
// batches (wholeRowTokens; in parts of batchPart past two passes) and
// parts for longer ones, whatever prefetches each pass does.
func TestMatMulBatchesBitIdenticalRandomShapes(t *testing.T) {
	withEachKernelSet(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		pool := NewPool(2)
		defer pool.Close()
		for range 60 {
			rows, cols, tokens := 1+r.IntN(40), 1+r.IntN(2200), 1+r.IntN(40)
			for _, dt := range []DType{F32, F16} {
				m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: encode(dt, randVec(r, rows*cols))}.Repacked()
				checkBatchedBits(t, pool, m, randVec(r, tokens*cols), tokens)
				m.Free()
			}
		}
	})
}

// checkBatchedBits fails t unless m's product with tokens activation rows x
// in one call gives every token the bits of its own product (MatVec).
func checkBatchedBits(t *testing.T, pool *Pool, m Matrix, x []float32, tokens int) {
	t.Helper()
	rows, cols := m.Rows, m.Cols
	all := make([]float32, tokens*rows)
	MatMul(pool, all, m, x, nil, tokens)
	one := make([]float32, rows)
	for tk := 0; tk < tokens; tk++ {
		MatVec(pool, one, m, x[tk*cols:(tk+1)*cols], nil)
		for i := range one {
			if one[i] != all[tk*rows+i] {
				t.Fatalf("%v %dx%d, %d tokens: token %d row %d: %v one by one, %v batched", m.DType, rows, cols, tokens, tk, i, one[i], all[tk*rows+i])
			}
		}
	}
}

// benchMatrix is a matrix of w in dt, repacked as a model load would.
func benchMatrix(dt DType, rows, cols int, w []float32) Matrix {
	if dt.Quantized() {
		return Matrix{DType: dt, Rows: rows, Cols: cols, Data: quantize(dt, rows, cols, w)}.Repacked()
	}
	return Matrix{DType: dt, Rows: rows, Cols: cols, Data: encode(dt, w)}
}

// BenchmarkReadBandwidth is the rate at which the pool's threads read 1 GiB
// (each a contiguous part, eight independent sums): the ceiling a decode
// step that streams its weights from memory can approach.
func BenchmarkReadBandwidth(b *testing.B) {
	const n = 1 << 27 // uint64s: 1 GiB
	buf := make([]uint64, n)
	for i := range buf {
		buf[i] = uint64(i)
	}
	p := NewPool(2)
	defer p.Close()
	const parts = 64
	sums := make([]uint64, parts)
	for b.Loop() {
		p.Run(parts, func(_, c int) {
			var s [8]uint64
			part := buf[c*n/parts : (c+1)*n/parts]
			for i := 0; i+8 <= len(part); i += 8 {
				s[0] += part[i]
				s[1] += part[i+1]
				s[2] += part[i+2]
				s[3] += part[i+3]
				s[4] += part[i+4]
				s[5] += part[i+5]
				s[6] += part[i+6]
				s[7] += part[i+7]
			}
			sums[c] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]
		})
	}
	b.ReportMetric(float64(8*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// MatMulsBeside runs every side job once, on a valid worker index, and gives
// the products MatMuls' bits, for side queues shorter and longer than the
// products' chunks, empty, and with no products at all.
func TestMatMulsBeside(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	pool := NewPool(2)
	defer pool.Close()
	for _, c := range []struct{ rows, tokens, side int }{{64, 4, 0}, {64, 4, 3}, {64, 4, 500}, {512, 8, 37}, {24, 1, 1}} {
		for _, dt := range []DType{F32, Q4_0} {
			cols := 64
			m := benchMatrix(dt, c.rows, cols, randVec(r, c.rows*cols))
			x, bias := randVec(r, c.tokens*cols), randVec(r, c.rows)
			want := make([]float32, c.tokens*c.rows)
			MatMuls(pool, x, c.tokens, Product{M: m, Y: want, Bias: bias})
			got := make([]float32, c.tokens*c.rows)
			runs := make([]atomic.Int32, c.side)
			var badWorker atomic.Bool
			MatMulsBeside(pool, Jobs{N: c.side, Run: func(worker, j int) {
				if worker < 0 || worker >= pool.Threads() {
					badWorker.Store(true)
				}
				runs[j].Add(1)
			}}, x, c.tokens, Product{M: m, Y: got, Bias: bias})
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%v %+v: y[%d] %v beside side jobs, %v alone", dt, c, i, got[i], want[i])
				}
			}
			for j := range runs {
				if n := runs[j].Load(); n != 1 {
					t.Fatalf("%v %+v: side job %d ran %d times", dt, c, j, n)
				}
			}
			if badWorker.Load() {
				t.Fatalf("%v %+v: a side job ran with a worker index outside the pool", dt, c)
			}
			m.Free()
		}
	}
	var ran atomic.Int32 // no products: the side jobs alone
	MatMulsBeside(pool, Jobs{N: 5, Run: func(int, int) { ran.Add(1) }}, nil, 0)
	if ran.Load() != 5 {
		t.Fatalf("side jobs without products: %d ran, want 5", ran.Load())
	}
}
