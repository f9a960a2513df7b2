//go:build amd64 && !purego

#include "textflag.h"

// See dot_avx512_amd64.go for the accumulation order every kernel here
// follows.

// HSUM8 adds the eight lanes of y (x is its low half) into the low lane
// of x as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)); t is clobbered. As in
// dot_amd64.s; registers below 16 only.
#define HSUM8(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPS    t, x, x; \
	VMOVHLPS  x, x, t; \
	VADDPS    t, x, x; \
	VMOVSHDUP x, t; \
	VADDSS    t, x, x

// HSUM16 reduces the sixteen lanes of z (y, x its low halves) into the low
// lane of x: high eight lanes onto the low eight, then HSUM8. ty, tx are
// one clobbered register; registers below 16 only.
#define HSUM16(z, y, x, ty, tx) \
	VEXTRACTF64X4 $1, z, ty; \
	VADDPS        ty, y, y; \
	HSUM8(y, x, tx)

// TAILK sets K1 to the mask of the low CX (1…15) lanes; AX is clobbered.
#define TAILK \
	MOVL  $1, AX; \
	SHLL  CX, AX; \
	DECL  AX; \
	KMOVW AX, K1

// DOTF32 is the dot product of the CX float32s at SI and DI into X0, in
// two chains (even and odd 16-float chunks); SI, DI, CX, DX, AX, K1, Z0,
// Z1, Z4 and Z5 are clobbered. dotF32AVX512Asm and dotsF32AVX512Asm share
// it, so their bits agree. Its labels are local to the function using it.
#define DOTF32 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	MOVQ   CX, DX; \
	SHRQ   $5, DX; \
	JZ     dotrest; \
dotloop: \
	VMOVUPS     (SI), Z4; \
	VMOVUPS     64(SI), Z5; \
	VFMADD231PS (DI), Z4, Z0; \
	VFMADD231PS 64(DI), Z5, Z1; \
	ADDQ        $128, SI; \
	ADDQ        $128, DI; \
	DECQ        DX; \
	JNZ         dotloop; \
dotrest: \
	ANDQ        $31, CX; \
	CMPQ        CX, $16; \
	JB          dottail0; \
	VMOVUPS     (SI), Z4; \
	VFMADD231PS (DI), Z4, Z0; \
	ADDQ        $64, SI; \
	ADDQ        $64, DI; \
	SUBQ        $16, CX; \
	JZ          dotdone; \
	TAILK; \
	VMOVUPS.Z   (SI), K1, Z4; \
	VMOVUPS.Z   (DI), K1, Z5; \
	VFMADD231PS Z5, Z4, Z1; \
	JMP         dotdone; \
dottail0: \
	TESTQ       CX, CX; \
	JZ          dotdone; \
	TAILK; \
	VMOVUPS.Z   (SI), K1, Z4; \
	VMOVUPS.Z   (DI), K1, Z5; \
	VFMADD231PS Z5, Z4, Z0; \
dotdone: \
	VADDPS Z1, Z0, Z0; \
	HSUM16(Z0, Y0, X0, Y1, X1)

// func dotF32AVX512Asm(a, b []float32) float32
TEXT ·dotF32AVX512Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	DOTF32
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotF16AVX512Asm(a []uint16, b []float32) float32
// One chain: each 16-value chunk in turn (the last one partial, masked)
// into Z0, then dotF32's reduction (the F16 tiles' order, below).
TEXT ·dotF16AVX512Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	VPXORD Z0, Z0, Z0
	MOVQ   CX, DX
	SHRQ   $4, DX
	JZ     tail

loop:
	VCVTPH2PS   (SI), Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ        $32, SI
	ADDQ        $64, DI
	DECQ        DX
	JNZ         loop

