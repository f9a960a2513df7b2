package kernels

import "os"

// The dot products every matrix product is built from, chosen once at
// start-up. Architecture files may replace them with assembly; the generic
// versions in dot_generic.go are the reference they are tested against.
var (
	dotF32  = dotF32Generic
	dotF16  = dotF16Generic
	dotBF16 = dotBF16Generic
	dotQ8_0 = dotQ8_0Generic
	dotQ4_0 = dotQ4_0Generic

	// axpy is Axpy's kernel (kernelSet.axpy or axpyGeneric).
	axpy = axpyGeneric

	// quantizeActQ8_0 quantizes activations (kernelSet.quantQ8_0, or the
	// reference QuantizeQ8_0).
	quantizeActQ8_0 = QuantizeQ8_0

	// dotF32TileParts: see kernelSet; nil without it.
	dotF32TileParts func(acc []float32, w, x []float32, ld, n, flags, tiles int)

	// dotF16TileParts: see kernelSet; nil without it.
	dotF16TileParts func(acc []float32, w []uint16, x []float32, ld, n, flags, tiles int)

	// dotF16Rows4: see kernelSet; nil without it.
	dotF16Rows4 func(out *[4]float32, w []uint16, x []float32)

	// tileRows×tileTokens is the float tile of the set's tile parts
	// (dotF32TileParts).
	tileRows, tileTokens int

	// dotQ8_0Tile and dotQ4_0Tile, when not nil, compute a block of dot
	// products of qTileRows rows of Q8_0 or Q4_0 weights (blocks blocks each, back to
	// back) against qTileTokens Q8_0 activation rows (back to back):
	//
	//	out[t*qTileRows+i] = dotQ8_0(w row i, x row t)
	//
	// bit for bit (likewise dotQ4_0).
	dotQ8_0Tile, dotQ4_0Tile func(out []float32, w, x []byte, blocks int)
	qTileRows, qTileTokens   int

	// widenF16, when not nil, converts fp16 values to float32 exactly as
	// f16Table does (but for NaN payloads: signalling NaNs come back quiet,
	// as in the set's dotF16); the prefill path widens weight rows with it.
	widenF16 func(dst []float32, src []uint16)
)

// The tile parts' constants: flags, the space for a tile's accumulators
// (24 vectors of 16 floats), the column alignment of all but the last part
// and the part length the product uses (a multiple of it: the rows and
// tokens of a 4×3 part take 28 KB, within a 48 KB L1).
const (
	tileCont       = 1
	tileLast       = 2
	tileAccFloats  = 384
	tilePartAlign  = 32
	tilePartLength = 1024
)

// tilePartsOK reports whether a tileParts call's operands are in bounds
// for tt tokens per tile, parts aligned to align columns.
func tilePartsOK(lw, lx, lacc, tt, ld, n, flags, tiles, align int) bool {
	return n >= 0 && ld >= n && lw >= 3*ld+n && lx >= (tt*tiles-1)*ld+n && lacc >= tiles*tileAccFloats &&
		(flags&tileLast != 0 || n%align == 0)
}

// kernelSet is one implementation of every dot kernel; an architecture
// offers the sets its CPU can run (archKernels), best first.
type kernelSet struct {
	name string
	f32  func(a, b []float32) float32
	f16  func(a []uint16, b []float32) float32
	bf16 func(a []uint16, b []float32) float32
	q8_0 func(w, x []byte) float32
	q4_0 func(w, x []byte) float32
	// The tiles may be nil; see tileParts and dotQ8_0Tile.
	tileRows, tileTokens int
	tileQ8_0, tileQ4_0   func(out []float32, w, x []byte, blocks int)
	qTileRows, qTileToks int
	widenF16             func(dst []float32, src []uint16) // may be nil
	// q4x8Gemv and q4x8Tile read Q4_0 matrices repacked by eight rows,
	// q8x8Gemv and q8x8Tile Q8_0 ones (x8.go); each pair both nil, or both
	// set and agreeing bit for bit.
	q4x8Gemv, q8x8Gemv func(out *[8]float32, w, p []byte, blocks int)
	q4x8Tile, q8x8Tile func(out *[32]float32, w, p []byte, blocks, pstride int)
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
	// tilePartsH, when not nil, is tileParts with F16 rows widened inside
	// the kernel (the same bits as widening them first).
	tilePartsH func(acc []float32, w []uint16, x []float32, ld, n, flags, tiles int)
	// axpy, when not nil, is Axpy (the same bits: multiply, then add).
	axpy func(y []float32, a float32, x []float32)
	// quantQ8_0, when not nil, is QuantizeQ8_0 for the activations of
	// quantized products: the same bytes for finite input.
	quantQ8_0 func(dst []byte, x []float32)
	// f16Rows4, when not nil, sets out[i] = f16(row i of w, x) for four
	// rows of len(x) values back to back, bit for bit: decode with F16
	// weights, the activations loaded once for four rows.
	f16Rows4 func(out *[4]float32, w []uint16, x []float32)
	// gelu is GELUNew's kernel; nil means geluNewGeneric.
	gelu func(x []float32)
}

var genericKernels = kernelSet{
	name: "generic",
	f32:  dotF32Generic,
	f16:  dotF16Generic,
	bf16: dotBF16Generic,
	q8_0: dotQ8_0Generic,
	q4_0: dotQ4_0Generic,
	gelu: geluNewGeneric,
}

// install makes k the package's kernels. Only init and tests call it.
func (k kernelSet) install() {
	installed = k.name
	dotF32, dotF16, dotBF16 = k.f32, k.f16, k.bf16
	dotQ8_0, dotQ4_0 = k.q8_0, k.q4_0
	tileRows, tileTokens = k.tileRows, k.tileTokens
	dotQ8_0Tile, dotQ4_0Tile = k.tileQ8_0, k.tileQ4_0
	q4x8Gemv, q4x8Tile = k.q4x8Gemv, k.q4x8Tile
	q8x8Gemv, q8x8Tile = k.q8x8Gemv, k.q8x8Tile
	dotF16Rows4 = k.f16Rows4
	dotF32TileParts = k.tileParts
	dotF16TileParts = k.tilePartsH
	quantizeActQ8_0 = k.quantQ8_0
	axpy = k.axpy
	if axpy == nil {
		axpy = axpyGeneric
	}
	if quantizeActQ8_0 == nil {
		quantizeActQ8_0 = QuantizeQ8_0
	}
	qTileRows, qTileTokens = k.qTileRows, k.qTileToks
	widenF16 = k.widenF16
	geluNew = k.gelu
	if geluNew == nil {
		geluNew = geluNewGeneric
	}
}

// installed is the name of the installed kernel set.
var installed = genericKernels.name

// KernelsEnv names the environment variable that picks a kernel set by name
// (generic, avx2, avx512, neon) instead of the best one the CPU runs; a name
// the CPU cannot run is ignored. For benchmarks and for ruling a kernel set
// out when hunting a problem.
const KernelsEnv = "PHALANX_KERNELS"

func init() {
	sets := append(archKernels(), genericKernels)
	pick := sets[0]
	if want := os.Getenv(KernelsEnv); want != "" {
		for _, k := range sets {
			if k.name == want {
				pick = k
			}
		}
	}
	pick.install()
}

// Name is the name of the kernel set in use: avx512, avx2, neon or generic.
func Name() string { return installed }

// DotF32 is the dot product of two float32 vectors of equal length.
func DotF32(a, b []float32) float32 { return dotF32(a, b) }
