//go:build arm64 && !purego

#include "textflag.h"

// The integer parts of the NEON K-quant dots (kdot_arm64.go): signed
// widening multiplies of quant and activation bytes (the quants, 0…63, are
// non-negative as signed bytes), pairwise widening adds and one ADDV per
// sum; every sum is exact.

// Widening integer instructions, encoded by hand (as in dot_arm64.s).
#define SMULL(m, n, d) WORD $(0x0E20C000 | (m)<<16 | (n)<<5 | (d))
#define SMULL2(m, n, d) WORD $(0x4E20C000 | (m)<<16 | (n)<<5 | (d))
#define SADDLP(n, d) WORD $(0x4E602800 | (n)<<5 | (d))
#define SADALP(n, d) WORD $(0x4E606800 | (n)<<5 | (d))
#define ADDV4S(n, d) WORD $(0x4EB1B800 | (n)<<5 | (d))

// SUM32 stores at R0 (advancing it) Σ q·x over 32 values: quants in Va,
// Vb, activations in Vxa, Vxb.
#define SUM32(a, b, xa, xb) \
	SMULL(xa, a, 7); \
	SMULL2(xa, a, 8); \
	SMULL(xb, b, 9); \
	SMULL2(xb, b, 10); \
	SADDLP(7, 11); \
	SADALP(8, 11); \
	SADALP(9, 11); \
	SADALP(10, 11); \
	ADDV4S(11, 11); \
	FMOVS   F11, R6; \
	MOVW.P  R6, 4(R0)

// SUM16 stores at R0 (advancing it) Σ q·x over 16 values in Vq, Vx.
#define SUM16(q, x) \
	SMULL(x, q, 7); \
	SMULL2(x, q, 8); \
	SADDLP(7, 11); \
	SADALP(8, 11); \
	ADDV4S(11, 11); \
	FMOVS   F11, R6; \
	MOVW.P  R6, 4(R0)

// func q4KSumsNEON(s *[8]int32, q, x *byte)
TEXT ·q4KSumsNEON(SB), NOSPLIT, $0-24
	MOVD  s+0(FP), R0
	MOVD  q+8(FP), R1
	MOVD  x+16(FP), R2
	VMOVI $15, V30.B16
	MOVD  $4, R3

loop:
	VLD1.P 32(R1), [V1.B16, V2.B16]
	VAND   V30.B16, V1.B16, V3.B16 // values 64c…64c+31
	VAND   V30.B16, V2.B16, V4.B16
	VUSHR  $4, V1.B16, V5.B16      // values 64c+32…64c+63
	VUSHR  $4, V2.B16, V6.B16
	VLD1.P 64(R2), [V16.B16, V17.B16, V18.B16, V19.B16]
	SUM32(3, 4, 16, 17)
	SUM32(5, 6, 18, 19)
	SUBS   $1, R3, R3
	BNE    loop
	RET

// func q5KSumsNEON(s *[8]int32, h, x *byte)
TEXT ·q5KSumsNEON(SB), NOSPLIT, $0-24
	MOVD   s+0(FP), R0
	MOVD   h+8(FP), R1
	MOVD   x+16(FP), R2
	VMOVI  $15, V30.B16
	VMOVI  $1, V29.B16
	VMOVI  $2, V28.B16
	VLD1.P 32(R1), [V20.B16, V21.B16] // fifth bits: bit j of byte l for value 32j+l
	MOVD   $4, R3

loop:
	VLD1.P 32(R1), [V1.B16, V2.B16]
	VAND   V30.B16, V1.B16, V3.B16
	VAND   V30.B16, V2.B16, V4.B16
	VUSHR  $4, V1.B16, V5.B16
	VUSHR  $4, V2.B16, V6.B16
	VAND   V29.B16, V20.B16, V22.B16
	VSHL   $4, V22.B16, V22.B16
	VORR   V22.B16, V3.B16, V3.B16
	VAND   V29.B16, V21.B16, V23.B16
	VSHL   $4, V23.B16, V23.B16
	VORR   V23.B16, V4.B16, V4.B16
	VAND   V28.B16, V20.B16, V22.B16
	VSHL   $3, V22.B16, V22.B16
	VORR   V22.B16, V5.B16, V5.B16
	VAND   V28.B16, V21.B16, V23.B16
	VSHL   $3, V23.B16, V23.B16
	VORR   V23.B16, V6.B16, V6.B16
	VUSHR  $2, V20.B16, V20.B16      // the next two sub-blocks' bits
	VUSHR  $2, V21.B16, V21.B16
	VLD1.P 64(R2), [V16.B16, V17.B16, V18.B16, V19.B16]
	SUM32(3, 4, 16, 17)
	SUM32(5, 6, 18, 19)
	SUBS   $1, R3, R3
	BNE    loop
	RET

// Q6LO0, Q6LO and Q6HI make the 16 quants of one block in V12 from the low
// (LO) or high (HI) nibbles of l and bits 2k, 2k+1 of h (k = 0 for LO0).
#define Q6LO0(l, h) \
	VAND  V30.B16, l, V12.B16; \
	VAND  V29.B16, h, V9.B16; \
	VSHL  $4, V9.B16, V9.B16; \
	VORR  V9.B16, V12.B16, V12.B16

#define Q6LO(l, h, k) \
	VAND  V30.B16, l, V12.B16; \
	VUSHR $(2*k), h, V9.B16; \
	VAND  V29.B16, V9.B16, V9.B16; \
	VSHL  $4, V9.B16, V9.B16; \
	VORR  V9.B16, V12.B16, V12.B16

#define Q6HI(l, h, k) \
	VUSHR $4, l, V12.B16; \
	VUSHR $(2*k), h, V9.B16; \
	VAND  V29.B16, V9.B16, V9.B16; \
	VSHL  $4, V9.B16, V9.B16; \
	VORR  V9.B16, V12.B16, V12.B16

// func q6KSumsNEON(s *[16]int32, w, x *byte)
TEXT ·q6KSumsNEON(SB), NOSPLIT, $0-24
	MOVD  s+0(FP), R0
	MOVD  w+8(FP), R1
	MOVD  x+16(FP), R2
	ADD   $128, R1, R4 // qh
	VMOVI $15, V30.B16
	VMOVI $3, V29.B16
	MOVD  $2, R3

loop:
	VLD1.P 64(R1), [V1.B16, V2.B16, V3.B16, V4.B16] // ql of this half
	VLD1.P 32(R4), [V5.B16, V6.B16]                 // qh of this half
	VLD1.P 64(R2), [V16.B16, V17.B16, V18.B16, V19.B16]
	VLD1.P 64(R2), [V24.B16, V25.B16, V26.B16, V27.B16]
	Q6LO0(V1.B16, V5.B16)
	SUM16(12, 16)
	Q6LO0(V2.B16, V6.B16)
	SUM16(12, 17)
	Q6LO(V3.B16, V5.B16, 1)
	SUM16(12, 18)
	Q6LO(V4.B16, V6.B16, 1)
	SUM16(12, 19)
	Q6HI(V1.B16, V5.B16, 2)
	SUM16(12, 24)
	Q6HI(V2.B16, V6.B16, 2)
	SUM16(12, 25)
	Q6HI(V3.B16, V5.B16, 3)
	SUM16(12, 26)
	Q6HI(V4.B16, V6.B16, 3)
	SUM16(12, 27)
	SUBS   $1, R3, R3
	BNE    loop
	RET