tail:
	ANDQ        $15, CX
	JZ          done
	TAILK
	VMOVDQU16.Z (SI), K1, Y4
	VCVTPH2PS   Y4, Z4
	VMOVUPS.Z   (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z0

done:
	HSUM16(Z0, Y0, X0, Y1, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotBF16AVX512Asm(a []uint16, b []float32) float32
TEXT ·dotBF16AVX512Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ   CX, DX
	SHRQ   $5, DX
	JZ     rest

loop:
	VPMOVZXWD   (SI), Z4
	VPMOVZXWD   32(SI), Z5
	VPSLLD      $16, Z4, Z4
	VPSLLD      $16, Z5, Z5
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	ADDQ        $64, SI
	ADDQ        $128, DI
	DECQ        DX
	JNZ         loop

rest:
	ANDQ        $31, CX
	CMPQ        CX, $16
	JB          tail0
	VPMOVZXWD   (SI), Z4
	VPSLLD      $16, Z4, Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ        $32, SI
	ADDQ        $64, DI
	SUBQ        $16, CX
	JZ          done
	TAILK
	VMOVDQU16.Z (SI), K1, Y4
	VPMOVZXWD   Y4, Z4
	VPSLLD      $16, Z4, Z4
	VMOVUPS.Z   (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z1
	JMP         done

tail0:
	TESTQ       CX, CX
	JZ          done
	TAILK
	VMOVDQU16.Z (SI), K1, Y4
	VPMOVZXWD   Y4, Z4
	VPSLLD      $16, Z4, Z4
	VMOVUPS.Z   (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z0

done:
	VADDPS Z1, Z0, Z0
	HSUM16(Z0, Y0, X0, Y1, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// The 4×3 float tile: pair (row i, token t) has accumulators Z(4t+i)
// (even chunks) and Z(12+4t+i) (odd chunks). Rows load into Z24–Z27,
// tokens into Z28–Z30; SI, DI point at the chunk in row 0 and token 0, R8
// is the row stride in bytes, R9 three strides.

// TLOAD loads the chunk at byte offset off of the four rows and three
// tokens.
#define TLOAD(off) \
	VMOVUPS off(SI), Z24; \
	VMOVUPS off(SI)(R8*1), Z25; \
	VMOVUPS off(SI)(R8*2), Z26; \
	VMOVUPS off(SI)(R9*1), Z27; \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(DI)(R8*1), Z29; \
	VMOVUPS off(DI)(R8*2), Z30

// TLOADK loads the partial chunk in the lanes of K1, zeros elsewhere.
#define TLOADK \
	VMOVUPS.Z (SI), K1, Z24; \
	VMOVUPS.Z (SI)(R8*1), K1, Z25; \
	VMOVUPS.Z (SI)(R8*2), K1, Z26; \
	VMOVUPS.Z (SI)(R9*1), K1, Z27; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (DI)(R8*1), K1, Z29; \
	VMOVUPS.Z (DI)(R8*2), K1, Z30

// S4FMA multiplies token chunk zx by the four rows in Z24–Z27 (widened
// where they are F16) into a0…a3; every float tile is built of it.
#define S4FMA(zx, a0, a1, a2, a3) \
	VFMADD231PS zx, Z24, a0; \
	VFMADD231PS zx, Z25, a1; \
	VFMADD231PS zx, Z26, a2; \
	VFMADD231PS zx, Z27, a3

#define TFMA(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11) \
	S4FMA(Z28, a0, a1, a2, a3); \
	S4FMA(Z29, a4, a5, a6, a7); \
	S4FMA(Z30, a8, a9, a10, a11)

#define TFMA0 TFMA(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
#define TFMA1 TFMA(Z12, Z13, Z14, Z15, Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23)

// The integer dots and tiles. Registers: token x in Z12–Z14, its
// −bias·Σx in Z15–Z17 and its scales (lanes 0–7 block b, 8–15 block b+1)
// in Z18–Z20; the current weight row's unsigned bytes in Z21 and scales in
// Z22; Z23, Z24 scratch; Z25 the weight constant (Q8_0: 0x80 to flip the
// sign bit, Q4_0: the low-nibble mask), Z26 the bias bytes (0x80 or 0x08),
// Z28 zero; K1 = lanes 8–15 (scale of block b+1), K2 = lanes 0–7 (an odd
// last block). Accumulators Z0–Z11, pair (row i, token t) in Z(4t+i).

// QCONST sets up Z25, Z26, Z28, K1 and K2; AX is clobbered.
#define QCONST(wconst, bias) \
	MOVL         $wconst, AX; \
	VPBROADCASTD AX, Z25; \
	MOVL         $bias, AX; \
	VPBROADCASTD AX, Z26; \
	VPXORD       Z28, Z28, Z28; \
	MOVL         $0xff00, AX; \
	KMOVW        AX, K1; \
	MOVL         $0x00ff, AX; \
	KMOVW        AX, K2

// QTOK2 loads the two Q8_0 activation blocks at b: bytes into zx,
// −bias·Σx (per group of four bytes) into zc, scales into zs.
#define QTOK2(b, zx, yx, zc, zs, ys) \
	VMOVDQU64    2(b), yx; \
	VINSERTI64X4 $1, 36(b), zx, zx; \
	VPXORD       zc, zc, zc; \
	VPDPBUSD     zx, Z26, zc; \
	VPSUBD       zc, Z28, zc; \
	VPBROADCASTW (b), ys; \
	VPBROADCASTW 34(b), K1, ys; \
	VCVTPH2PS    ys, zs

// QTOK1 is QTOK2 for one block (lanes 8–15 zero).
#define QTOK1(b, zx, yx, zc, zs, ys) \
	VMOVDQU64    2(b), yx; \
	VPXORD       zc, zc, zc; \
	VPDPBUSD     zx, Z26, zc; \
	VPSUBD       zc, Z28, zc; \
	VPBROADCASTW (b), ys; \
	VCVTPH2PS    ys, zs

// QROW8_2 loads two Q8_0 weight blocks at b: q+128 into Z21, scales Z22.
#define QROW8_2(b) \
	VMOVDQU64    2(b), Y21; \
	VINSERTI64X4 $1, 36(b), Z21, Z21; \
	VPXORD       Z25, Z21, Z21; \
	VPBROADCASTW (b), Y22; \
	VPBROADCASTW 34(b), K1, Y22; \
	VCVTPH2PS    Y22, Z22

#define QROW8_1(b) \
	VMOVDQU64    2(b), Y21; \
	VPXORD       Z25, Z21, Z21; \
	VPBROADCASTW (b), Y22; \
	VCVTPH2PS    Y22, Z22

// QROW4_2 loads two Q4_0 weight blocks at b: the nibbles in element order
// (block b low nibbles, high nibbles, block b+1 low, high) into Z21,
// scales into Z22.
#define QROW4_2(b) \
	VMOVDQU64    2(b), X21; \
	VINSERTI32X4 $1, 20(b), Y21, Y21; \
	VPSRLW       $4, Y21, Y23; \
	VINSERTI64X4 $1, Y23, Z21, Z21; \
	VSHUFI64X2   $0xd8, Z21, Z21, Z21; \
	VPANDD       Z25, Z21, Z21; \
	VPBROADCASTW (b), Y22; \
	VPBROADCASTW 18(b), K1, Y22; \
	VCVTPH2PS    Y22, Z22

#define QROW4_1(b) \
	VMOVDQU64    2(b), X21; \
	VPSRLW       $4, X21, X23; \
	VINSERTI32X4 $1, X23, Y21, Y21; \
	VPANDD       Z25, Z21, Z21; \
	VPBROADCASTW (b), Y22; \
	VCVTPH2PS    Y22, Z22

// QPAIR adds the current row times one token into acc: exact integer sums
// per lane, converted, times d_w·d_x.
#define QPAIR(zc, zx, zs, acc) \
	VMOVDQA32   zc, Z23; \
	VPDPBUSD    zx, Z21, Z23; \
	VCVTDQ2PS   Z23, Z23; \
	VMULPS      zs, Z22, Z24; \
	VFMADD231PS Z24, Z23, acc

// QPAIR1 is QPAIR for one block: lanes 0–7 only.
#define QPAIR1(zc, zx, zs, acc) \
	VMOVDQA32   zc, Z23; \
	VPDPBUSD    zx, Z21, Z23; \
	VCVTDQ2PS   Z23, Z23; \
	VMULPS      zs, Z22, Z24; \
	VFMADD231PS Z24, Z23, K2, acc

// func dotQ8_0AVX512Asm(w, x []byte) float32
TEXT ·dotQ8_0AVX512Asm(SB), NOSPLIT, $0-52
	MOVQ   w_base+0(FP), SI
	MOVQ   w_len+8(FP), CX
	MOVQ   x_base+24(FP), DI
	QCONST(0x80808080, 0x80808080)
	VPXORD Z0, Z0, Z0

loop:
	CMPQ CX, $68
	JB   one
	QTOK2(DI, Z12, Y12, Z15, Z18, Y18)
	QROW8_2(SI)
	QPAIR(Z15, Z12, Z18, Z0)
	ADDQ $68, SI
	ADDQ $68, DI
	SUBQ $68, CX
	JMP  loop

one:
	CMPQ CX, $34
	JB   done
	QTOK1(DI, Z12, Y12, Z15, Z18, Y18)
	QROW8_1(SI)
	QPAIR1(Z15, Z12, Z18, Z0)

done:
	HSUM16(Z0, Y0, X0, Y1, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotQ4_0AVX512Asm(w, x []byte) float32
TEXT ·dotQ4_0AVX512Asm(SB), NOSPLIT, $0-52
	MOVQ   w_base+0(FP), SI
	MOVQ   w_len+8(FP), CX
	MOVQ   x_base+24(FP), DI
	QCONST(0x0f0f0f0f, 0x08080808)
	VPXORD Z0, Z0, Z0

loop:
	CMPQ CX, $36
	JB   one
	QTOK2(DI, Z12, Y12, Z15, Z18, Y18)
	QROW4_2(SI)
	QPAIR(Z15, Z12, Z18, Z0)
	ADDQ $36, SI
	ADDQ $68, DI
	SUBQ $36, CX
	JMP  loop

one:
	CMPQ CX, $18
	JB   done
	QTOK1(DI, Z12, Y12, Z15, Z18, Y18)
	QROW4_1(SI)
	QPAIR1(Z15, Z12, Z18, Z0)

done:
	HSUM16(Z0, Y0, X0, Y1, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

#define QZERO12 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11

#define QTOKS2 \
	LEAQ (DI)(R9*1), R10; \
	LEAQ (DI)(R9*2), R11; \
	QTOK2(DI, Z12, Y12, Z15, Z18, Y18); \
	QTOK2(R10, Z13, Y13, Z16, Z19, Y19); \
	QTOK2(R11, Z14, Y14, Z17, Z20, Y20)

#define QTOKS1 \
	LEAQ (DI)(R9*1), R10; \
	LEAQ (DI)(R9*2), R11; \
	QTOK1(DI, Z12, Y12, Z15, Z18, Y18); \
	QTOK1(R10, Z13, Y13, Z16, Z19, Y19); \
	QTOK1(R11, Z14, Y14, Z17, Z20, Y20)

// QPAIRS3 adds the current row times the three tokens into a0–a2.
#define QPAIRS3(pair, a0, a1, a2) \
	pair(Z15, Z12, Z18, a0); \
	pair(Z16, Z13, Z19, a1); \
	pair(Z17, Z14, Z20, a2)

// RED8(r) reduces Z0–Z7 as the dots do and stores the eight results at
// (r) on; Z8 is clobbered.
#define RED8(r) \
	HSUM16(Z0, Y0, X0, Y8, X8); \
	HSUM16(Z1, Y1, X1, Y8, X8); \
	HSUM16(Z2, Y2, X2, Y8, X8); \
	HSUM16(Z3, Y3, X3, Y8, X8); \
	HSUM16(Z4, Y4, X4, Y8, X8); \
	HSUM16(Z5, Y5, X5, Y8, X8); \
	HSUM16(Z6, Y6, X6, Y8, X8); \
	HSUM16(Z7, Y7, X7, Y8, X8); \
	VMOVSS X0, 0(r); \
	VMOVSS X1, 4(r); \
	VMOVSS X2, 8(r); \
	VMOVSS X3, 12(r); \
	VMOVSS X4, 16(r); \
	VMOVSS X5, 20(r); \
	VMOVSS X6, 24(r); \
	VMOVSS X7, 28(r)

// RED12(r) reduces Z0–Z11 as the dots do and stores the twelve results at
// (r) on; Z8 and Z12 are clobbered.
#define RED12(r) \
	HSUM16(Z8, Y8, X8, Y12, X12); \
	HSUM16(Z9, Y9, X9, Y12, X12); \
	HSUM16(Z10, Y10, X10, Y12, X12); \
	HSUM16(Z11, Y11, X11, Y12, X12); \
	VMOVSS X8, 32(r); \
	VMOVSS X9, 36(r); \
	VMOVSS X10, 40(r); \
	VMOVSS X11, 44(r); \
	RED8(r)

// func dotQ8_0Tile4x3AVX512Asm(out *[12]float32, w, x []byte, blocks int)
//
// SI, DI point at the block pair in row 0 and token 0; R8 is the weight
// row stride, R9 the activation row stride; AX walks the rows.
TEXT ·dotQ8_0Tile4x3AVX512Asm(SB), NOSPLIT, $0-64
	MOVQ  w_base+8(FP), SI
	MOVQ  x_base+32(FP), DI
	MOVQ  blocks+56(FP), DX
	IMUL3Q $34, DX, R8
	IMUL3Q $34, DX, R9
	QCONST(0x80808080, 0x80808080)
	QZERO12
	MOVQ  DX, BX
	SHRQ  $1, BX
	JZ    one

loop:
	QTOKS2
	MOVQ SI, AX
	QROW8_2(AX)
	QPAIRS3(QPAIR, Z0, Z4, Z8)
	ADDQ R8, AX
	QROW8_2(AX)
	QPAIRS3(QPAIR, Z1, Z5, Z9)
	ADDQ R8, AX
	QROW8_2(AX)
	QPAIRS3(QPAIR, Z2, Z6, Z10)
	ADDQ R8, AX
	QROW8_2(AX)
	QPAIRS3(QPAIR, Z3, Z7, Z11)
	ADDQ $68, SI
	ADDQ $68, DI
	DECQ BX
	JNZ  loop

one:
	TESTQ $1, DX
	JZ    done
	QTOKS1
	MOVQ  SI, AX
	QROW8_1(AX)
	QPAIRS3(QPAIR1, Z0, Z4, Z8)
	ADDQ  R8, AX
	QROW8_1(AX)
	QPAIRS3(QPAIR1, Z1, Z5, Z9)
	ADDQ  R8, AX
	QROW8_1(AX)
	QPAIRS3(QPAIR1, Z2, Z6, Z10)
	ADDQ  R8, AX
	QROW8_1(AX)
	QPAIRS3(QPAIR1, Z3, Z7, Z11)

done:
	MOVQ out+0(FP), DX
	RED12(DX)
	VZEROUPPER
	RET

// func dotQ4_0Tile4x3AVX512Asm(out *[12]float32, w, x []byte, blocks int)
TEXT ·dotQ4_0Tile4x3AVX512Asm(SB), NOSPLIT, $0-64
	MOVQ  w_base+8(FP), SI
	MOVQ  x_base+32(FP), DI
	MOVQ  blocks+56(FP), DX
	IMUL3Q $18, DX, R8
	IMUL3Q $34, DX, R9
	QCONST(0x0f0f0f0f, 0x08080808)
	QZERO12
	MOVQ  DX, BX
	SHRQ  $1, BX
	JZ    one

loop:
	QTOKS2
	MOVQ SI, AX
	QROW4_2(AX)
	QPAIRS3(QPAIR, Z0, Z4, Z8)
	ADDQ R8, AX
	QROW4_2(AX)
	QPAIRS3(QPAIR, Z1, Z5, Z9)
	ADDQ R8, AX
	QROW4_2(AX)
	QPAIRS3(QPAIR, Z2, Z6, Z10)
	ADDQ R8, AX
	QROW4_2(AX)
	QPAIRS3(QPAIR, Z3, Z7, Z11)
	ADDQ $36, SI
	ADDQ $68, DI
	DECQ BX
	JNZ  loop

one:
	TESTQ $1, DX
	JZ    done
	QTOKS1
	MOVQ  SI, AX
	QROW4_1(AX)
	QPAIRS3(QPAIR1, Z0, Z4, Z8)
	ADDQ  R8, AX
	QROW4_1(AX)
	QPAIRS3(QPAIR1, Z1, Z5, Z9)
	ADDQ  R8, AX
	QROW4_1(AX)
	QPAIRS3(QPAIR1, Z2, Z6, Z10)
	ADDQ  R8, AX
	QROW4_1(AX)
	QPAIRS3(QPAIR1, Z3, Z7, Z11)

done:
	MOVQ out+0(FP), DX
	RED12(DX)
	VZEROUPPER
	RET

// func widenF16AVX512Asm(dst []float32, src []uint16)
TEXT ·widenF16AVX512Asm(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX

loop:
	CMPQ      CX, $16
	JB        tail
	VCVTPH2PS (SI), Z0
	VMOVUPS   Z0, (DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	SUBQ      $16, CX
	JMP       loop

tail:
	TESTQ       CX, CX
	JZ          done
	TAILK
	VMOVDQU16.Z (SI), K1, Y0
	VCVTPH2PS   Y0, Z0
	VMOVUPS     Z0, K1, (DI)

done:
	VZEROUPPER
	RET

// The packed (x8) kernels (see x8.go). Z31 holds the weight constant (Q4_0:
// the nibble mask; Q8_0: 0x80 to make the quants unsigned), Z30 the lane
// index of each row's scale (0,0,1,1,…,7,7); per block Z1–Z4 the eight
// rows' unsigned quants for elements 0–7, 8–15, 16–23 and 24–31, Z10 their
// scales per lane; Z5–Z9, Z11 scratch.

DATA x8ScaleIdx<>+0(SB)/8, $0x0000000000000000
DATA x8ScaleIdx<>+8(SB)/8, $0x0000000100000001
DATA x8ScaleIdx<>+16(SB)/8, $0x0000000200000002
DATA x8ScaleIdx<>+24(SB)/8, $0x0000000300000003
DATA x8ScaleIdx<>+32(SB)/8, $0x0000000400000004
DATA x8ScaleIdx<>+40(SB)/8, $0x0000000500000005
DATA x8ScaleIdx<>+48(SB)/8, $0x0000000600000006
DATA x8ScaleIdx<>+56(SB)/8, $0x0000000700000007
GLOBL x8ScaleIdx<>(SB), RODATA|NOPTR, $64

#define X8CONST(wconst) \
	MOVL         $wconst, AX; \
	VPBROADCASTD AX, Z31; \
	VMOVDQU32    x8ScaleIdx<>(SB), Z30

// X8SCALES widens the eight rows' scales at w into Z10, two lanes each.
#define X8SCALES(w) \
	VCVTPH2PS (w), Y10; \
	VPERMPS   Z10, Z30, Z10

// Q4X8W loads the packed Q4_0 block at w.
#define Q4X8W(w) \
	VMOVDQU64 16(w), Z1; \
	VMOVDQU64 80(w), Z2; \
	VPSRLW    $4, Z1, Z3; \
	VPSRLW    $4, Z2, Z4; \
	VPANDD    Z31, Z1, Z1; \
	VPANDD    Z31, Z3, Z3; \
	VPANDD    Z31, Z2, Z2; \
	VPANDD    Z31, Z4, Z4; \
	X8SCALES(w)

// Q8X8W loads the packed Q8_0 block at w, quants made unsigned (q+128).
#define Q8X8W(w) \
	VMOVDQU64 16(w), Z1; \
	VMOVDQU64 80(w), Z2; \
	VMOVDQU64 144(w), Z3; \
	VMOVDQU64 208(w), Z4; \
	VPXORD    Z31, Z1, Z1; \
	VPXORD    Z31, Z2, Z2; \
	VPXORD    Z31, Z3, Z3; \
	VPXORD    Z31, Z4, Z4; \
	X8SCALES(w)

// X8TOK adds the block times the prepared activation block at p into acc;
// zc is the offset of the weights' offset correction (32: Q4_0, 40: Q8_0).
#define X8TOK(p, acc, zc) \
	VPBROADCASTQ zc(p), Z5; \
	VPBROADCASTQ 0(p), Z6; \
	VPDPBUSD     Z6, Z1, Z5; \
	VPBROADCASTQ 8(p), Z7; \
	VPDPBUSD     Z7, Z2, Z5; \
	VPBROADCASTQ 16(p), Z8; \
	VPDPBUSD     Z8, Z3, Z5; \
	VPBROADCASTQ 24(p), Z9; \
	VPDPBUSD     Z9, Z4, Z5; \
	VCVTDQ2PS    Z5, Z5; \
	VBROADCASTSS 48(p), Z11; \
	VMULPS       Z11, Z10, Z11; \
	VFMADD231PS  Z11, Z5, acc

// X8OUT adds each row's two lanes of acc and stores the eight sums at off(DX).
#define X8OUT(acc, yacc, off) \
	VMOVSHDUP acc, Z5; \
	VADDPS    Z5, acc, acc; \
	VPMOVQD   acc, yacc; \
	VMOVUPS   yacc, off(DX)

// X8GEMV is the one-token kernel's body: wconst, the block loader, its
// size and the correction's offset.
#define X8GEMV(wconst, load, bb, zc) \
	X8CONST(wconst); \
	VPXORD Z0, Z0, Z0; \
	TESTQ  CX, CX; \
	JZ     done; \
loop: \
	load(SI); \
	X8TOK(DI, Z0, zc); \
	ADDQ $bb, SI; \
	ADDQ $64, DI; \
	DECQ CX; \
	JNZ  loop; \
done: \
	MOVQ out+0(FP), DX; \
	X8OUT(Z0, Y0, 0); \
	VZEROUPPER; \
	RET

// X8TILE is the four-token kernel's body (R9 the prepared rows' stride).
// It prefetches the next group's block (R12 = the group's bytes ahead: the
// product takes that group next), so that memory keeps streaming while a
// batch's later token tiles compute on this group from cache.
#define X8TILE(wconst, load, bb, zc) \
	LEAQ   (R9)(R9*2), R10; \
	IMUL3Q $bb, CX, R12; \
	X8CONST(wconst); \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	TESTQ  CX, CX; \
	JZ     tdone; \
tloop: \
	PREFETCHT1 (SI)(R12*1); \
	PREFETCHT1 64(SI)(R12*1); \
	PREFETCHT1 128(SI)(R12*1); \
	load(SI); \
	X8TOK(DI, Z16, zc); \
	LEAQ (DI)(R9*1), R11; \
	X8TOK(R11, Z17, zc); \
	LEAQ (DI)(R9*2), R11; \
	X8TOK(R11, Z18, zc); \
	LEAQ (DI)(R10*1), R11; \
	X8TOK(R11, Z19, zc); \
	ADDQ $bb, SI; \
	ADDQ $64, DI; \
	DECQ CX; \
	JNZ  tloop; \
tdone: \
	MOVQ out+0(FP), DX; \
	X8OUT(Z16, Y16, 0); \
	X8OUT(Z17, Y17, 32); \
	X8OUT(Z18, Y18, 64); \
	X8OUT(Z19, Y19, 96); \
	VZEROUPPER; \
	RET

// func q4x8GemvAVX512Asm(out *[8]float32, w, p []byte, blocks int)
TEXT ·q4x8GemvAVX512Asm(SB), NOSPLIT, $0-64
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	X8GEMV(0x0f0f0f0f, Q4X8W, 144, 32)

// func q8x8GemvAVX512Asm(out *[8]float32, w, p []byte, blocks int)
TEXT ·q8x8GemvAVX512Asm(SB), NOSPLIT, $0-64
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	X8GEMV(0x80808080, Q8X8W, 272, 40)

// func q4x8TileAVX512Asm(out *[32]float32, w, p []byte, blocks, pstride int)
TEXT ·q4x8TileAVX512Asm(SB), NOSPLIT, $0-72
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	MOVQ pstride+64(FP), R9
	X8TILE(0x0f0f0f0f, Q4X8W, 144, 32)

// func q8x8TileAVX512Asm(out *[32]float32, w, p []byte, blocks, pstride int)
TEXT ·q8x8TileAVX512Asm(SB), NOSPLIT, $0-72
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	MOVQ pstride+64(FP), R9
	X8TILE(0x80808080, Q8X8W, 272, 40)

// The F16 decode kernel for four rows at once: row i sums into Z(i) in
// dotF16AVX512Asm's order, so each result has that dot's bits; the
// activations are loaded once for the four rows (Z16, Z17) and the four
// independent chains keep the FMA units busy enough for a stream from
// memory. SI points at row 0, R8 is the row stride in bytes, R9 three
// strides.

#define R4CVT(off, k, z0, z2, z4, z6) \
	VCVTPH2PS off(SI), z0; \
	VCVTPH2PS off(SI)(R8*1), z2; \
	VCVTPH2PS off(SI)(R8*2), z4; \
	VCVTPH2PS off(SI)(R9*1), z6

#define R4CVTK \
	VMOVDQU16.Z (SI), K1, Y8; \
	VMOVDQU16.Z (SI)(R8*1), K1, Y10; \
	VMOVDQU16.Z (SI)(R8*2), K1, Y12; \
	VMOVDQU16.Z (SI)(R9*1), K1, Y14; \
	VCVTPH2PS   Y8, Z8; \
	VCVTPH2PS   Y10, Z10; \
	VCVTPH2PS   Y12, Z12; \
	VCVTPH2PS   Y14, Z14

#define R4FMA(zx, a0, a1, a2, a3) \
	VFMADD231PS zx, Z8, a0; \
	VFMADD231PS zx, Z10, a1; \
	VFMADD231PS zx, Z12, a2; \
	VFMADD231PS zx, Z14, a3

#define R4FMA1(zx, a0, a1, a2, a3) \
	VFMADD231PS zx, Z9, a0; \
	VFMADD231PS zx, Z11, a1; \
	VFMADD231PS zx, Z13, a2; \
	VFMADD231PS zx, Z15, a3

// func dotF16Rows4AVX512Asm(out *[4]float32, w []uint16, x []float32, n int)
TEXT ·dotF16Rows4AVX512Asm(SB), NOSPLIT, $0-64
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   n+56(FP), DX
	MOVQ   DX, R8
	SHLQ   $1, R8
	LEAQ   (R8)(R8*2), R9
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ   DX, BX
	SHRQ   $5, BX
	JZ     rest

loop:
	PREFETCHT0 1024(SI)
	PREFETCHT0 1024(SI)(R8*1)
	PREFETCHT0 1024(SI)(R8*2)
	PREFETCHT0 1024(SI)(R9*1)
	VMOVUPS (DI), Z16
	VMOVUPS 64(DI), Z17
	R4CVT(0, 0, Z8, Z10, Z12, Z14)
	R4CVT(32, 0, Z9, Z11, Z13, Z15)
	R4FMA(Z16, Z0, Z1, Z2, Z3)
	R4FMA1(Z17, Z0, Z1, Z2, Z3)
	ADDQ    $64, SI
	ADDQ    $128, DI
	DECQ    BX
	JNZ     loop

rest:
	MOVQ DX, CX
	ANDQ $31, CX
	CMPQ CX, $16
	JB   tail
	VMOVUPS (DI), Z16
	R4CVT(0, 0, Z8, Z10, Z12, Z14)
	R4FMA(Z16, Z0, Z1, Z2, Z3)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX

tail:
	TESTQ CX, CX
	JZ    done
	TAILK
	VMOVUPS.Z (DI), K1, Z16
	R4CVTK
	R4FMA(Z16, Z0, Z1, Z2, Z3)

done:
	HSUM16(Z0, Y0, X0, Y8, X8)
	HSUM16(Z1, Y1, X1, Y8, X8)
	HSUM16(Z2, Y2, X2, Y8, X8)
	HSUM16(Z3, Y3, X3, Y8, X8)
	MOVQ   out+0(FP), DX
	VMOVSS X0, 0(DX)
	VMOVSS X1, 4(DX)
	VMOVSS X2, 8(DX)
	VMOVSS X3, 12(DX)
	VZEROUPPER
	RET

// The 4×3 float tile runs in parts along the columns: a part runs the
// pairs' FMAs over n columns (a multiple of 32 unless it is the last part)
// with the 24 accumulators loaded from acc (flags&1; zero otherwise) and
// stored back to acc, or, in the last part (flags&2), ends with the masked
// tail, the combination acc0+acc1 and dotF32's reduction, the twelve
// results stored at acc[0…11]. A pair thus sees exactly dotF32AVX512Asm's
// sequence, whatever the parts, while a part's rows and tokens stay in L1;
// one part over all n columns is the whole tile.

// TACC(op) applies op(offset, reg) to the 24 accumulators' slots in acc (BX).
#define TACC(op) \
	op(0, Z0); op(64, Z1); op(128, Z2); op(192, Z3); \
	op(256, Z4); op(320, Z5); op(384, Z6); op(448, Z7); \
	op(512, Z8); op(576, Z9); op(640, Z10); op(704, Z11); \
	op(768, Z12); op(832, Z13); op(896, Z14); op(960, Z15); \
	op(1024, Z16); op(1088, Z17); op(1152, Z18); op(1216, Z19); \
	op(1280, Z20); op(1344, Z21); op(1408, Z22); op(1472, Z23)

#define TACCLOAD(off, z) VMOVUPS off(BX), z
#define TACCSTORE(off, z) VMOVUPS z, off(BX)
#define TACCZERO(off, z) VPXORD z, z, z

// TPFNEXT32 prefetches the two lines of each of the four float32 rows at
// CX (rows R8 bytes apart, R9 = 3·R8): the next row tile, 128 bytes a step.
#define TPFNEXT32 \
	PREFETCHT1 (CX); \
	PREFETCHT1 64(CX); \
	PREFETCHT1 (CX)(R8*1); \
	PREFETCHT1 64(CX)(R8*1); \
	PREFETCHT1 (CX)(R8*2); \
	PREFETCHT1 64(CX)(R8*2); \
	PREFETCHT1 (CX)(R9*1); \
	PREFETCHT1 64(CX)(R9*1)

// func dotTile4x3PartsAVX512(acc *float32, w, x []float32, ld, n, flags, tiles int)
// One part for tiles token tiles in a row (tile j's tokens 3j, 3j+1, 3j+2,
// its accumulators at acc+384j), the same four rows: one call per row tile
// and part. Rows and tokens are ld floats apart.
TEXT ·dotTile4x3PartsAVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), R13
	MOVQ x_base+32(FP), R14
	MOVQ ld+56(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ n+64(FP), DX
	MOVQ flags+72(FP), R10
	MOVQ tiles+80(FP), R12

tile:
	MOVQ R13, SI
	MOVQ R14, DI
	TESTQ $1, R10
	JZ    zero
	TACC(TACCLOAD)
	JMP   start

zero:
	TACC(TACCZERO)

start:
	MOVQ DX, R11
	SHRQ $5, R11
	JZ   rest
	MOVQ tiles+80(FP), CX
	SUBQ R12, CX
	CMPQ CX, $1
	JNE  loop

	// The second tile reads these rows from cache: fetch the next four
	// rows (the row tile the product takes next) meanwhile, as the F16
	// kernel below does.
	LEAQ (SI)(R8*4), CX

nloop:
	TPFNEXT32
	TLOAD(0)
	TFMA0
	TLOAD(64)
	TFMA1
	ADDQ $128, SI
	ADDQ $128, DI
	ADDQ $128, CX
	DECQ R11
	JNZ  nloop
	JMP  rest

loop:
	TLOAD(0)
	TFMA0
	TLOAD(64)
	TFMA1
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ R11
	JNZ  loop

rest:
	TESTQ $2, R10
	JNZ   last
	TACC(TACCSTORE)
	JMP nexttile

last:
	MOVQ DX, CX
	ANDQ $31, CX
	CMPQ CX, $16
	JB   tail0
	TLOAD(0)
	TFMA0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JZ   combine
	TAILK
	TLOADK
	TFMA1
	JMP  combine

tail0:
	TESTQ CX, CX
	JZ    combine
	TAILK
	TLOADK
	TFMA0

combine:
	VADDPS Z12, Z0, Z0
	VADDPS Z13, Z1, Z1
	VADDPS Z14, Z2, Z2
	VADDPS Z15, Z3, Z3
	VADDPS Z16, Z4, Z4
	VADDPS Z17, Z5, Z5
	VADDPS Z18, Z6, Z6
	VADDPS Z19, Z7, Z7
	VADDPS Z20, Z8, Z8
	VADDPS Z21, Z9, Z9
	VADDPS Z22, Z10, Z10
	VADDPS Z23, Z11, Z11
	RED12(BX)

nexttile:
	ADDQ $1536, BX
	ADDQ R9, R14
	DECQ R12
	JNZ  tile
	VZEROUPPER
	RET

// The F16 tiles sum each (row, token) pair in one chain, chunk after
// chunk, as dotF16AVX512Asm does, so each pair has that dot's bits. One
// chain per pair lets a tile hold 24 pairs in Z0–Z23: four rows by six
// tokens, pair (row i, token t) in Z(4t+i). A batch of up to six streams
// then reads a row tile in one pass (eight: one pass and a two-token
// rest), so the rows stream from memory while nearly all the arithmetic
// on them is done; with two chains per pair (the float32 tiles) a tile
// holds twelve pairs, eight tokens take three passes and memory sits idle
// in the later two (docs/kernels.md). Rows are ld halves apart (R15
// bytes; SI walks row 0, AX row 3), widened into Z24–Z27; tokens are ld
// floats apart (R8 bytes; DI walks token 0, R10 token 3), loaded into
// Z28–Z31 in turn.

// TAILK11 is TAILK with R11 for scratch (AX is the row-3 pointer in the F16 tiles).
#define TAILK11 \
	MOVL  $1, R11; \
	SHLL  CX, R11; \
	DECL  R11; \
	KMOVW R11, K1

// S4ROWS widens the chunk at F16 byte offset offh of the four rows.
#define S4ROWS(offh) \
	VCVTPH2PS offh(SI), Z24; \
	VCVTPH2PS offh(SI)(R15*1), Z25; \
	VCVTPH2PS offh(SI)(R15*2), Z26; \
	VCVTPH2PS offh(AX), Z27

// S4ROWSK widens the partial chunk of the four rows in the lanes of K1,
// zeros elsewhere.
#define S4ROWSK \
	VMOVDQU16.Z (SI), K1, Y24; \
	VMOVDQU16.Z (SI)(R15*1), K1, Y25; \
	VMOVDQU16.Z (SI)(R15*2), K1, Y26; \
	VMOVDQU16.Z (AX), K1, Y27; \
	VCVTPH2PS   Y24, Z24; \
	VCVTPH2PS   Y25, Z25; \
	VCVTPH2PS   Y26, Z26; \
	VCVTPH2PS   Y27, Z27

// S6CHUNK is one chunk of the 4×6 tile: the rows' chunk at F16 byte offset
// offh, the tokens' at float byte offset off.
#define S6CHUNK(offh, off) \
	S4ROWS(offh); \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(DI)(R8*1), Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	VMOVUPS off(DI)(R8*2), Z30; \
	S4FMA(Z29, Z4, Z5, Z6, Z7); \
	VMOVUPS off(R10), Z31; \
	S4FMA(Z30, Z8, Z9, Z10, Z11); \
	VMOVUPS off(R10)(R8*1), Z28; \
	S4FMA(Z31, Z12, Z13, Z14, Z15); \
	VMOVUPS off(R10)(R8*2), Z29; \
	S4FMA(Z28, Z16, Z17, Z18, Z19); \
	S4FMA(Z29, Z20, Z21, Z22, Z23)

// S6CHUNKK is S6CHUNK for the partial chunk in the lanes of K1.
#define S6CHUNKK \
	S4ROWSK; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (DI)(R8*1), K1, Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	VMOVUPS.Z (DI)(R8*2), K1, Z30; \
	S4FMA(Z29, Z4, Z5, Z6, Z7); \
	VMOVUPS.Z (R10), K1, Z31; \
	S4FMA(Z30, Z8, Z9, Z10, Z11); \
	VMOVUPS.Z (R10)(R8*1), K1, Z28; \
	S4FMA(Z31, Z12, Z13, Z14, Z15); \
	VMOVUPS.Z (R10)(R8*2), K1, Z29; \
	S4FMA(Z28, Z16, Z17, Z18, Z19); \
	S4FMA(Z29, Z20, Z21, Z22, Z23)

// S6STEP is 32 columns of the 4×6 tile.
#define S6STEP \
	S6CHUNK(0, 0); \
	S6CHUNK(32, 64); \
	ADDQ $64, SI; \
	ADDQ $64, AX; \
	ADDQ $128, DI; \
	ADDQ $128, R10

// SADV moves the pointers past one chunk (tail of a last part).
#define SADV \
	ADDQ $32, SI; \
	ADDQ $32, AX; \
	ADDQ $64, DI; \
	ADDQ $64, R10

// SRED20 reduces Z0–Z11, stores their results at acc[0…12), and moves
// Z12–Z19 down to Z0–Z7 (HSUM16 needs registers below 16), ready for the
// results from acc[12] on; SRED24 reduces all 24 accumulators (pair
// (i, t) at acc[4t+i]).
#define SRED20 \
	VMOVAPS Z12, Z28; \
	VMOVAPS Z13, Z29; \
	VMOVAPS Z14, Z30; \
	VMOVAPS Z15, Z31; \
	RED12(BX); \
	VMOVAPS Z28, Z0; \
	VMOVAPS Z29, Z1; \
	VMOVAPS Z30, Z2; \
	VMOVAPS Z31, Z3; \
	VMOVAPS Z16, Z4; \
	VMOVAPS Z17, Z5; \
	VMOVAPS Z18, Z6; \
	VMOVAPS Z19, Z7

#define SRED24 \
	SRED20; \
	VMOVAPS Z20, Z8; \
	VMOVAPS Z21, Z9; \
	VMOVAPS Z22, Z10; \
	VMOVAPS Z23, Z11; \
	ADDQ    $48, BX; \
	RED12(BX); \
	SUBQ    $48, BX

// S4PF(ins, p, q) prefetches with ins the line at p and the lines one and
// two rows (R15 bytes) after it, and the line at q (row 3's).
#define S4PF(ins, p, q) \
	ins p; \
	ins p(R15*1); \
	ins p(R15*2); \
	ins q

// func dotTile4x6PartsF16AVX512(acc *float32, w []uint16, x []float32, ld, n, flags, tiles int)
// One part (tileParts' contract) for tiles token tiles of six tokens in a
// row (tile j's accumulators at acc+1536j bytes), the same four rows: one
// call per row tile and part. As in the float32 tiles, the first token
// tile prefetches its rows 2 KB ahead and the second (which reads them
// from cache) the next four rows, the row tile the product takes next.
TEXT ·dotTile4x6PartsF16AVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), R13
	MOVQ x_base+32(FP), R14
	MOVQ ld+56(FP), R8
	LEAQ (R8)(R8*1), R15
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ n+64(FP), DX
	MOVQ tiles+80(FP), R12

tile:
	MOVQ  R13, SI
	MOVQ  R14, DI
	LEAQ  (DI)(R9*1), R10
	LEAQ  (SI)(R15*2), AX
	ADDQ  R15, AX
	TESTQ $1, flags+72(FP)
	JZ    zero
	TACC(TACCLOAD)
	JMP   start

zero:
	TACC(TACCZERO)

start:
	MOVQ DX, R11
	SHRQ $5, R11
	JZ   rest
	MOVQ tiles+80(FP), CX
	SUBQ R12, CX
	JZ   first
	CMPQ CX, $1
	JEQ  second

plain:
	S6STEP
	DECQ R11
	JNZ  plain
	JMP  rest

first:
	S4PF(PREFETCHT0, 2048(SI), 2048(AX))
	S6STEP
	DECQ R11
	JNZ  first
	JMP  rest

second:
	LEAQ (SI)(R15*4), CX

sloop:
	S4PF(PREFETCHT1, (CX), (AX)(R15*4))
	S6STEP
	ADDQ $64, CX
	DECQ R11
	JNZ  sloop

rest:
	TESTQ $2, flags+72(FP)
	JNZ   last
	TACC(TACCSTORE)
	JMP   nexttile

last:
	MOVQ DX, CX
	ANDQ $31, CX
	CMPQ CX, $16
	JB   tail
	S6CHUNK(0, 0)
	SADV
	SUBQ $16, CX

tail:
	TESTQ CX, CX
	JZ    reduce
	TAILK11
	S6CHUNKK

reduce:
	SRED24

nexttile:
	ADDQ $1536, BX
	LEAQ (R14)(R9*2), R14
	DECQ R12
	JNZ  tile
	VZEROUPPER
	RET

// The rest tiles, for the one to five tokens left after the 4×6 tiles
// (or a batch of fewer than six): four rows by two tokens (Z0–Z7) or by
// five (Z0–Z19), pair (row i, token t) in Z(4t+i), summed as the 4×6 tile
// sums it. Tokens past the last are computed as copies of it (their
// results are not read). Token t is at DI, R9, R10, R12, R13; each pass
// fetches the next four rows.

// R2CHUNK and R5CHUNK are one chunk of two and five tokens (rows at F16
// byte offset offh, tokens at float byte offset off).
#define R2CHUNK(offh, off) \
	S4ROWS(offh); \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(R9), Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	S4FMA(Z29, Z4, Z5, Z6, Z7)

#define R5CHUNK(offh, off) \
	S4ROWS(offh); \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(R9), Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	VMOVUPS off(R10), Z30; \
	S4FMA(Z29, Z4, Z5, Z6, Z7); \
	VMOVUPS off(R12), Z31; \
	S4FMA(Z30, Z8, Z9, Z10, Z11); \
	VMOVUPS off(R13), Z28; \
	S4FMA(Z31, Z12, Z13, Z14, Z15); \
	S4FMA(Z28, Z16, Z17, Z18, Z19)

#define R2CHUNKK \
	S4ROWSK; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (R9), K1, Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	S4FMA(Z29, Z4, Z5, Z6, Z7)

#define R5CHUNKK \
	S4ROWSK; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (R9), K1, Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	VMOVUPS.Z (R10), K1, Z30; \
	S4FMA(Z29, Z4, Z5, Z6, Z7); \
	VMOVUPS.Z (R12), K1, Z31; \
	S4FMA(Z30, Z8, Z9, Z10, Z11); \
	VMOVUPS.Z (R13), K1, Z28; \
	S4FMA(Z31, Z12, Z13, Z14, Z15); \
	S4FMA(Z28, Z16, Z17, Z18, Z19)

// RADV(hb, fb) moves the row pointers hb bytes on and the token pointers
// fb bytes.
#define RADV(hb, fb) \
	ADDQ $hb, SI; \
	ADDQ $hb, AX; \
	ADDQ $fb, DI; \
	ADDQ $fb, R9; \
	ADDQ $fb, R10; \
	ADDQ $fb, R12; \
	ADDQ $fb, R13

// TACC8 and TACC20 are TACC for the first 8 and 20 accumulators.
#define TACC8(op) \
	op(0, Z0); op(64, Z1); op(128, Z2); op(192, Z3); \
	op(256, Z4); op(320, Z5); op(384, Z6); op(448, Z7)

#define TACC20(op) \
	TACC8(op); \
	op(512, Z8); op(576, Z9); op(640, Z10); op(704, Z11); \
	op(768, Z12); op(832, Z13); op(896, Z14); op(960, Z15); \
	op(1024, Z16); op(1088, Z17); op(1152, Z18); op(1216, Z19)

// RTOK(t, r) sets r to token min(t, R14)'s address (R14 = tokens−1).
#define RTOK(t, r) \
	MOVQ    $t, r; \
	CMPQ    R14, r; \
	CMOVQLT R14, r; \
	IMULQ   R8, r; \
	ADDQ    DI, r

// func dotTile4xNPartsF16AVX512(acc *float32, w []uint16, x []float32, ld, n, flags, tokens int)
TEXT ·dotTile4xNPartsF16AVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), SI
	MOVQ x_base+32(FP), DI
	MOVQ ld+56(FP), R8
	LEAQ (R8)(R8*1), R15
	SHLQ $2, R8
	MOVQ tokens+80(FP), R14
	DECQ R14
	RTOK(1, R9)
	RTOK(2, R10)
	RTOK(3, R12)
	RTOK(4, R13)
	MOVQ n+64(FP), DX
	LEAQ (SI)(R15*2), AX
	ADDQ R15, AX
	LEAQ (SI)(R15*4), CX
	CMPQ R14, $2
	JGE  five

	TESTQ $1, flags+72(FP)
	JZ    zero2
	TACC8(TACCLOAD)
	JMP   start2

zero2:
	TACC8(TACCZERO)

start2:
	MOVQ DX, R11
	SHRQ $5, R11
	JZ   rest2

loop2:
	S4PF(PREFETCHT1, (CX), (AX)(R15*4))
	R2CHUNK(0, 0)
	R2CHUNK(32, 64)
	RADV(64, 128)
	ADDQ $64, CX
	DECQ R11
	JNZ  loop2

rest2:
	TESTQ $2, flags+72(FP)
	JNZ   last2
	TACC8(TACCSTORE)
	VZEROUPPER
	RET

last2:
	MOVQ DX, CX
	ANDQ $31, CX
	CMPQ CX, $16
	JB   tail2
	R2CHUNK(0, 0)
	RADV(32, 64)
	SUBQ $16, CX

tail2:
	TESTQ CX, CX
	JZ    reduce2
	TAILK11
	R2CHUNKK

reduce2:
	RED8(BX)
	VZEROUPPER
	RET

five:
	TESTQ $1, flags+72(FP)
	JZ    zero5
	TACC20(TACCLOAD)
	JMP   start5

zero5:
	TACC20(TACCZERO)

start5:
	MOVQ DX, R11
	SHRQ $5, R11
	JZ   rest5

loop5:
	S4PF(PREFETCHT1, (CX), (AX)(R15*4))
	R5CHUNK(0, 0)
	R5CHUNK(32, 64)
	RADV(64, 128)
	ADDQ $64, CX
	DECQ R11
	JNZ  loop5

rest5:
	TESTQ $2, flags+72(FP)
	JNZ   last5
	TACC20(TACCSTORE)
	VZEROUPPER
	RET

last5:
	MOVQ DX, CX
	ANDQ $31, CX
	CMPQ CX, $16
	JB   tail5
	R5CHUNK(0, 0)
	RADV(32, 64)
	SUBQ $16, CX

tail5:
	TESTQ CX, CX
	JZ    reduce5
	TAILK11
	R5CHUNKK

reduce5:
	SRED20
	ADDQ    $48, BX
	RED8(BX)
	VZEROUPPER
	RET

#define TFMA2(a0, a1, a2, a3, a4, a5, a6, a7) \
	S4FMA(Z28, a0, a1, a2, a3); \
	S4FMA(Z29, a4, a5, a6, a7)

#define TFMA20 TFMA2(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
#define TFMA21 TFMA2(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15)

// TACC2 is TACC for the sixteen accumulators of the 4×2 tile.
#define TACC2(op) \
	op(0, Z0); op(64, Z1); op(128, Z2); op(192, Z3); \
	op(256, Z4); op(320, Z5); op(384, Z6); op(448, Z7); \
	op(512, Z8); op(576, Z9); op(640, Z10); op(704, Z11); \
	op(768, Z12); op(832, Z13); op(896, Z14); op(960, Z15)

// TACC2END adds the 4×2 tile's two chains, reduces each pair and stores
// the eight results token-major at BX.
#define TACC2END \
	VADDPS Z8, Z0, Z0; \
	VADDPS Z9, Z1, Z1; \
	VADDPS Z10, Z2, Z2; \
	VADDPS Z11, Z3, Z3; \
	VADDPS Z12, Z4, Z4; \
	VADDPS Z13, Z5, Z5; \
	VADDPS Z14, Z6, Z6; \
	VADDPS Z15, Z7, Z7; \
	RED8(BX); \
	VZEROUPPER; \
	RET

// The 4×2 tile parts with float32 rows, for the one or two tokens left
// after the 4×3 tiles: pair (row i, token t) in Z(4t+i) for even chunks
// and Z(8+4t+i) for odd ones, each as the 4×3 kernel sums it, so the bits
// are the same; it fetches the next four rows as the 4×3 kernel's second
// tile does. Rows are read as they are (rows R8 bytes apart, R9 = 3·R8;
// the second token R12 bytes after the first, 0 for one token).

#define TLOAD2(off) \
	VMOVUPS off(SI), Z24; \
	VMOVUPS off(SI)(R8*1), Z25; \
	VMOVUPS off(SI)(R8*2), Z26; \
	VMOVUPS off(SI)(R9*1), Z27; \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(DI)(R12*1), Z29

#define TLOADK2 \
	VMOVUPS.Z (SI), K1, Z24; \
	VMOVUPS.Z (SI)(R8*1), K1, Z25; \
	VMOVUPS.Z (SI)(R8*2), K1, Z26; \
	VMOVUPS.Z (SI)(R9*1), K1, Z27; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (DI)(R12*1), K1, Z29

// func dotTile4xNPartsAVX512(acc *float32, w, x []float32, ld, n, flags, tokens int)
TEXT ·dotTile4xNPartsAVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), SI
	MOVQ x_base+32(FP), DI
	MOVQ ld+56(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ R8, R12
	CMPQ tokens+80(FP), $2
	JEQ  two32
	XORQ R12, R12

two32:
	MOVQ n+64(FP), DX
	MOVQ flags+72(FP), R10
	TESTQ $1, R10
	JZ    zero32
	TACC2(TACCLOAD)
	JMP   start32

zero32:
	TACC2(TACCZERO)

start32:
	MOVQ DX, R11
	SHRQ $5, R11
	JZ   rest32
	LEAQ (SI)(R8*4), CX

loop32:
	TPFNEXT32
	TLOAD2(0)
	TFMA20
	TLOAD2(64)
	TFMA21
	ADDQ $128, SI
	ADDQ $128, DI
	ADDQ $128, CX
	DECQ R11
	JNZ  loop32

rest32:
	TESTQ $2, R10
	JNZ   last32
	TACC2(TACCSTORE)
	VZEROUPPER
	RET

last32:
	MOVQ DX, CX
	ANDQ $31, CX
	CMPQ CX, $16
	JB   tail32
	TLOAD2(0)
	TFMA20
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JZ   combine32
	TAILK
	TLOADK2
	TFMA21
	JMP  combine32

tail32:
	TESTQ CX, CX
	JZ    combine32
	TAILK
	TLOADK2
	TFMA20

combine32:
	TACC2END

// func quantizeQ8_0AVX512Asm(dst []byte, x []float32)
// QuantizeQ8_0 for whole blocks, bit for bit on finite input: amax by
// VMAXPS (exact), d = amax/127 and 1/d by scalar division, the fp16 scale
// by VCVTPS2PH round-to-nearest-even (F32ToF16), and C's roundf on x·(1/d)
// as trunc(v) + sign(v)·(|v − trunc(v)| ≥ 0.5), which is exact (v − trunc(v)
// is exact for |v| < 2²³).
DATA q8c<>+0(SB)/4, $0x7fffffff  // abs mask
DATA q8c<>+4(SB)/4, $0x80000000  // sign mask
DATA q8c<>+8(SB)/4, $0x3f800000  // 1
DATA q8c<>+12(SB)/4, $0x3f000000 // 0.5
DATA q8c<>+16(SB)/4, $0x42fe0000 // 127
GLOBL q8c<>(SB), RODATA|NOPTR, $20

TEXT ·quantizeQ8_0AVX512Asm(SB), NOSPLIT, $0-48
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	SHRQ         $5, CX
	JZ           qdone
	VBROADCASTSS q8c<>+0(SB), Z28
	VBROADCASTSS q8c<>+4(SB), Z29
	VBROADCASTSS q8c<>+8(SB), Z30
	VBROADCASTSS q8c<>+12(SB), Z31
	VMOVSS       q8c<>+16(SB), X27

qloop:
	VMOVUPS       (SI), Z0
	VMOVUPS       64(SI), Z1
	VANDPS        Z28, Z0, Z2
	VANDPS        Z28, Z1, Z3
	VMAXPS        Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VMAXPS        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VMAXPS        X3, X2, X2
	VPERMILPS     $0x4e, X2, X3
	VMAXPS        X3, X2, X2
	VPERMILPS     $0xb1, X2, X3
	VMAXPS        X3, X2, X2
	VDIVSS        X27, X2, X4  // d = amax / 127
	VCVTPS2PH     $0, X4, X5
	VMOVD         X5, AX
	MOVW          AX, (DI)
	VMOVD         X4, AX
	TESTL         AX, AX
	JZ            qzero
	VDIVSS        X4, X30, X6  // 1/d
	VBROADCASTSS  X6, Z6
	VMULPS        Z6, Z0, Z0
	VMULPS        Z6, Z1, Z1
	VRNDSCALEPS   $11, Z0, Z2  // trunc, no precision exception
	VRNDSCALEPS   $11, Z1, Z3
	VSUBPS        Z2, Z0, Z4
	VSUBPS        Z3, Z1, Z5
	VANDPS        Z28, Z4, Z4
	VANDPS        Z28, Z5, Z5
	VCMPPS        $0x1d, Z31, Z4, K1 // |v − trunc v| ≥ 0.5
	VCMPPS        $0x1d, Z31, Z5, K2
	VANDPS        Z29, Z0, Z4
	VANDPS        Z29, Z1, Z5
	VORPS         Z30, Z4, Z4  // ±1 with v's sign
	VORPS         Z30, Z5, Z5
	VADDPS        Z4, Z2, K1, Z2
	VADDPS        Z5, Z3, K2, Z3
	VCVTTPS2DQ    Z2, Z2
	VCVTTPS2DQ    Z3, Z3
	VPMOVDB       Z2, 2(DI)
	VPMOVDB       Z3, 18(DI)
	JMP           qnext

qzero:
	VPXORD    Y2, Y2, Y2
	VMOVDQU64 Y2, 2(DI)

qnext:
	ADDQ $128, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  qloop

qdone:
	VZEROUPPER
	RET

// func axpyAVX512Asm(y []float32, a float32, x []float32)
// y[i] += a·x[i], rounded twice (multiply, then add) as the generic Go
// code computes it; len(x) ≥ len(y).
TEXT ·axpyAVX512Asm(SB), NOSPLIT, $0-56
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	VBROADCASTSS a+24(FP), Z0
	MOVQ         x_base+32(FP), SI

aloop:
	CMPQ    CX, $32
	JB      a16
	VMULPS  (SI), Z0, Z1
	VMULPS  64(SI), Z0, Z2
	VADDPS  (DI), Z1, Z1
	VADDPS  64(DI), Z2, Z2
	VMOVUPS Z1, (DI)
	VMOVUPS Z2, 64(DI)
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     aloop

a16:
	CMPQ    CX, $16
	JB      atail
	VMULPS  (SI), Z0, Z1
	VADDPS  (DI), Z1, Z1
	VMOVUPS Z1, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX

atail:
	TESTQ     CX, CX
	JZ        adone
	TAILK
	VMOVUPS.Z (SI), K1, Z1
	VMOVUPS.Z (DI), K1, Z2
	VMULPS    Z1, Z0, Z1
	VADDPS    Z2, Z1, Z1
	VMOVUPS   Z1, K1, (DI)

adone:
	VZEROUPPER
	RET

// func dotsF32AVX512Asm(out, q, keys []float32, stride int)
// out[i] = q · keys[i*stride:][:len(q)], each row with dotF32AVX512Asm's
// steps (so the same bits); rows are independent, so the core overlaps them.
TEXT ·dotsF32AVX512Asm(SB), NOSPLIT, $0-80
	MOVQ out_base+0(FP), R8
	MOVQ out_len+8(FP), R9
	MOVQ q_base+24(FP), R10
	MOVQ q_len+32(FP), R11
	MOVQ keys_base+48(FP), R12
	MOVQ stride+72(FP), R13
	SHLQ $2, R13
	TESTQ R9, R9
	JZ   dsdone

dsrow:
	MOVQ R10, SI
	MOVQ R12, DI
	MOVQ R11, CX
	DOTF32
	VMOVSS X0, (R8)
	ADDQ   $4, R8
	ADDQ   R13, R12
	DECQ   R9
	JNZ    dsrow

dsdone:
	VZEROUPPER
	RET

// func axpyRowsAVX512Asm(y, w, rows []float32, stride int)
// for i < len(w): y += w[i] * rows[i*stride:][:len(y)], product rounded,
// then added, as axpyAVX512Asm does. y is taken 64 floats (four registers)
// at a time, then 16, then a masked tail, each over every row.
TEXT ·axpyRowsAVX512Asm(SB), NOSPLIT, $0-80
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), CX
	MOVQ w_base+24(FP), R8
	MOVQ w_len+32(FP), R9
	MOVQ rows_base+48(FP), R10
	MOVQ stride+72(FP), R13
	SHLQ $2, R13

ar64:
	CMPQ    CX, $64
	JB      ar16
	VMOVUPS (DI), Z8
	VMOVUPS 64(DI), Z9
	VMOVUPS 128(DI), Z10
	VMOVUPS 192(DI), Z11
	MOVQ    R8, BX
	MOVQ    R10, SI
	MOVQ    R9, DX

ar64row:
	VBROADCASTSS (BX), Z0
	VMULPS       (SI), Z0, Z1
	VMULPS       64(SI), Z0, Z2
	VMULPS       128(SI), Z0, Z3
	VMULPS       192(SI), Z0, Z4
	VADDPS       Z1, Z8, Z8
	VADDPS       Z2, Z9, Z9
	VADDPS       Z3, Z10, Z10
	VADDPS       Z4, Z11, Z11
	ADDQ         $4, BX
	ADDQ         R13, SI
	DECQ         DX
	JNZ          ar64row
	VMOVUPS      Z8, (DI)
	VMOVUPS      Z9, 64(DI)
	VMOVUPS      Z10, 128(DI)
	VMOVUPS      Z11, 192(DI)
	ADDQ         $256, DI
	ADDQ         $256, R10
	SUBQ         $64, CX
	JMP          ar64

ar16:
	CMPQ    CX, $16
	JB      artail
	VMOVUPS (DI), Z8
	MOVQ    R8, BX
	MOVQ    R10, SI
	MOVQ    R9, DX

ar16row:
	VBROADCASTSS (BX), Z0
	VMULPS       (SI), Z0, Z1
	VADDPS       Z1, Z8, Z8
	ADDQ         $4, BX
	ADDQ         R13, SI
	DECQ         DX
	JNZ          ar16row
	VMOVUPS      Z8, (DI)
	ADDQ         $64, DI
	ADDQ         $64, R10
	SUBQ         $16, CX
	JMP          ar16

artail:
	TESTQ     CX, CX
	JZ        ardone
	TAILK
	VMOVUPS.Z (DI), K1, Z8
	MOVQ      R8, BX
	MOVQ      R10, SI
	MOVQ      R9, DX

artailrow:
	VBROADCASTSS (BX), Z0
	VMOVUPS.Z    (SI), K1, Z1
	VMULPS       Z1, Z0, Z1
	VADDPS       Z1, Z8, Z8
	ADDQ         $4, BX
	ADDQ         R13, SI
	DECQ         DX
	JNZ          artailrow
	VMOVUPS      Z8, K1, (DI)

ardone:
	VZEROUPPER
	RET
