// Package kernels holds the numeric primitives of the Phalanx engine: weight
// matrices in their stored dtype (F32, F16, BF16), matrix–vector and
// matrix–matrix products that widen 16-bit weights inside the kernel, the
// element-wise operations of a Phi decoder layer, and the worker pool that
// spreads a product over the machine's cores.
//
// # Usage
//
//	pool := kernels.NewPool(runtime.NumCPU())
//	defer pool.Close()
//	w := kernels.Matrix{DType: kernels.F16, Rows: 2560, Cols: 2560, Data: raw}
//	kernels.MatMul(pool, y, w, x, bias, tokens) // y[t] = w·x[t] + bias
//
// # Implementation notes
//
// Weights are never widened at load: a matrix is a view of the bytes of the
// weight file (usually a read-only memory map), and every product reads them
// in their stored dtype. The decode path (one row of activations) streams each
// weight row once; the prefill path converts a block of weight rows to
// float32 scratch once and reuses it for every activation row, so 16-bit
// conversion is amortized over the prompt.
//
// Every kernel is reached through one dispatch table: a kernelSet holds
// one implementation of each (the float dots, per quantized weight type the
// dot, tile and repacked kernels as in ggml's type traits, the float tiles,
// GELU, axpy, the activation quantizer), and active is the set in use,
// resolved once at start-up (a value, so a call through it costs what a
// call through a function variable does); there are no other copies of
// the kernels. genericKernels (dot_generic.go, x8_generic.go and the other
// pure-Go references) is the reference, and every other set starts as a
// copy of it and replaces what it has in assembly, in a per-architecture
// file. A product's helpers take the set from MatMuls rather than each
// reading the global; only tests assign active, between products. -tags
// purego forces the generic set, the generic code is always built and
// tested, and `go test -kernels.generic` runs the package on it alone. On
// amd64 the first set the CPU runs is used:
//
//  1. avx512 (AVX-512 F+BW+VL, with AVX2+FMA+F16C): 16-lane float dots, a
//     4-row × 3-token float tile run in L1-sized column parts, a four-row
//     F16 decode kernel, vectorized GELU, axpy and activation quantizer;
//     with AVX512-VNNI also VPDPBUSD Q8_0 and Q4_0 dots and tiles, and Q4_0
//     and Q8_0 matrices repacked by eight rows at load (x8.go) for a GEMV
//     and an 8×4 tile (without VNNI it keeps the AVX2 integer dots and
//     the plain layout);
//  2. avx2 (AVX2+FMA+F16C): 8-lane float dots with one accumulator, 4×3
//     float and F16 tiles in column parts (the F16 one widens in registers
//     with F16C, as does the row widening), a four-row F16 decode kernel,
//     VPMADDUBSW integer dots, the repacked Q4_0/Q8_0 kernels, Q4_K/Q5_K/Q6_K
//     matrices packed by eight rows at load (kx8.go) for a GEMV with one
//     lane per row and a two-token kernel, vectorized GELU, axpy and
//     activation quantizers (Q8_0 and Q8_K);
//  3. generic.
//
// K-quant weights (Q4_K, Q5_K, Q6_K) are dotted with the activations
// quantized once per product to Q8_K (kdot.go): exact integer sums per
// super-block, then a fixed sequence of float32 operations per super-block,
// so every set (AVX-512 with VNNI, AVX2, NEON, generic) gives the same bits
// and a row's value never depends on the batch it is in. The avx2 set reads
// them packed by eight rows (kx8.go): the same integer sums and float
// steps per row, eight rows at once, so the same bits again.
//
// PHALANX_KERNELS names a set to use instead (see KernelsEnv).
//
// On arm64 the NEON set is always used; it keeps Q4_0 and Q8_0 matrices in
// the plain layout. The tests run every set the machine supports (and the
// generic set reading the repacked layout) and compare each with the
// generic code; the tests assign each set to active in turn.
//
// # Adding a kernel
//
// Add a field to kernelSet, put the pure-Go version in genericKernels (or
// leave the field nil in it when the kernel is an optional acceleration
// with no generic twin, like the tiles, and make the callers do without
// it), assign the assembly in each architecture set that has it
// (avx512Set, avx2Set, neonSet), call it as active.field (or through the
// set a product was planned with), and add it to the table tests, which
// compare every set with the generic one.
//
// Within one set the 16-bit dots and the tile kernels accumulate exactly as
// that set's float32 dot does, so decode and prefill give the same bits.
// The avx2 float dots use one 8-lane accumulator (chunks in order, a
// zero-padded partial chunk last); the avx512 ones use two 16-lane accumulators (chunk c of
// 16 into accumulator c mod 2, a mask-loaded partial chunk into the next in
// turn) summed a0+a1, then the high 8 lanes added to the low 8; both end
// with the same fixed 8-lane tree. The avx512 integer dots put two blocks
// in one 64-byte vector, take each lane's exact integer sum (weights made
// unsigned by a bias that a second VPDPBUSD removes), and add it times
// d_w·d_x into one 16-lane accumulator; the quantized tiles do the same per
// (row, token) pair, so quantized prefill gives decode's bits too. The
// repacked (x8) kernels keep two lanes per row and likewise run one
// sequence per (row, token) in the GEMV and the tile; the generic x8
// kernels (x8_generic.go) do the same in Go, an emulated float32 FMA
// included, and give their bits. docs/kernels.md has the whole picture.

// This package never touches the network or the file system.
package kernels
