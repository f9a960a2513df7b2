package kernels

import "os"

// The tile parts' constants: flags, the space for a tile's accumulators
// (24 vectors of 16 floats), the column alignment of all but the last part
// and the part length the product uses (a multiple of it: the rows and
// tokens of a 4×3 part take 28 KB, within a 48 KB L1).
const (
	tileCont = 1
	tileLast = 2
	// tileNext tells a rest tile that it is the second pass over its rows,
	// so that it prefetches the next row tile (the 4×3 kernel's second
	// tile does it otherwise). The AVX2 rest tiles heed it (8 tokens: 2–6 %
	// slower when the third pass prefetches again); the AVX-512 ones
	// prefetch on every pass, which measured as good or better there.
	tileNext       = 4
	tileAccFloats  = 384
	tilePartAlign  = 32
	tilePartLength = 1024
)

// kernelSet is one implementation of every kernel: the package's one
// dispatch table, in the manner of ggml's per-type traits. Every product
// reads its kernels from active, the set chosen once at start-up; there is
// no other copy of them. An architecture offers the sets its CPU can run
// (archKernels), best first, each starting as a copy of genericKernels and
// replacing what it has in assembly, so a kernel with a generic version is
// never missing; the fields that may be nil ("when not nil") are
// accelerations with no generic twin, which the products do without.
type kernelSet struct {
	name string
	f32  func(a, b []float32) float32
	f16  func(a []uint16, b []float32) float32
	bf16 func(a []uint16, b []float32) float32
	// q8_0 and q4_0 are the kernels for Q8_0 and Q4_0 weights against Q8_0
	// activations (see quantKernels); their tiles are qTileRows×qTileToks.
	q8_0, q4_0           quantKernels
	qTileRows, qTileToks int
	// q4_K, q5_K and q6_K are the kernels of K-quant weights against Q8_K
	// activations (kdot.go): the dot, a 1×kTileToks tile where a set has
	// one, and the kernels of the layout packed by eight rows (kx8.go).
	q4_K, q5_K, q6_K quantKernels
	// x8 tells that the set's products read Q4_0 and Q8_0 matrices in the
	// repacked layout (Repacked makes it; x8.go). Every set carries the x8
	// kernels (the generic ones where it has no assembly), so that every
	// platform tests that layout; only sets with x8 use it.
	x8 bool
	// prepX8 writes the prepared form of Q8_0 activation rows that the
	// set's Q4_0 and Q8_0 x8 kernels read, prepX8Bytes per block: x8Prep
	// (x8PrepBytes), or x8PrepWide (x8WideBytes) for the AVX2 kernels.
	prepX8      func(dst, x []byte)
	prepX8Bytes int
	// kx8 tells that the set's products read K-quant matrices packed by
	// eight rows (kx8.go); every set carries the K x8 kernels, as for x8.
	kx8 bool
	// tileRows×tileTokens is the float tile of tileParts and tilePartsH.
	tileRows, tileTokens int
	// oneChain tells that the set's float dots sum each row in one chain
	// (the AVX-512 set), so that its tiles hold 24 pairs: batches smaller
	// than a tile then go through the rest tiles too, not single dots.
	oneChain bool
	// tileParts, when not nil, computes tileRows×tileTokens blocks of dot
	// products (rows of w, tokens of x, each ld floats apart) in parts along
	// the columns, so that a part's rows and tokens stay in L1: a part covers
	// n columns (a multiple of tilePartAlign unless it is the last,
	// flags&tileLast), starting from the accumulators saved in acc by the
	// previous part (flags&tileCont) and saving them there, or, in the last
	// part, storing the pairs' results token-major at
	// acc[0…tileRows·tileTokens). One call runs the part for tiles token
	// tiles in a row (tokens tt·j … tt·j+tt−1, accumulators at
	// acc[j·tileAccFloats:]). Every pair gets f32's bits, whatever the parts.
	tileParts func(acc []float32, w, x []float32, ld, n, flags, tiles int)
	// tilePartsRest, when not nil, is tileParts for one tile of fewer than
	// tileTokens tokens (as tilePartsHRest).
	tilePartsRest func(acc []float32, w, x []float32, ld, n, flags, tokens int)
	// tilePartsH, when not nil, is tileParts with F16 rows widened inside
	// the kernel (the same bits as widening them first).
	tilePartsH func(acc []float32, w []uint16, x []float32, ld, n, flags, tiles int)
	// tilePartsHRest, when not nil, is tilePartsH for one tile of fewer
	// than tileTokens tokens (the last of a batch that tileTokens does not
	// divide, otherwise computed as an overlapping whole tile).
	tilePartsHRest func(acc []float32, w []uint16, x []float32, ld, n, flags, tokens int)
	// batchPart, when not 0, is the part length (a multiple of
	// tilePartAlign) for batches of decode streams that pass over a row
	// tile three times or more (wholeRowTokens); 0 keeps whole rows.
	batchPart int
	// tilePartsHAlign, when not 0, is the column multiple tilePartsH needs
	// in every part, the last too (it has no partial-chunk tail): matrices
	// with other widths widen their rows first.
	tilePartsHAlign int
	// f16Rows4, when not nil, sets out[i] = f16(row i of w, x) for four
	// rows of len(x) values, stride values apart, bit for bit: decode with
	// F16 weights, the activations loaded once for four rows.
	f16Rows4 func(out *[4]float32, w []uint16, x []float32, stride int)
	// bf16Rows4 and f32Rows4 are f16Rows4 for BF16 and float32 rows (sets
	// whose single-row dots sum in one chain need them: one chain alone is
	// slower than memory).
	bf16Rows4 func(out *[4]float32, w []uint16, x []float32, stride int)
	f32Rows4  func(out *[4]float32, w, x []float32, stride int)
	// widenF16, when not nil, converts fp16 values to float32 exactly as
	// f16Table does (but for NaN payloads: signalling NaNs come back quiet,
	// as in the set's f16); the prefill path widens weight rows with it.
	widenF16 func(dst []float32, src []uint16)
	// axpy is Axpy (the same bits as axpyGeneric: multiply, then add).
	axpy func(y []float32, a float32, x []float32)
	// dotsF32, when not nil, is DotsF32 in one call: f32's bits for every
	// row (attention's scores against a block of cached keys).
	dotsF32 func(out, q, keys []float32, stride int)
	// axpyRows, when not nil, is AxpyRows in one call: axpy's bits.
	axpyRows func(y, w, rows []float32, stride int)
	// quantQ8_0 quantizes the activations of quantized products: the same
	// bytes as QuantizeQ8_0 for finite input.
	quantQ8_0 func(dst []byte, x []float32)
	// quantQ8K quantizes the activations of K-quant products: the same
	// bytes as quantizeQ8K for finite input.
	quantQ8K func(dst []byte, x []float32)
	// expLanes is Softmax's exponentials over whole steps of sixteen
	// values and their sums by lane (softmax.go): the generic steps, or the
	// same steps in assembly, with the same bits.
	expLanes func(x []float32, mx float32, l *[16]float32)
	// div is Div (every quotient rounded once, so every set's bits).
	div func(x []float32, d float32)
	// max is the largest value of x's whole vector steps (softmax.go's
	// maxValue does the rest), −Inf when there are none; a NaN never wins.
	max func(x []float32) float32
	// gelu is GELUNew's kernel.
	gelu func(x []float32)
}

