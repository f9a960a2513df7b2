// The entry and exit of the four-row decode kernels of both amd64 sets
// (dot_amd64.s, dot_avx512_amd64.s): func(out *[4]float32, w []T,
// x []float32, n, stride int).

// ROWS4ENTRY loads the operands: SI row 0, DI x, DX n, R8 the row stride
// (stride values, each 1 << shift bytes) in bytes, R9 three strides.
// ROWS4EXIT stores the four dots (X0–X3) at out and returns.
#define ROWS4ENTRY(shift) \
	MOVQ w_base+8(FP), SI; \
	MOVQ x_base+32(FP), DI; \
	MOVQ n+56(FP), DX; \
	MOVQ stride+64(FP), R8; \
	SHLQ $shift, R8; \
	LEAQ (R8)(R8*2), R9

#define ROWS4EXIT \
	MOVQ   out+0(FP), DX; \
	VMOVSS X0, 0(DX); \
	VMOVSS X1, 4(DX); \
	VMOVSS X2, 8(DX); \
	VMOVSS X3, 12(DX); \
	VZEROUPPER; \
	RET
