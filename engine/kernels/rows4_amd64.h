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

// R4PF prefetches the line at byte offset off of each of the four rows.
#define R4PF(off) \
	PREFETCHT0 off(SI); \
	PREFETCHT0 off(SI)(R8*1); \
	PREFETCHT0 off(SI)(R8*2); \
	PREFETCHT0 off(SI)(R9*1)

// R4LD applies op to the chunk at byte offset off of the four rows
// (addressed as ROWS4ENTRY leaves them), into z0…z3; R4LDK the partial
// chunk in the lanes of K1 (op a masked load). R4SHL16 widens four
// registers of BF16 values (in the low half of each lane) to float32.
#define R4LD(op, off, z0, z1, z2, z3) \
	op off(SI), z0; \
	op off(SI)(R8*1), z1; \
	op off(SI)(R8*2), z2; \
	op off(SI)(R9*1), z3

#define R4LDK(op, z0, z1, z2, z3) \
	op (SI), K1, z0; \
	op (SI)(R8*1), K1, z1; \
	op (SI)(R8*2), K1, z2; \
	op (SI)(R9*1), K1, z3

#define R4SHL16(z0, z1, z2, z3) \
	VPSLLD $16, z0, z0; \
	VPSLLD $16, z1, z1; \
	VPSLLD $16, z2, z2; \
	VPSLLD $16, z3, z3