// quantKernels are one set's kernels for one block-quantized weight type:
// Q8_0 or Q4_0 against Q8_0 activations, or a K-quant against Q8_K ones
// (dot only).
type quantKernels struct {
	// dot is the dot product of a row of weights with a row of
	// activations: each block's exact integer sum times d_w·d_x.
	dot func(w, x []byte) float32
	// tile, when not nil, computes the dots of qTileRows weight rows
	// (blocks blocks each, back to back) with qTileToks activation rows
	// (back to back), out[t*qTileRows+i] = dot(w row i, x row t), bit for
	// bit; for the K-quants the tile is 1 row × kTileToks tokens.
	tile func(out []float32, w, x []byte, blocks int)
	// x8Gemv and x8Tile read a group of eight rows in the repacked layout
	// (x8.go; kx8.go for the K-quants, whose p is the Q8_K rows); they agree
	// bit for bit, and every set's give the generic ones' bits.
	x8Gemv func(out *[8]float32, w, p []byte, blocks int)
	x8Tile func(out *[32]float32, w, p []byte, blocks, pstride int)
	// x8Tile2, when not nil, is x8Tile for two groups at once (w holds
	// them back to back, blocks blocks each): out[t*8+r] is the first
	// group's row r, out[32+t*8+r] the second's, with x8Tile's bits.
	x8Tile2 func(out *[64]float32, w, p []byte, blocks, pstride int)
	// kx8Pair, when not nil, is a K-quant kernel for two groups (w holds
	// them back to back) times two tokens (Q8_K rows xstride bytes apart):
	// out[16g+8t+r] is group g's row r for token t, with x8Gemv's bits.
	kx8Pair func(out *[32]float32, w, x []byte, blocks, xstride int)
}

