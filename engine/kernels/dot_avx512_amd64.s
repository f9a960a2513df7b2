//go:build amd64 && !purego

#include "textflag.h"
#include "rows4_amd64.h"

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
// one chain (each 16-float chunk in turn, the partial one last, masked);
// SI, DI, CX, DX, AX, K1, Z0, Z1, Z4 and Z5 are clobbered.
// dotF32AVX512Asm and dotsF32AVX512Asm share it, so their bits agree. Its
// labels are local to the function using it.
#define DOTF32 \
	VPXORD Z0, Z0, Z0; \
	MOVQ   CX, DX; \
	SHRQ   $4, DX; \
	JZ     dottail; \
dotloop: \
	VMOVUPS     (SI), Z4; \
	VFMADD231PS (DI), Z4, Z0; \
	ADDQ        $64, SI; \
	ADDQ        $64, DI; \
	DECQ        DX; \
	JNZ         dotloop; \
dottail: \
	ANDQ        $15, CX; \
	JZ          dotdone; \
	TAILK; \
	VMOVUPS.Z   (SI), K1, Z4; \
	VMOVUPS.Z   (DI), K1, Z5; \
	VFMADD231PS Z5, Z4, Z0; \
dotdone: \
	HSUM16(Z0, Y0, X0, Y1, X1)

// The one-chain tiles (F16 and float32 rows; see "The float tiles sum each
// pair in one chain" below) are written once as macros over the way a
// row's chunk is loaded: rows(off) loads the chunk at byte offset off of
// the four rows into Z24–Z27 (widening F16), rowsk the partial chunk in
// the lanes of K1, rb is a chunk's bytes in a row (32 for F16, 64 for
// float32), pfown and pfnext prefetch a step's lines of the rows 2 KB
// ahead and of the next row tile. (Macros that name the arguments stand
// before the first TEXT, as vet's asmdecl check reads them.)

// ONECHAIN6 is the body of the 4×6 tile parts after its prologue: BX acc,
// R13 row 0, R14 token 0, R15 the row stride and R8 the token stride in
// bytes; R9 = 3·R8.
#define ONECHAIN6(rows, rowsk, rb, pfown, pfnext) \
	LEAQ (R8)(R8*2), R9; \
	MOVQ n+64(FP), DX; \
	MOVQ tiles+80(FP), R12; \
tile: \
	MOVQ  R13, SI; \
	MOVQ  R14, DI; \
	LEAQ  (DI)(R9*1), R10; \
	LEAQ  (SI)(R15*2), AX; \
	ADDQ  R15, AX; \
	TESTQ $1, flags+72(FP); \
	JZ    zero; \
	TACC(TACCLOAD); \
	JMP   start; \
zero: \
	TACC(TACCZERO); \
start: \
	MOVQ DX, R11; \
	SHRQ $5, R11; \
	JZ   rest; \
	MOVQ tiles+80(FP), CX; \
	SUBQ R12, CX; \
	JZ   first; \
	CMPQ CX, $1; \
	JEQ  second; \
plain: \
	S6STEP(rows, rb); \
	DECQ R11; \
	JNZ  plain; \
	JMP  rest; \
first: \
	pfown; \
	S6STEP(rows, rb); \
	DECQ R11; \
	JNZ  first; \
	JMP  rest; \
second: \
	LEAQ (SI)(R15*4), CX; \
sloop: \
	pfnext; \
	S6STEP(rows, rb); \
	ADDQ $(2*rb), CX; \
	DECQ R11; \
	JNZ  sloop; \
rest: \
	TESTQ $2, flags+72(FP); \
	JNZ   last; \
	TACC(TACCSTORE); \
	JMP   nexttile; \
last: \
	MOVQ DX, CX; \
	ANDQ $31, CX; \
	CMPQ CX, $16; \
	JB   tail; \
	S6CHUNK(rows, 0, 0); \
	SADV(rb); \
	SUBQ $16, CX; \
tail: \
	TESTQ CX, CX; \
	JZ    reduce; \
	TAILK11; \
	S6CHUNKK(rowsk); \
reduce: \
	SRED24; \