// quant is k's kernels for Q8_0 or Q4_0 weights, nil for other types.
func (k *kernelSet) quant(dt DType) *quantKernels {
	switch dt {
	case Q8_0:
		return &k.q8_0
	case Q4_0:
		return &k.q4_0
	}
	return nil
}

// genericKernels is the pure-Go reference every other set is tested
// against, and the start of every other set.
var genericKernels = kernelSet{
	name:        "generic",
	prepX8:      x8Prep,
	prepX8Bytes: x8PrepBytes,
	f32:         dotF32Generic,
	f16:         dotF16Generic,
	bf16:        dotBF16Generic,
	q8_0: quantKernels{
		dot:    dotQ8_0Generic,
		x8Gemv: x8Gemv(Q8_0, x8PrepBytes, x8GemvGeneric(Q8_0)),
		x8Tile: x8Tile(Q8_0, x8PrepBytes, x8TileGeneric(Q8_0)),
	},
	q4_0: quantKernels{
		dot:    dotQ4_0Generic,
		x8Gemv: x8Gemv(Q4_0, x8PrepBytes, x8GemvGeneric(Q4_0)),
		x8Tile: x8Tile(Q4_0, x8PrepBytes, x8TileGeneric(Q4_0)),
	},
	q4_K:      kquantGeneric(Q4_K, dotQ4KGeneric),
	q5_K:      kquantGeneric(Q5_K, dotQ5KGeneric),
	q6_K:      kquantGeneric(Q6_K, dotQ6KGeneric),
	axpy:      axpyGeneric,
	quantQ8_0: QuantizeQ8_0,
	quantQ8K:  quantizeQ8K,
	gelu:      geluNewGeneric,
	expLanes:  expLanesGeneric,
	div:       divGeneric,
	max:       maxGeneric,
}

// KernelsEnv names the environment variable that picks a kernel set by name
// (generic, avx2, avx512, neon) instead of the best one the CPU runs; a name
// the CPU cannot run is ignored. For benchmarks and for ruling a kernel set
// out when hunting a problem.
const KernelsEnv = "PHALANX_KERNELS"

// active is the kernel set in use, resolved once at start-up; only tests
// set it again. It is a value, not a pointer to one, so that a call through
// it loads the function as directly as a function variable would.
var active = pickKernels(append(archKernels(), genericKernels), os.Getenv(KernelsEnv))

// pickKernels is the set named want among sets, or the first.
func pickKernels(sets []kernelSet, want string) kernelSet {
	for _, k := range sets {
		if k.name == want {
			return k
		}
	}
	return sets[0]
}

// Name is the name of the kernel set in use: avx512, avx2, neon or generic.
func Name() string { return active.name }

// DotF32 is the dot product of two float32 vectors of equal length.
func DotF32(a, b []float32) float32 { return active.f32(a, b) }

// DotsF32 sets out[i] = DotF32(q, keys[i*stride:i*stride+len(q)]) for every
// i, bit for bit: attention's scores of one query against a run of cached
// keys (one head's slice of each position), in one call instead of one per
// key, which for an 80-float head cost more in calls than in arithmetic.
func DotsF32(out, q, keys []float32, stride int) {
	if len(out) == 0 || len(q) == 0 {
		clear(out)
		return
	}
	_ = keys[(len(out)-1)*stride+len(q)-1] // every row in range
	if active.dotsF32 != nil {
		active.dotsF32(out, q, keys, stride)
		return
	}
	for i := range out {
		out[i] = active.f32(q, keys[i*stride:i*stride+len(q)])
	}
}

// AxpyRows adds w[i] * rows[i*stride:i*stride+len(y)] to y for i = 0, 1, …
// in order, each as Axpy does it, bit for bit: attention's weighted sum of
// a run of cached values in one call.
func AxpyRows(y, w, rows []float32, stride int) {
	if len(w) == 0 || len(y) == 0 {
		return
	}
	_ = rows[(len(w)-1)*stride+len(y)-1] // every row in range
	if active.axpyRows != nil {
		active.axpyRows(y, w, rows, stride)
		return
	}
	for i, a := range w {
		active.axpy(y, a, rows[i*stride:i*stride+len(y)])
	}
}