nexttile: \
	ADDQ $1536, BX; \
	LEAQ (R14)(R9*2), R14; \
	DECQ R12; \
	JNZ  tile; \
	VZEROUPPER; \
	RET

// ONECHAINREST is the body of the rest tile parts after its prologue: BX
// acc, SI row 0, DI token 0, R15 the row stride and R8 the token stride in
// bytes.
#define ONECHAINREST(rows, rowsk, rb, pfnext) \
	MOVQ tokens+80(FP), R14; \
	DECQ R14; \
	RTOK(1, R9); \
	RTOK(2, R10); \
	RTOK(3, R12); \
	RTOK(4, R13); \
	MOVQ n+64(FP), DX; \
	LEAQ (SI)(R15*2), AX; \
	ADDQ R15, AX; \
	LEAQ (SI)(R15*4), CX; \
	CMPQ R14, $4; \
	JGE  five; \
	CMPQ R14, $2; \
	JGE  four; \
	RESTN(rows, rowsk, rb, pfnext, TACC8, R2CHUNK, R2CHUNKK, RED8(BX), zero2, start2, loop2, rest2, last2, tail2, reduce2); \
four: \
	RESTN(rows, rowsk, rb, pfnext, TACC16, R4CHUNK, R4CHUNKK, SRED16, zero4, start4, loop4, rest4, last4, tail4, reduce4); \
five: \
	RESTN(rows, rowsk, rb, pfnext, TACC20, R5CHUNK, R5CHUNKK, RED20, zero5, start5, loop5, rest5, last5, tail5, reduce5)

// RED20 reduces the twenty pairs of a five-token rest tile (Z0–Z19).
#define RED20 \
	SRED20; \
	ADDQ $48, BX; \
	RED8(BX)

// RESTN is one register set of the rest tile parts (two, four or five
// tokens): tacc(op) applies op to its accumulators' slots in acc, chunk
// and chunkk run a chunk (the partial one in the lanes of K1) of the
// tokens against the four rows, red reduces and stores the pairs; the
// labels are passed in, as each expansion needs its own.
#define RESTN(rows, rowsk, rb, pfnext, tacc, chunk, chunkk, red, zero, start, loop, rest, last, tail, reduce) \
	TESTQ $1, flags+72(FP); \
	JZ    zero; \
	tacc(TACCLOAD); \
	JMP   start; \
zero: \
	tacc(TACCZERO); \
start: \
	MOVQ DX, R11; \
	SHRQ $5, R11; \
	JZ   rest; \
loop: \
	pfnext; \
	chunk(rows, 0, 0); \
	chunk(rows, rb, 64); \
	RADV((2*rb), 128); \
	ADDQ $(2*rb), CX; \
	DECQ R11; \
	JNZ  loop; \
rest: \
	TESTQ $2, flags+72(FP); \
	JNZ   last; \
	tacc(TACCSTORE); \
	VZEROUPPER; \
	RET; \
last: \
	MOVQ DX, CX; \
	ANDQ $31, CX; \
	CMPQ CX, $16; \
	JB   tail; \
	chunk(rows, 0, 0); \
	RADV(rb, 64); \
	SUBQ $16, CX; \
tail: \
	TESTQ CX, CX; \
	JZ    reduce; \
	TAILK11; \
	chunkk(rowsk); \
reduce: \
	red; \
	VZEROUPPER; \
	RET

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
// dotF32's chain on the widened values (a bfloat16 is the high half of a
// float32).
TEXT ·dotBF16AVX512Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	VPXORD Z0, Z0, Z0
	MOVQ   CX, DX
	SHRQ   $4, DX
	JZ     tail

loop:
	VPMOVZXWD   (SI), Z4
	VPSLLD      $16, Z4, Z4
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
	VPMOVZXWD   Y4, Z4
	VPSLLD      $16, Z4, Z4
	VMOVUPS.Z   (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z0

done:
	HSUM16(Z0, Y0, X0, Y1, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

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
// RED4 reduces Z0–Z3 and stores the results at r.
#define RED4(r) \
	HSUM16(Z0, Y0, X0, Y8, X8); \
	HSUM16(Z1, Y1, X1, Y8, X8); \
	HSUM16(Z2, Y2, X2, Y8, X8); \
	HSUM16(Z3, Y3, X3, Y8, X8); \
	VMOVSS X0, 0(r); \
	VMOVSS X1, 4(r); \
	VMOVSS X2, 8(r); \
	VMOVSS X3, 12(r)

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

// The two-group tiles: sixteen rows (two groups, gb = R12 bytes apart) times
// four tokens. Each token's activation block is loaded once for both
// groups, so a block-token costs half the broadcasts (the one-group tile is
// bound by its loads: six broadcasts to four VPDPBUSD); every (row, token)
// still runs X8TOK's sequence, so the bits are the gemv's. Group B's block
// is in Z12–Z15 and Z20, the accumulators Z16–Z19 (group A) and Z21–Z24 (B),
// Z25–Z27 scratch.

// Q4X8WB loads group B's Q4_0 block (at w + R12).
#define Q4X8WB(w) \
	VMOVDQU64 16(w)(R12*1), Z12; \
	VMOVDQU64 80(w)(R12*1), Z13; \
	VPSRLW    $4, Z12, Z14; \
	VPSRLW    $4, Z13, Z15; \
	VPANDD    Z31, Z12, Z12; \
	VPANDD    Z31, Z14, Z14; \
	VPANDD    Z31, Z13, Z13; \
	VPANDD    Z31, Z15, Z15; \
	VCVTPH2PS (w)(R12*1), Y20; \
	VPERMPS   Z20, Z30, Z20

// Q8X8WB loads group B's Q8_0 block (at w + R12).
#define Q8X8WB(w) \
	VMOVDQU64 16(w)(R12*1), Z12; \
	VMOVDQU64 80(w)(R12*1), Z13; \
	VMOVDQU64 144(w)(R12*1), Z14; \
	VMOVDQU64 208(w)(R12*1), Z15; \
	VPXORD    Z31, Z12, Z12; \
	VPXORD    Z31, Z13, Z13; \
	VPXORD    Z31, Z14, Z14; \
	VPXORD    Z31, Z15, Z15; \
	VCVTPH2PS (w)(R12*1), Y20; \
	VPERMPS   Z20, Z30, Z20

// X8TOK2 is X8TOK for both groups: the token's block at p into accA, accB.
#define X8TOK2(p, accA, accB, zc) \
	VPBROADCASTQ zc(p), Z5; \
	VMOVDQA64    Z5, Z25; \
	VPBROADCASTQ 0(p), Z6; \
	VPDPBUSD     Z6, Z1, Z5; \
	VPDPBUSD     Z6, Z12, Z25; \
	VPBROADCASTQ 8(p), Z7; \
	VPDPBUSD     Z7, Z2, Z5; \
	VPDPBUSD     Z7, Z13, Z25; \
	VPBROADCASTQ 16(p), Z8; \
	VPDPBUSD     Z8, Z3, Z5; \
	VPDPBUSD     Z8, Z14, Z25; \
	VPBROADCASTQ 24(p), Z9; \
	VPDPBUSD     Z9, Z4, Z5; \
	VPDPBUSD     Z9, Z15, Z25; \
	VCVTDQ2PS    Z5, Z5; \
	VCVTDQ2PS    Z25, Z25; \
	VBROADCASTSS 48(p), Z11; \
	VMULPS       Z11, Z10, Z26; \
	VMULPS       Z11, Z20, Z27; \
	VFMADD231PS  Z26, Z5, accA; \
	VFMADD231PS  Z27, Z25, accB

// X8TILE2 is the two-group tile's body (R9 the prepared rows' stride, R12
// the groups' distance); it prefetches the next pair of groups' blocks.
#define X8TILE2(wconst, load, loadb, bb, zc) \
	LEAQ   (R9)(R9*2), R10; \
	IMUL3Q $bb, CX, R12; \
	LEAQ   (R12)(R12*1), R13; \
	LEAQ   (R13)(R12*1), R14; \
	X8CONST(wconst); \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23; \
	VPXORD Z24, Z24, Z24; \
	TESTQ  CX, CX; \
	JZ     t2done; \
t2loop: \
	PREFETCHT1 (SI)(R13*1); \
	PREFETCHT1 64(SI)(R13*1); \
	PREFETCHT1 128(SI)(R13*1); \
	PREFETCHT1 (SI)(R14*1); \
	PREFETCHT1 64(SI)(R14*1); \
	PREFETCHT1 128(SI)(R14*1); \
	load(SI); \
	loadb(SI); \
	X8TOK2(DI, Z16, Z21, zc); \
	LEAQ (DI)(R9*1), R11; \
	X8TOK2(R11, Z17, Z22, zc); \
	LEAQ (DI)(R9*2), R11; \
	X8TOK2(R11, Z18, Z23, zc); \
	LEAQ (DI)(R10*1), R11; \
	X8TOK2(R11, Z19, Z24, zc); \
	ADDQ $bb, SI; \
	ADDQ $64, DI; \
	DECQ CX; \
	JNZ  t2loop; \
t2done: \
	MOVQ out+0(FP), DX; \
	X8OUT(Z16, Y16, 0); \
	X8OUT(Z17, Y17, 32); \
	X8OUT(Z18, Y18, 64); \
	X8OUT(Z19, Y19, 96); \
	X8OUT(Z21, Y21, 128); \
	X8OUT(Z22, Y22, 160); \
	X8OUT(Z23, Y23, 192); \
	X8OUT(Z24, Y24, 224); \
	VZEROUPPER; \
	RET

// func q4x8Tile2AVX512Asm(out *[64]float32, w, p []byte, blocks, pstride int)
TEXT ·q4x8Tile2AVX512Asm(SB), NOSPLIT, $0-72
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	MOVQ pstride+64(FP), R9
	X8TILE2(0x0f0f0f0f, Q4X8W, Q4X8WB, 144, 32)

// func q8x8Tile2AVX512Asm(out *[64]float32, w, p []byte, blocks, pstride int)
TEXT ·q8x8Tile2AVX512Asm(SB), NOSPLIT, $0-72
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	MOVQ pstride+64(FP), R9
	X8TILE2(0x80808080, Q8X8W, Q8X8WB, 272, 40)

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

// The decode kernels for four rows at once (F16, BF16 and float32 rows):
// row i sums into Z(i) in the set's single-row dot order, so each result
// has that dot's bits; the activations are loaded once for the four rows
// (Z16, Z17) and the four independent chains keep the FMA units busy
// enough for a stream from memory (one chain alone waits on its FMA's
// latency: 16 values per 4 cycles, below a core's share of memory
// bandwidth for 16-bit rows). SI points at row 0, R8 is the stride between
// the four rows in bytes (a quarter of a chunk of rows: see Matrix.plan),
// R9 three strides.

#define R4CVT(off, z0, z2, z4, z6) R4LD(VCVTPH2PS, off, z0, z2, z4, z6)

#define R4CVTK \
	R4LDK(VMOVDQU16.Z, Y8, Y10, Y12, Y14); \
	VCVTPH2PS Y8, Z8; \
	VCVTPH2PS Y10, Z10; \
	VCVTPH2PS Y12, Z12; \
	VCVTPH2PS Y14, Z14

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

// ROWS4 is the body of the four-row decode kernels after their prologue
// (SI row 0, DI x, DX n, R8 the row stride in bytes, R9 three strides):
// each row's dot in one chain, Z0–Z3, exactly the set's single-row dot.
// load(off, z0, z2, z4, z6) puts the chunk at byte offset off of the four
// rows in z0…z6 as float32 (Z8–Z15), loadk the partial chunk in the lanes
// of K1 into Z8, Z10, Z12, Z14; rb is a chunk's bytes in a row.
#define ROWS4(load, loadk, rb) \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	MOVQ   DX, BX; \
	SHRQ   $5, BX; \
	JZ     rest; \
loop: \
	R4PF((32*rb)); \
	VMOVUPS (DI), Z16; \
	VMOVUPS 64(DI), Z17; \
	load(0, Z8, Z10, Z12, Z14); \
	load(rb, Z9, Z11, Z13, Z15); \
	R4FMA(Z16, Z0, Z1, Z2, Z3); \
	R4FMA1(Z17, Z0, Z1, Z2, Z3); \
	ADDQ    $(2*rb), SI; \
	ADDQ    $128, DI; \
	DECQ    BX; \
	JNZ     loop; \
rest: \
	MOVQ DX, CX; \
	ANDQ $31, CX; \
	CMPQ CX, $16; \
	JB   tail; \
	VMOVUPS (DI), Z16; \
	load(0, Z8, Z10, Z12, Z14); \
	R4FMA(Z16, Z0, Z1, Z2, Z3); \
	ADDQ $rb, SI; \
	ADDQ $64, DI; \
	SUBQ $16, CX; \
tail: \
	TESTQ CX, CX; \
	JZ    done; \
	TAILK; \
	VMOVUPS.Z (DI), K1, Z16; \
	loadk; \
	R4FMA(Z16, Z0, Z1, Z2, Z3); \
done: \
	HSUM16(Z0, Y0, X0, Y8, X8); \
	HSUM16(Z1, Y1, X1, Y8, X8); \
	HSUM16(Z2, Y2, X2, Y8, X8); \
	HSUM16(Z3, Y3, X3, Y8, X8)

// B4LOAD widens the BF16 chunk at byte offset off of the four rows;
// B4LOADK the partial one in the lanes of K1.
#define B4LOAD(off, z0, z2, z4, z6) \
	R4LD(VPMOVZXWD, off, z0, z2, z4, z6); \
	R4SHL16(z0, z2, z4, z6)

#define B4LOADK \
	R4LDK(VMOVDQU16.Z, Y8, Y10, Y12, Y14); \
	VPMOVZXWD Y8, Z8; \
	VPMOVZXWD Y10, Z10; \
	VPMOVZXWD Y12, Z12; \
	VPMOVZXWD Y14, Z14; \
	R4SHL16(Z8, Z10, Z12, Z14)

// F4LOAD loads the float32 chunk at byte offset off of the four rows;
// F4LOADK the partial one in the lanes of K1.
#define F4LOAD(off, z0, z2, z4, z6) R4LD(VMOVUPS, off, z0, z2, z4, z6)

#define F4LOADK R4LDK(VMOVUPS.Z, Z8, Z10, Z12, Z14)

// func dotF16Rows4AVX512Asm(out *[4]float32, w []uint16, x []float32, n, stride int)
TEXT ·dotF16Rows4AVX512Asm(SB), NOSPLIT, $0-72
	ROWS4ENTRY(1)
	ROWS4(R4CVT, R4CVTK, 32)
	ROWS4EXIT

// func dotBF16Rows4AVX512Asm(out *[4]float32, w []uint16, x []float32, n, stride int)
TEXT ·dotBF16Rows4AVX512Asm(SB), NOSPLIT, $0-72
	ROWS4ENTRY(1)
	ROWS4(B4LOAD, B4LOADK, 32)
	ROWS4EXIT

// func dotF32Rows4AVX512Asm(out *[4]float32, w []float32, x []float32, n, stride int)
TEXT ·dotF32Rows4AVX512Asm(SB), NOSPLIT, $0-72
	ROWS4ENTRY(2)
	ROWS4(F4LOAD, F4LOADK, 64)
	ROWS4EXIT

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

// TAILK11 is TAILK with R11 for scratch (AX is the row-3 pointer in the F16 tiles).
#define TAILK11 \
	MOVL  $1, R11; \
	SHLL  CX, R11; \
	DECL  R11; \
	KMOVW R11, K1

// S4FMA multiplies token chunk zx by the four widened rows into a0…a3.
#define S4FMA(zx, a0, a1, a2, a3) \
	VFMADD231PS zx, Z24, a0; \
	VFMADD231PS zx, Z25, a1; \
	VFMADD231PS zx, Z26, a2; \
	VFMADD231PS zx, Z27, a3

// H4ROWS widens the chunk at byte offset off of the four F16 rows; F4ROWS
// loads that of four float32 rows.
#define H4ROWS(off) \
	VCVTPH2PS off(SI), Z24; \
	VCVTPH2PS off(SI)(R15*1), Z25; \
	VCVTPH2PS off(SI)(R15*2), Z26; \
	VCVTPH2PS off(AX), Z27

#define F4ROWS(off) \
	VMOVUPS off(SI), Z24; \
	VMOVUPS off(SI)(R15*1), Z25; \
	VMOVUPS off(SI)(R15*2), Z26; \
	VMOVUPS off(AX), Z27

// H4ROWSK and F4ROWSK load the partial chunk of the four rows in the
// lanes of K1, zeros elsewhere.
#define H4ROWSK \
	VMOVDQU16.Z (SI), K1, Y24; \
	VMOVDQU16.Z (SI)(R15*1), K1, Y25; \
	VMOVDQU16.Z (SI)(R15*2), K1, Y26; \
	VMOVDQU16.Z (AX), K1, Y27; \
	VCVTPH2PS   Y24, Z24; \
	VCVTPH2PS   Y25, Z25; \
	VCVTPH2PS   Y26, Z26; \
	VCVTPH2PS   Y27, Z27

#define F4ROWSK \
	VMOVUPS.Z (SI), K1, Z24; \
	VMOVUPS.Z (SI)(R15*1), K1, Z25; \
	VMOVUPS.Z (SI)(R15*2), K1, Z26; \
	VMOVUPS.Z (AX), K1, Z27

// S6CHUNK is one chunk of the 4×6 tile: the rows' chunk at byte offset
// offr, the tokens' at byte offset off.
#define S6CHUNK(rows, offr, off) \
	rows(offr); \
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
#define S6CHUNKK(rowsk) \
	rowsk; \
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
#define S6STEP(rows, rb) \
	S6CHUNK(rows, 0, 0); \
	S6CHUNK(rows, rb, 64); \
	ADDQ $(2*rb), SI; \
	ADDQ $(2*rb), AX; \
	ADDQ $128, DI; \
	ADDQ $128, R10

// SADV moves the pointers past one chunk (tail of a last part).
#define SADV(rb) \
	ADDQ $rb, SI; \
	ADDQ $rb, AX; \
	ADDQ $64, DI; \
	ADDQ $64, R10

// RED12KEEP4 reduces Z0–Z11, stores their results at acc[0…12) and moves
// Z12–Z15 down to Z0–Z3 (HSUM16 needs registers below 16).
#define RED12KEEP4 \
	VMOVAPS Z12, Z28; \
	VMOVAPS Z13, Z29; \
	VMOVAPS Z14, Z30; \
	VMOVAPS Z15, Z31; \
	RED12(BX); \
	VMOVAPS Z28, Z0; \
	VMOVAPS Z29, Z1; \
	VMOVAPS Z30, Z2; \
	VMOVAPS Z31, Z3

// SRED20 reduces Z0–Z11, stores their results at acc[0…12), and moves
// Z12–Z19 down to Z0–Z7 (HSUM16 needs registers below 16), ready for the
// results from acc[12] on; SRED24 reduces all 24 accumulators (pair
// (i, t) at acc[4t+i]).
#define SRED20 \
	RED12KEEP4; \
	VMOVAPS Z16, Z4; \
	VMOVAPS Z17, Z5; \
	VMOVAPS Z18, Z6; \
	VMOVAPS Z19, Z7

// SRED16 reduces the sixteen pairs of a four-token rest tile (Z0–Z15).
#define SRED16 \
	RED12KEEP4; \
	ADDQ $48, BX; \
	RED4(BX)

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

// The prefetches of a step: pfown fetches the rows' lines 2 KB ahead,
// pfnext the next row tile's (CX walks its row 0): one line a row for F16
// (H), two for float32 (F).
#define PFOWNH S4PF(PREFETCHT0, 2048(SI), 2048(AX))
#define PFNEXTH S4PF(PREFETCHT1, (CX), (AX)(R15*4))
#define PFOWNF \
	S4PF(PREFETCHT0, 2048(SI), 2048(AX)); \
	S4PF(PREFETCHT0, 2112(SI), 2112(AX))
#define PFNEXTF \
	S4PF(PREFETCHT1, (CX), (AX)(R15*4)); \
	S4PF(PREFETCHT1, 64(CX), 64(AX)(R15*4))

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
	ONECHAIN6(H4ROWS, H4ROWSK, 32, PFOWNH, PFNEXTH)

// func dotTile4x6PartsAVX512(acc *float32, w, x []float32, ld, n, flags, tiles int)
TEXT ·dotTile4x6PartsAVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), R13
	MOVQ x_base+32(FP), R14
	MOVQ ld+56(FP), R8
	SHLQ $2, R8
	MOVQ R8, R15
	ONECHAIN6(F4ROWS, F4ROWSK, 64, PFOWNF, PFNEXTF)

// The rest tiles, for the one to five tokens left after the 4×6 tiles
// (or a batch of fewer than six): four rows by two tokens (Z0–Z7) or by
// five (Z0–Z19), pair (row i, token t) in Z(4t+i), summed as the 4×6 tile
// sums it. Tokens past the last are computed as copies of it (their
// results are not read). Token t is at DI, R9, R10, R12, R13; each pass
// fetches the next four rows.

// R2CHUNK and R5CHUNK are one chunk of two and five tokens (rows at byte
// offset offr, tokens at byte offset off).
#define R2CHUNK(rows, offr, off) \
	rows(offr); \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(R9), Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	S4FMA(Z29, Z4, Z5, Z6, Z7)

#define R5CHUNK(rows, offr, off) \
	R4CHUNK(rows, offr, off); \
	VMOVUPS off(R13), Z28; \
	S4FMA(Z28, Z16, Z17, Z18, Z19)

#define R4CHUNK(rows, offr, off) \
	rows(offr); \
	VMOVUPS off(DI), Z28; \
	VMOVUPS off(R9), Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	VMOVUPS off(R10), Z30; \
	S4FMA(Z29, Z4, Z5, Z6, Z7); \
	VMOVUPS off(R12), Z31; \
	S4FMA(Z30, Z8, Z9, Z10, Z11); \
	S4FMA(Z31, Z12, Z13, Z14, Z15)

#define R4CHUNKK(rowsk) \
	rowsk; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (R9), K1, Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	VMOVUPS.Z (R10), K1, Z30; \
	S4FMA(Z29, Z4, Z5, Z6, Z7); \
	VMOVUPS.Z (R12), K1, Z31; \
	S4FMA(Z30, Z8, Z9, Z10, Z11); \
	S4FMA(Z31, Z12, Z13, Z14, Z15)

#define R2CHUNKK(rowsk) \
	rowsk; \
	VMOVUPS.Z (DI), K1, Z28; \
	VMOVUPS.Z (R9), K1, Z29; \
	S4FMA(Z28, Z0, Z1, Z2, Z3); \
	S4FMA(Z29, Z4, Z5, Z6, Z7)

#define R5CHUNKK(rowsk) \
	R4CHUNKK(rowsk); \
	VMOVUPS.Z (R13), K1, Z28; \
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

// TACC8, TACC16 and TACC20 are TACC for the first 8, 16 and 20 accumulators.
#define TACC8(op) \
	op(0, Z0); op(64, Z1); op(128, Z2); op(192, Z3); \
	op(256, Z4); op(320, Z5); op(384, Z6); op(448, Z7)

#define TACC16(op) \
	TACC8(op); \
	op(512, Z8); op(576, Z9); op(640, Z10); op(704, Z11); \
	op(768, Z12); op(832, Z13); op(896, Z14); op(960, Z15)

#define TACC20(op) \
	TACC16(op); \
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
	ONECHAINREST(H4ROWS, H4ROWSK, 32, PFNEXTH)

// func dotTile4xNPartsAVX512(acc *float32, w, x []float32, ld, n, flags, tokens int)
TEXT ·dotTile4xNPartsAVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), SI
	MOVQ x_base+32(FP), DI
	MOVQ ld+56(FP), R8
	SHLQ $2, R8
	MOVQ R8, R15
	ONECHAINREST(F4ROWS, F4ROWSK, 64, PFNEXTF)

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
