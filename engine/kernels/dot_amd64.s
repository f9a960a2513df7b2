//go:build amd64 && !purego

#include "go_asm.h"
#include "textflag.h"
#include "rows4_amd64.h"

// tailMask<>+32-4r holds r all-ones lanes followed by zeros: the mask of
// a partial chunk of r < 8 floats.
DATA tailMask<>+0(SB)/4, $0xffffffff
DATA tailMask<>+4(SB)/4, $0xffffffff
DATA tailMask<>+8(SB)/4, $0xffffffff
DATA tailMask<>+12(SB)/4, $0xffffffff
DATA tailMask<>+16(SB)/4, $0xffffffff
DATA tailMask<>+20(SB)/4, $0xffffffff
DATA tailMask<>+24(SB)/4, $0xffffffff
DATA tailMask<>+28(SB)/4, $0xffffffff
DATA tailMask<>+32(SB)/4, $0
DATA tailMask<>+36(SB)/4, $0
DATA tailMask<>+40(SB)/4, $0
DATA tailMask<>+44(SB)/4, $0
DATA tailMask<>+48(SB)/4, $0
DATA tailMask<>+52(SB)/4, $0
DATA tailMask<>+56(SB)/4, $0
DATA tailMask<>+60(SB)/4, $0
GLOBL tailMask<>(SB), RODATA|NOPTR, $64

// TAILMASK loads into m the mask of the first r lanes; t is clobbered.
#define TAILMASK(r, t, m) \
	LEAQ  tailMask<>+32(SB), t; \
	SUBQ  r, t; \
	SUBQ  r, t; \
	SUBQ  r, t; \
	SUBQ  r, t; \
	VMOVDQU (t), m

// HSUM8 adds the eight lanes of y (x is its low half) into the low lane
// of x as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)); t is clobbered.
#define HSUM8(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPS    t, x, x; \
	VMOVHLPS  x, x, t; \
	VADDPS    t, x, x; \
	VMOVSHDUP x, t; \
	VADDSS    t, x, x

// HALVES loads the r (1…7) 16-bit values at SI into the low lanes of X4,
// zeros above.
#define HALVES(r) \
	VPXOR   X4, X4, X4; \
	VPINSRW $0, (SI), X4, X4; \
	CMPQ    r, $1; \
	JBE     halvesDone; \
	VPINSRW $1, 2(SI), X4, X4; \
	CMPQ    r, $2; \
	JBE     halvesDone; \
	VPINSRW $2, 4(SI), X4, X4; \
	CMPQ    r, $3; \
	JBE     halvesDone; \
	VPINSRW $3, 6(SI), X4, X4; \
	CMPQ    r, $4; \
	JBE     halvesDone; \
	VPINSRW $4, 8(SI), X4, X4; \
	CMPQ    r, $5; \
	JBE     halvesDone; \
	VPINSRW $5, 10(SI), X4, X4; \
	CMPQ    r, $6; \
	JBE     halvesDone; \
	VPINSRW $6, 12(SI), X4, X4; \
halvesDone:

// DOTF32 is the dot product of the CX float32s at SI and DI into X0, in
// one chain of 8-float chunks; SI, DI, CX, DX, AX, X1, Y0, Y4, Y5 and Y8
// are clobbered. dotF32AVX2Asm and dotsF32AVX2Asm share it, so their bits
// agree. Its labels are local to the function using it.
#define DOTF32 \
	VXORPS Y0, Y0, Y0; \
	MOVQ   CX, DX; \
	SHRQ   $3, DX; \
	JZ     dottail; \
dotloop: \
	VMOVUPS     (SI), Y4; \
	VFMADD231PS (DI), Y4, Y0; \
	ADDQ        $32, SI; \
	ADDQ        $32, DI; \
	DECQ        DX; \
	JNZ         dotloop; \
dottail: \
	ANDQ        $7, CX; \
	JZ          dotdone; \
	TAILMASK(CX, AX, Y8); \
	VMASKMOVPS  (SI), Y8, Y4; \
	VMASKMOVPS  (DI), Y8, Y5; \
	VFMADD231PS Y5, Y4, Y0; \
dotdone: \
	HSUM8(Y0, X0, X1)

// func dotF32AVX2Asm(a, b []float32) float32
TEXT ·dotF32AVX2Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	DOTF32
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotF16AVX2Asm(a []uint16, b []float32) float32
TEXT ·dotF16AVX2Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	VXORPS Y0, Y0, Y0
	MOVQ   CX, DX
	SHRQ   $3, DX
	JZ     tail

loop:
	VCVTPH2PS   (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        DX
	JNZ         loop

tail:
	ANDQ        $7, CX
	JZ          done
	HALVES(CX)
	VCVTPH2PS   X4, Y4
	TAILMASK(CX, AX, Y8)
	VMASKMOVPS  (DI), Y8, Y5
	VFMADD231PS Y5, Y4, Y0

done:
	HSUM8(Y0, X0, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotBF16AVX2Asm(a []uint16, b []float32) float32
TEXT ·dotBF16AVX2Asm(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	VXORPS Y0, Y0, Y0
	MOVQ   CX, DX
	SHRQ   $3, DX
	JZ     tail

loop:
	VPMOVZXWD   (SI), Y4
	VPSLLD      $16, Y4, Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        DX
	JNZ         loop

tail:
	ANDQ        $7, CX
	JZ          done
	HALVES(CX)
	VPMOVZXWD   X4, Y4
	VPSLLD      $16, Y4, Y4
	TAILMASK(CX, AX, Y8)
	VMASKMOVPS  (DI), Y8, Y5
	VFMADD231PS Y5, Y4, Y0

done:
	HSUM8(Y0, X0, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// BLOCKSCALE sets y (x its low half) to the product of the fp16 scales at
// (w) and (a) in every lane; t (u its low half) is clobbered.
#define BLOCKSCALE(w, a, x, y, u, t) \
	VPBROADCASTW (w), x; \
	VCVTPH2PS    x, y; \
	VPBROADCASTW (a), u; \
	VCVTPH2PS    u, t; \
	VMULPS       t, y, y

// func dotQ8_0AVX2Asm(w, x []byte) float32
TEXT ·dotQ8_0AVX2Asm(SB), NOSPLIT, $0-52
	MOVQ      w_base+0(FP), SI
	MOVQ      w_len+8(FP), CX
	MOVQ      x_base+24(FP), DI
	VXORPS    Y0, Y0, Y0
	VPCMPEQW  Y7, Y7, Y7
	VPSRLW    $15, Y7, Y7 // 1 in every int16

loop:
	CMPQ        CX, $34
	JB          done
	VMOVDQU     2(SI), Y1
	VMOVDQU     2(DI), Y2
	VPSIGNB     Y1, Y1, Y3 // |w|
	VPSIGNB     Y1, Y2, Y4 // x·sign(w)
	VPMADDUBSW  Y4, Y3, Y5 // pairs of |w|·x·sign(w), int16
	VPMADDWD    Y7, Y5, Y5 // quads, int32
	VCVTDQ2PS   Y5, Y5
	BLOCKSCALE(SI, DI, X6, Y6, X8, Y8)
	VFMADD231PS Y6, Y5, Y0
	ADDQ        $34, SI
	ADDQ        $34, DI
	SUBQ        $34, CX
	JMP         loop

done:
	HSUM8(Y0, X0, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotQ4_0AVX2Asm(w, x []byte) float32
TEXT ·dotQ4_0AVX2Asm(SB), NOSPLIT, $0-52
	MOVQ         w_base+0(FP), SI
	MOVQ         w_len+8(FP), CX
	MOVQ         x_base+24(FP), DI
	VXORPS       Y0, Y0, Y0
	VPCMPEQW     Y7, Y7, Y7
	VPSRLW       $15, Y7, Y7 // 1 in every int16
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X9
	VPBROADCASTD X9, Y9 // low-nibble mask
	MOVL         $0x08080808, AX
	VMOVD        AX, X10
	VPBROADCASTD X10, Y10 // 8 in every byte

loop:
	CMPQ        CX, $18
	JB          done
	VMOVDQU     2(SI), X1
	VPSRLW      $4, X1, X2
	VINSERTI128 $1, X2, Y1, Y1
	VPAND       Y9, Y1, Y1  // q: elements 0–15 low lane, 16–31 high lane
	VMOVDQU     2(DI), Y2
	VPMADDUBSW  Y2, Y1, Y3  // pairs of q·x
	VPMADDUBSW  Y2, Y10, Y4 // pairs of 8·x
	VPSUBW      Y4, Y3, Y3  // pairs of (q−8)·x
	VPMADDWD    Y7, Y3, Y3
	VCVTDQ2PS   Y3, Y3
	BLOCKSCALE(SI, DI, X6, Y6, X8, Y8)
	VFMADD231PS Y6, Y3, Y0
	ADDQ        $18, SI
	ADDQ        $34, DI
	SUBQ        $18, CX
	JMP         loop

done:
	HSUM8(Y0, X0, X1)
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// TILEROW3, TILEROW2 and TILEROW1 load one weight row's 8 columns at w
// with ld (VMOVUPS, or VCVTPH2PS for F16 rows) into Y15 and add its
// products with the tokens' activations in Y12, Y13, Y14 (as many as the
// tile has) into the row's accumulators.
#define TILEROW3(ld, w, a0, a1, a2) \
	ld          w, Y15; \
	VFMADD231PS Y12, Y15, a0; \
	VFMADD231PS Y13, Y15, a1; \
	VFMADD231PS Y14, Y15, a2

#define TILEROW2(ld, w, a0, a1) \
	ld          w, Y15; \
	VFMADD231PS Y12, Y15, a0; \
	VFMADD231PS Y13, Y15, a1

#define TILEROW1(ld, w, a0) \
	ld          w, Y15; \
	VFMADD231PS Y12, Y15, a0

// The float tiles' accumulators, four at a time (a token's four rows):
// loaded from, zeroed, saved to BX; ACC4REDUCE reduces each as
// dotF32AVX2Asm does and stores the sums at BX (token-major). The 4×3
// tiles have twelve, Y0–Y11 (pair row i, token t in Y(4t+i)): ACC12*.
#define ACC4LOAD(a0, a1, a2, a3, off) \
	VMOVUPS (off)(BX), a0; \
	VMOVUPS (off+32)(BX), a1; \
	VMOVUPS (off+64)(BX), a2; \
	VMOVUPS (off+96)(BX), a3

#define ACC4ZERO(a0, a1, a2, a3) \
	VXORPS a0, a0, a0; \
	VXORPS a1, a1, a1; \
	VXORPS a2, a2, a2; \
	VXORPS a3, a3, a3

#define ACC4STORE(a0, a1, a2, a3, off) \
	VMOVUPS a0, (off)(BX); \
	VMOVUPS a1, (off+32)(BX); \
	VMOVUPS a2, (off+64)(BX); \
	VMOVUPS a3, (off+96)(BX)

// ACC4REDUCE reduces four accumulators and stores their sums at off(BX).
#define ACC4REDUCE(a0, a1, a2, a3, x0, x1, x2, x3, off) \
	HSUM8(a0, x0, X15); \
	HSUM8(a1, x1, X15); \
	HSUM8(a2, x2, X15); \
	HSUM8(a3, x3, X15); \
	VMOVSS x0, (off)(BX); \
	VMOVSS x1, (off+4)(BX); \
	VMOVSS x2, (off+8)(BX); \
	VMOVSS x3, (off+12)(BX)

#define ACC12LOAD \
	ACC4LOAD(Y0, Y1, Y2, Y3, 0); \
	ACC4LOAD(Y4, Y5, Y6, Y7, 128); \
	ACC4LOAD(Y8, Y9, Y10, Y11, 256)

#define ACC12ZERO \
	ACC4ZERO(Y0, Y1, Y2, Y3); \
	ACC4ZERO(Y4, Y5, Y6, Y7); \
	ACC4ZERO(Y8, Y9, Y10, Y11)

#define ACC12STORE \
	ACC4STORE(Y0, Y1, Y2, Y3, 0); \
	ACC4STORE(Y4, Y5, Y6, Y7, 128); \
	ACC4STORE(Y8, Y9, Y10, Y11, 256)

#define ACC12REDUCE \
	ACC4REDUCE(Y0, Y1, Y2, Y3, X0, X1, X2, X3, 0); \
	ACC4REDUCE(Y4, Y5, Y6, Y7, X4, X5, X6, X7, 16); \
	ACC4REDUCE(Y8, Y9, Y10, Y11, X8, X9, X10, X11, 32)

// func dotTile4x3PartsAVX2(acc *float32, w, x []float32, ld, n, flags, tiles int)
//
// The 4×3 float tile in parts along the columns: pair (row i, token t) has
// one accumulator, Y(4t+i), and sees exactly dotF32AVX2Asm's FMAs; a part
// runs n columns (a multiple of 8 unless it is the last), starting from the
// accumulators saved in acc (flags&1) and saving them there, or, in the last
// part (flags&2), ending with the masked partial chunk and dotF32's
// reduction, the twelve results stored at acc[0…11] (token-major). One call
// runs the part for tiles token tiles in a row (tile j's tokens 3j…3j+2,
// its accumulators at acc+384j) over the same four rows. Rows and tokens
// are ld floats apart. Y12–Y14 hold the three tokens' activations, Y15 one
// row's weights at a time.
TEXT ·dotTile4x3PartsAVX2(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), R13
	MOVQ x_base+32(FP), R14
	MOVQ ld+56(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ n+64(FP), DX
	MOVQ flags+72(FP), R10
	MOVQ tiles+80(FP), R12

ftile:
	MOVQ  R13, SI
	MOVQ  R14, DI
	TESTQ $1, R10
	JZ    fzero
	ACC12LOAD
	JMP   fstart

fzero:
	ACC12ZERO

fstart:
	MOVQ DX, R11
	SHRQ $3, R11
	JZ   frest

floop:
	VMOVUPS (DI), Y12
	VMOVUPS (DI)(R8*1), Y13
	VMOVUPS (DI)(R8*2), Y14
	TILEROW3(VMOVUPS, (SI), Y0, Y4, Y8)
	TILEROW3(VMOVUPS, (SI)(R8*1), Y1, Y5, Y9)
	TILEROW3(VMOVUPS, (SI)(R8*2), Y2, Y6, Y10)
	TILEROW3(VMOVUPS, (SI)(R9*1), Y3, Y7, Y11)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ R11
	JNZ  floop

frest:
	TESTQ $2, R10
	JNZ   flast
	ACC12STORE
	JMP   fnext

flast:
	MOVQ DX, CX
	ANDQ $7, CX
	JZ   freduce
	LEAQ tailMask<>+32(SB), AX
	SUBQ CX, AX
	SUBQ CX, AX
	SUBQ CX, AX
	SUBQ CX, AX
	VMOVDQU    (AX), Y15
	VMASKMOVPS (DI), Y15, Y12
	VMASKMOVPS (DI)(R8*1), Y15, Y13
	VMASKMOVPS (DI)(R8*2), Y15, Y14
	VMOVDQU    (AX), Y15
	VMASKMOVPS (SI), Y15, Y15
	VFMADD231PS Y12, Y15, Y0
	VFMADD231PS Y13, Y15, Y4
	VFMADD231PS Y14, Y15, Y8
	VMOVDQU    (AX), Y15
	VMASKMOVPS (SI)(R8*1), Y15, Y15
	VFMADD231PS Y12, Y15, Y1
	VFMADD231PS Y13, Y15, Y5
	VFMADD231PS Y14, Y15, Y9
	VMOVDQU    (AX), Y15
	VMASKMOVPS (SI)(R8*2), Y15, Y15
	VFMADD231PS Y12, Y15, Y2
	VFMADD231PS Y13, Y15, Y6
	VFMADD231PS Y14, Y15, Y10
	VMOVDQU    (AX), Y15
	VMASKMOVPS (SI)(R9*1), Y15, Y15
	VFMADD231PS Y12, Y15, Y3
	VFMADD231PS Y13, Y15, Y7
	VFMADD231PS Y14, Y15, Y11

freduce:
	ACC12REDUCE

fnext:
	ADDQ $1536, BX
	ADDQ R9, R14
	DECQ R12
	JNZ  ftile
	VZEROUPPER
	RET

// HSTEP3 is one step of the F16 4×3 tile: eight columns of the three
// tokens (DI, R8 bytes apart) and the four rows (SI, AX bytes apart).
#define HSTEP3 \
	VMOVUPS (DI), Y12; \
	VMOVUPS (DI)(R8*1), Y13; \
	VMOVUPS (DI)(R8*2), Y14; \
	TILEROW3(VCVTPH2PS, (SI), Y0, Y4, Y8); \
	TILEROW3(VCVTPH2PS, (SI)(AX*1), Y1, Y5, Y9); \
	TILEROW3(VCVTPH2PS, (SI)(AX*2), Y2, Y6, Y10); \
	TILEROW3(VCVTPH2PS, (SI)(CX*1), Y3, Y7, Y11)

// func dotTile4x3PartsF16AVX2(acc *float32, w []uint16, x []float32, ld, n, flags, tiles int)
//
// dotTile4x3PartsAVX2 with F16 rows, widened in registers (VCVTPH2PS,
// exact): each pair sees the same FMAs as with the rows widened first, so
// the same bits. Every part, the last too, is a multiple of 8 columns (the
// Go side checks). Rows are ld halves apart, tokens ld floats.
TEXT ·dotTile4x3PartsF16AVX2(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), R13
	MOVQ x_base+32(FP), R14
	MOVQ ld+56(FP), R8
	LEAQ (R8)(R8*1), AX
	LEAQ (AX)(AX*2), CX
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ n+64(FP), DX
	MOVQ flags+72(FP), R10
	MOVQ tiles+80(FP), R12

htile:
	MOVQ  R13, SI
	MOVQ  R14, DI
	TESTQ $1, R10
	JZ    hzero
	ACC12LOAD
	JMP   hstart

hzero:
	ACC12ZERO

hstart:
	MOVQ DX, R11
	SHRQ $3, R11
	JZ   hrest
	MOVQ tiles+80(FP), R15
	SUBQ R12, R15
	CMPQ R15, $1
	JNE  hloop

	// The second tile reads these rows from cache: fetch the next four
	// rows (the row tile the product takes next) meanwhile, one line of
	// each per 64 bytes.
	LEAQ (SI)(AX*4), R15

hnloop:
	TESTQ $63, SI
	JNZ   hnpf
	PREFETCHT1 (R15)
	PREFETCHT1 (R15)(AX*1)
	PREFETCHT1 (R15)(AX*2)
	PREFETCHT1 (R15)(CX*1)

hnpf:
	HSTEP3
	ADDQ $16, SI
	ADDQ $16, R15
	ADDQ $32, DI
	DECQ R11
	JNZ  hnloop
	JMP  hrest

hloop:
	HSTEP3
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ R11
	JNZ  hloop

hrest:
	TESTQ $2, R10
	JNZ   hlast
	ACC12STORE
	JMP   hnext

hlast:
	ACC12REDUCE

hnext:
	ADDQ $1536, BX
	ADDQ R9, R14
	DECQ R12
	JNZ  htile
	VZEROUPPER
	RET

// The 4×2 and 4×1 tiles keep ACC12's layout: pair (row i, token t) in
// Y(4t+i). They run after the 4×3 tiles, from cache, and when the flags
// ask (tileNext: they are the second pass) prefetch the next row tile as
// the 4×3 kernel's second tile does.

// RESTPF prefetches the next row tile's line of each row (R15 walks row 4)
// once per 64 bytes of SI when the flags (R10) have tileNext; else it
// jumps to skip.
#define RESTPF(skip) \
	TESTQ      $63, SI; \
	JNZ        skip; \
	TESTQ      $4, R10; \
	JZ         skip; \
	PREFETCHT1 (R15); \
	PREFETCHT1 (R15)(AX*1); \
	PREFETCHT1 (R15)(AX*2); \
	PREFETCHT1 (R15)(CX*1)

// func dotTile4xNPartsF16AVX2(acc *float32, w []uint16, x []float32, ld, n, flags, tokens int)
//
// dotTile4x3PartsF16AVX2 for one tile of two tokens or one (the rest of a
// batch that three does not divide): the same FMAs per pair, so the same
// bits, and no pair computed twice.
TEXT ·dotTile4xNPartsF16AVX2(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), BX
	MOVQ w_base+8(FP), SI
	MOVQ x_base+32(FP), DI
	MOVQ ld+56(FP), R8
	LEAQ (R8)(R8*1), AX
	LEAQ (AX)(AX*2), CX
	SHLQ $2, R8
	MOVQ n+64(FP), R11
	SHRQ $3, R11
	MOVQ flags+72(FP), R10
	MOVQ tokens+80(FP), R12
	CMPQ R12, $2
	JNE  one
	TESTQ $1, R10
	JZ    twozero
	ACC4LOAD(Y0, Y1, Y2, Y3, 0)
	ACC4LOAD(Y4, Y5, Y6, Y7, 128)
	JMP   twostart

twozero:
	ACC4ZERO(Y0, Y1, Y2, Y3)
	ACC4ZERO(Y4, Y5, Y6, Y7)

twostart:
	TESTQ R11, R11
	JZ    twodone
	LEAQ  (SI)(AX*4), R15

twoloop:
	RESTPF(twopf)

twopf:
	VMOVUPS (DI), Y12
	VMOVUPS (DI)(R8*1), Y13
	TILEROW2(VCVTPH2PS, (SI), Y0, Y4)
	TILEROW2(VCVTPH2PS, (SI)(AX*1), Y1, Y5)
	TILEROW2(VCVTPH2PS, (SI)(AX*2), Y2, Y6)
	TILEROW2(VCVTPH2PS, (SI)(CX*1), Y3, Y7)
	ADDQ        $16, SI
	ADDQ        $16, R15
	ADDQ        $32, DI
	DECQ        R11
	JNZ         twoloop

twodone:
	TESTQ $2, R10
	JNZ   tworeduce
	ACC4STORE(Y0, Y1, Y2, Y3, 0)
	ACC4STORE(Y4, Y5, Y6, Y7, 128)
	JMP   ret

tworeduce:
	ACC4REDUCE(Y0, Y1, Y2, Y3, X0, X1, X2, X3, 0)
	ACC4REDUCE(Y4, Y5, Y6, Y7, X4, X5, X6, X7, 16)
	JMP ret

one:
	TESTQ $1, R10
	JZ    onezero
	ACC4LOAD(Y0, Y1, Y2, Y3, 0)
	JMP   onestart

onezero:
	ACC4ZERO(Y0, Y1, Y2, Y3)

onestart:
	TESTQ R11, R11
	JZ    onedone
	LEAQ  (SI)(AX*4), R15

oneloop:
	RESTPF(onepf)

onepf:
	VMOVUPS (DI), Y12
	TILEROW1(VCVTPH2PS, (SI), Y0)
	TILEROW1(VCVTPH2PS, (SI)(AX*1), Y1)
	TILEROW1(VCVTPH2PS, (SI)(AX*2), Y2)
	TILEROW1(VCVTPH2PS, (SI)(CX*1), Y3)
	ADDQ        $16, SI
	ADDQ        $16, R15
	ADDQ        $32, DI
	DECQ        R11
	JNZ         oneloop

onedone:
	TESTQ $2, R10
	JNZ   onereduce
	ACC4STORE(Y0, Y1, Y2, Y3, 0)
	JMP   ret

onereduce:
	ACC4REDUCE(Y0, Y1, Y2, Y3, X0, X1, X2, X3, 0)

ret:
	VZEROUPPER
	RET

// The four-row decode kernels (F16, BF16 and float32 rows): the set's
// one-row dot for four rows (n values each, stride values apart, n a
// multiple of 8; the Go wrappers take other lengths to the one-row dot) at
// once, each row its own accumulator, the activations loaded once. A
// single chain waits on its FMA's latency, 8 values per 4 cycles: slower
// than memory for 16-bit rows. ROWS4AVX2 is the body after the operands'
// loads (SI row 0, DI x, DX n, R8 the row stride in bytes, R9 three);
// load(off) puts the chunk at byte offset off of the four rows into Y4–Y7
// as float32, rb is a chunk's bytes in a row.
#define ROWS4AVX2(load, rb) \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	SHRQ   $3, DX; \
	JZ     done; \
loop: \
	R4PF((64*rb)); \
	VMOVUPS     (DI), Y8; \
	load; \
	VFMADD231PS Y8, Y4, Y0; \
	VFMADD231PS Y8, Y5, Y1; \
	VFMADD231PS Y8, Y6, Y2; \
	VFMADD231PS Y8, Y7, Y3; \
	ADDQ        $rb, SI; \
	ADDQ        $32, DI; \
	DECQ        DX; \
	JNZ         loop; \
done: \
	HSUM8(Y0, X0, X8); \
	HSUM8(Y1, X1, X8); \
	HSUM8(Y2, X2, X8); \
	HSUM8(Y3, X3, X8)

#define H4AVX2 R4LD(VCVTPH2PS, 0, Y4, Y5, Y6, Y7)

#define B4AVX2 \
	R4LD(VPMOVZXWD, 0, Y4, Y5, Y6, Y7); \
	R4SHL16(Y4, Y5, Y6, Y7)

#define F4AVX2 R4LD(VMOVUPS, 0, Y4, Y5, Y6, Y7)

// func dotF16Rows4AVX2Asm(out *[4]float32, w []uint16, x []float32, n, stride int)
TEXT ·dotF16Rows4AVX2Asm(SB), NOSPLIT, $0-72
	ROWS4ENTRY(1)
	ROWS4AVX2(H4AVX2, 16)
	ROWS4EXIT

// func dotBF16Rows4AVX2Asm(out *[4]float32, w []uint16, x []float32, n, stride int)
TEXT ·dotBF16Rows4AVX2Asm(SB), NOSPLIT, $0-72
	ROWS4ENTRY(1)
	ROWS4AVX2(B4AVX2, 16)
	ROWS4EXIT

// func dotF32Rows4AVX2Asm(out *[4]float32, w []float32, x []float32, n, stride int)
TEXT ·dotF32Rows4AVX2Asm(SB), NOSPLIT, $0-72
	ROWS4ENTRY(2)
	ROWS4AVX2(F4AVX2, 32)
	ROWS4EXIT

// func quantizeQ8_0AVX2Asm(dst []byte, x []float32)
// QuantizeQ8_0 for whole blocks, bit for bit on finite input; see
// quantizeQ8_0AVX512Asm for the method.
DATA q8a<>+0(SB)/4, $0x7fffffff  // abs mask
DATA q8a<>+4(SB)/4, $0x80000000  // sign mask
DATA q8a<>+8(SB)/4, $0x3f800000  // 1
DATA q8a<>+12(SB)/4, $0x3f000000 // 0.5
DATA q8a<>+16(SB)/4, $0x42fe0000 // 127
GLOBL q8a<>(SB), RODATA|NOPTR, $20

DATA q8perm<>+0(SB)/4, $0
DATA q8perm<>+4(SB)/4, $4
DATA q8perm<>+8(SB)/4, $1
DATA q8perm<>+12(SB)/4, $5
DATA q8perm<>+16(SB)/4, $2
DATA q8perm<>+20(SB)/4, $6
DATA q8perm<>+24(SB)/4, $3
DATA q8perm<>+28(SB)/4, $7
GLOBL q8perm<>(SB), RODATA|NOPTR, $32

// Q8ROUND rounds y (already x·(1/d)) half away from zero in place and keeps
// each integer's low byte (Y9 = 0xff per lane), as Go's int8 conversion and
// VPMOVDB do; t, u are clobbered.
#define Q8ROUND(y, t, u) \
	VROUNDPS $11, y, t; \
	VSUBPS   t, y, u; \
	VANDPS   Y12, u, u; \
	VCMPPS   $0x1d, Y15, u, u; \
	VANDPS   Y13, y, y; \
	VORPS    Y14, y, y; \
	VANDPS   u, y, y; \
	VADDPS   y, t, y; \
	VCVTTPS2DQ y, y; \
	VPAND    Y9, y, y

TEXT ·quantizeQ8_0AVX2Asm(SB), NOSPLIT, $0-48
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	SHRQ         $5, CX
	JZ           qdone
	VBROADCASTSS q8a<>+0(SB), Y12
	VBROADCASTSS q8a<>+4(SB), Y13
	VBROADCASTSS q8a<>+8(SB), Y14
	VBROADCASTSS q8a<>+12(SB), Y15
	VMOVSS       q8a<>+16(SB), X11
	VMOVDQU      q8perm<>(SB), Y10
	MOVL         $0xff, AX
	VMOVD        AX, X9
	VPBROADCASTD X9, Y9

qloop:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y1
	VMOVUPS      64(SI), Y2
	VMOVUPS      96(SI), Y3
	VANDPS       Y12, Y0, Y4
	VANDPS       Y12, Y1, Y5
	VANDPS       Y12, Y2, Y6
	VANDPS       Y12, Y3, Y7
	VMAXPS       Y5, Y4, Y4
	VMAXPS       Y7, Y6, Y6
	VMAXPS       Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VMAXPS       X5, X4, X4
	VPERMILPS    $0x4e, X4, X5
	VMAXPS       X5, X4, X4
	VPERMILPS    $0xb1, X4, X5
	VMAXPS       X5, X4, X4
	VDIVSS       X11, X4, X4  // d = amax / 127
	VCVTPS2PH    $0, X4, X5
	VMOVD        X5, AX
	MOVW         AX, (DI)
	VMOVD        X4, AX
	TESTL        AX, AX
	JZ           qzero
	VDIVSS       X4, X14, X6  // 1/d (X14's low lane is 1)
	VBROADCASTSS X6, Y6
	VMULPS       Y6, Y0, Y0
	VMULPS       Y6, Y1, Y1
	VMULPS       Y6, Y2, Y2
	VMULPS       Y6, Y3, Y3
	Q8ROUND(Y0, Y4, Y5)
	Q8ROUND(Y1, Y4, Y5)
	Q8ROUND(Y2, Y4, Y5)
	Q8ROUND(Y3, Y4, Y5)
	VPACKUSDW    Y1, Y0, Y0
	VPACKUSDW    Y3, Y2, Y2
	VPACKUSWB    Y2, Y0, Y0
	VPERMD       Y0, Y10, Y0
	VMOVDQU      Y0, 2(DI)
	JMP          qnext

qzero:
	VPXOR   Y0, Y0, Y0
	VMOVDQU Y0, 2(DI)

qnext:
	ADDQ $128, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  qloop

qdone:
	VZEROUPPER
	RET

// func axpyAVX2Asm(y []float32, a float32, x []float32)
// y[i] += a·x[i], multiply then add, as the generic code; len(x) ≥ len(y).
TEXT ·axpyAVX2Asm(SB), NOSPLIT, $0-56
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	VBROADCASTSS a+24(FP), Y0
	MOVQ         x_base+32(FP), SI

aloop:
	CMPQ    CX, $16
	JB      a8
	VMULPS  (SI), Y0, Y1
	VMULPS  32(SI), Y0, Y2
	VADDPS  (DI), Y1, Y1
	VADDPS  32(DI), Y2, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     aloop

a8:
	CMPQ    CX, $8
	JB      atail
	VMULPS  (SI), Y0, Y1
	VADDPS  (DI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX

atail:
	TESTQ      CX, CX
	JZ         adone
	TAILMASK(CX, AX, Y3)
	VMASKMOVPS (SI), Y3, Y1
	VMASKMOVPS (DI), Y3, Y2
	VMULPS     Y1, Y0, Y1
	VADDPS     Y2, Y1, Y1
	VMASKMOVPS Y1, Y3, (DI)

adone:
	VZEROUPPER
	RET

// The packed (x8) kernels for AVX2 (see x8.go): no VPDPBUSD, so each lane's
// four products come from VPMADDUBSW (pairs, into int16, exact here) and
// VPMADDWD by ones (into int32). A ymm holds four rows' two lanes each, so
// a block is taken as two halves, rows 0–3 then 4–7. Q4_0 nibbles are
// unsigned and the −8·Σx correction starts the lane sum; Q8_0 quants are
// multiplied as |w|·(x·sign w), which needs no correction. Each lane's
// integer sum equals the AVX-512 kernels' and the float operations after it
// are the same, so both sets give the same bits on packed weights. Y15
// holds int16 ones, Y14 the nibble mask; per half Y1–Y4 the rows' quants
// for elements 0–7, 8–15, 16–23, 24–31 and Y5 their scales per lane.

DATA x8IdxA<>+0(SB)/8, $0x0000000000000000
DATA x8IdxA<>+8(SB)/8, $0x0000000100000001
DATA x8IdxA<>+16(SB)/8, $0x0000000200000002
DATA x8IdxA<>+24(SB)/8, $0x0000000300000003
DATA x8IdxA<>+32(SB)/8, $0x0000000400000004
DATA x8IdxA<>+40(SB)/8, $0x0000000500000005
DATA x8IdxA<>+48(SB)/8, $0x0000000600000006
DATA x8IdxA<>+56(SB)/8, $0x0000000700000007
GLOBL x8IdxA<>(SB), RODATA|NOPTR, $64

// The nibble mask and the int16 ones, as whole registers.
DATA x8Nibbles<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA x8Nibbles<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA x8Nibbles<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA x8Nibbles<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL x8Nibbles<>(SB), RODATA|NOPTR, $32

DATA x8Ones16<>+0(SB)/8, $0x0001000100010001
DATA x8Ones16<>+8(SB)/8, $0x0001000100010001
DATA x8Ones16<>+16(SB)/8, $0x0001000100010001
DATA x8Ones16<>+24(SB)/8, $0x0001000100010001
GLOBL x8Ones16<>(SB), RODATA|NOPTR, $32

#define X8ACONST \
	VMOVDQU x8Ones16<>(SB), Y15; \
	VMOVDQU x8Nibbles<>(SB), Y14

// X8ASCALES widens the scales of the half h (0 or 1) of the block at w.
#define X8ASCALES(w, h) \
	VCVTPH2PS (w), Y5; \
	VMOVDQU   x8IdxA<>+(32*h)(SB), Y6; \
	VPERMPS   Y5, Y6, Y5

#define Q8X8AW(w, h) \
	VMOVDQU (16+32*h)(w), Y1; \
	VMOVDQU (80+32*h)(w), Y2; \
	VMOVDQU (144+32*h)(w), Y3; \
	VMOVDQU (208+32*h)(w), Y4; \
	X8ASCALES(w, h)

// Q8X8APROD adds to the int32 lanes of Y7 the products of quants wk with
// the activation bytes off … off+7 of the block, which the wide prepared
// form holds four times at 4·off(p).
#define Q8X8APROD(p, off, wk) \
	VMOVDQU      (4*off)(p), Y8; \
	VPSIGNB      wk, Y8, Y8; \
	VPABSB       wk, Y9; \
	VPMADDUBSW   Y8, Y9, Y9; \
	VPMADDWD     Y15, Y9, Y9; \
	VPADDD       Y9, Y7, Y7

// X8AFIN converts the lane sums, scales them by d_w·d_x and adds them to acc.
#define X8AFIN(p, acc) \
	VCVTDQ2PS    Y7, Y7; \
	VMULPS       160(p), Y5, Y8; \
	VFMADD231PS  Y8, Y7, acc

#define Q8X8ATOK(p, acc) \
	VPXOR Y7, Y7, Y7; \
	Q8X8APROD(p, 0, Y1); \
	Q8X8APROD(p, 8, Y2); \
	Q8X8APROD(p, 16, Y3); \
	Q8X8APROD(p, 24, Y4); \
	X8AFIN(p, acc)

// X8AOUT adds each row's two lanes of acc (with tmp) and stores the four
// sums at off(DX).
#define X8AOUT(acc, xacc, off, tmp) \
	VMOVSHDUP acc, tmp; \
	VADDPS    tmp, acc, acc; \
	VSHUFPS   $0x88, acc, acc, acc; \
	VPERMQ    $0x08, acc, acc; \
	VMOVUPS   xacc, off(DX)

// X8A is the body of a kernel for one (R9 = 0) or two tokens (R9 the
// prepared rows' stride): accumulators Y10, Y11 (token 0, halves 0 and 1)
// and Y12, Y13 (token 1).
#define X8A(load, tok, bb) \
	X8ACONST; \
	VXORPS Y10, Y10, Y10; \
	VXORPS Y11, Y11, Y11; \
	VXORPS Y12, Y12, Y12; \
	VXORPS Y13, Y13, Y13; \
	LEAQ   (DI)(R9*1), R11; \
	TESTQ  CX, CX; \
	JZ     done; \
loop: \
	load(SI, 0); \
	tok(DI, Y10); \
	TESTQ R9, R9; \
	JZ    half1; \
	tok(R11, Y12); \
half1: \
	load(SI, 1); \
	tok(DI, Y11); \
	TESTQ R9, R9; \
	JZ    next; \
	tok(R11, Y13); \
next: \
	ADDQ $bb, SI; \
	ADDQ $const_x8WideBytes, DI; \
	ADDQ $const_x8WideBytes, R11; \
	DECQ CX; \
	JNZ  loop; \
done: \
	MOVQ out+0(FP), DX; \
	X8AOUT(Y10, X10, 0, Y6); \
	X8AOUT(Y11, X11, 16, Y6); \
	TESTQ R9, R9; \
	JZ    ret; \
	X8AOUT(Y12, X12, 32, Y6); \
	X8AOUT(Y13, X13, 48, Y6); \
ret: \
	VZEROUPPER; \
	RET

// func q8x8AVX2Asm(out *[16]float32, w, p []byte, blocks, pstride int)
TEXT ·q8x8AVX2Asm(SB), NOSPLIT, $0-72
	MOVQ w_base+8(FP), SI
	MOVQ p_base+32(FP), DI
	MOVQ blocks+56(FP), CX
	MOVQ pstride+64(FP), R9
	X8A(Q8X8AW, Q8X8ATOK, 272)

// Q4X8GTOK is Q4X4TOK for the one-token kernel: the lanes' d_w·d_x are
// in sc, made once per block for both halves.
#define Q4X8GTOK(acc, sc) \
	VPMADDUBSW  0(DI), Y1, Y7; \
	VPMADDUBSW  32(DI), Y2, Y9; \
	VPADDW      Y9, Y7, Y7; \
	VPMADDUBSW  64(DI), Y3, Y9; \
	VPADDW      Y9, Y7, Y7; \
	VPMADDUBSW  96(DI), Y4, Y9; \
	VPADDW      Y9, Y7, Y7; \
	VPMADDWD    Y15, Y7, Y7; \
	VPADDD      128(DI), Y7, Y7; \
	VCVTDQ2PS   Y7, Y7; \
	VFMADD231PS sc, Y7, acc

#define Q4X8GW(h) \
	VMOVDQU (16+32*h)(SI), Y1; \
	VMOVDQU (80+32*h)(SI), Y2; \
	VPSRLW  $4, Y1, Y3; \
	VPSRLW  $4, Y2, Y4; \
	VPAND   Y14, Y1, Y1; \
	VPAND   Y14, Y2, Y2; \
	VPAND   Y14, Y3, Y3; \
	VPAND   Y14, Y4, Y4

// func q4x8GemvAVX2Asm(out *[16]float32, w, p []byte, blocks int)
//
// q4x8AVX2Asm for one token, each lane's operations the same: d_w·d_x is
// multiplied once per block for the eight rows and then spread to the two
// halves' lanes (the same products as spreading d_w first).
TEXT ·q4x8GemvAVX2Asm(SB), NOSPLIT, $0-64
	MOVQ    w_base+8(FP), SI
	MOVQ    p_base+32(FP), DI
	MOVQ    blocks+56(FP), CX
	X8ACONST
	VMOVDQU x8IdxA<>+0(SB), Y12
	VMOVDQU x8IdxA<>+32(SB), Y13
	VXORPS  Y10, Y10, Y10
	VXORPS  Y11, Y11, Y11
	TESTQ   CX, CX
	JZ      gdone

gloop:
	VCVTPH2PS    (SI), Y5
	VMULPS       160(DI), Y5, Y5
	VPERMPS      Y5, Y12, Y6
	VPERMPS      Y5, Y13, Y5
	Q4X8GW(0)
	Q4X8GTOK(Y10, Y6)
	Q4X8GW(1)
	Q4X8GTOK(Y11, Y5)
	ADDQ $144, SI
	ADDQ $const_x8WideBytes, DI
	DECQ CX
	JNZ  gloop

gdone:
	MOVQ out+0(FP), DX
	X8AOUT(Y10, X10, 0, Y6)
	X8AOUT(Y11, X11, 16, Y6)
	VZEROUPPER
	RET

// The four-token Q4_0 tile. Eight accumulators (Y0–Y3: tokens 0–3 of rows
// 0–3, Y4–Y7: of rows 4–7), the half's unpacked quants in Y8–Y11 and its
// scales per lane in Y12, so the nibble mask and the int16 ones come from
// memory. Per (token, half) the operations are the one-token kernel's.

#define Q4X4W(h) \
	VMOVDQU   (16+32*h)(SI), Y8; \
	VMOVDQU   (80+32*h)(SI), Y9; \
	VPSRLW    $4, Y8, Y10; \
	VPSRLW    $4, Y9, Y11; \
	VPAND     x8Nibbles<>(SB), Y8, Y8; \
	VPAND     x8Nibbles<>(SB), Y9, Y9; \
	VPAND     x8Nibbles<>(SB), Y10, Y10; \
	VPAND     x8Nibbles<>(SB), Y11, Y11; \
	VCVTPH2PS (SI), Y12; \
	VMOVDQU   x8IdxA<>+(32*h)(SB), Y13; \
	VPERMPS   Y12, Y13, Y12

// Q4X4TOK adds the half's products with the token whose wide prepared
// block is at p into acc. The four VPMADDUBSW results are summed in int16
// before widening: each is within ±2·15·127, so the sum of four (±15,240)
// cannot overflow.
#define Q4X4TOK(p, acc) \
	VPMADDUBSW  0(p), Y8, Y14; \
	VPMADDUBSW  32(p), Y9, Y15; \
	VPADDW      Y15, Y14, Y14; \
	VPMADDUBSW  64(p), Y10, Y15; \
	VPADDW      Y15, Y14, Y14; \
	VPMADDUBSW  96(p), Y11, Y15; \
	VPADDW      Y15, Y14, Y14; \
	VPMADDWD    x8Ones16<>(SB), Y14, Y14; \
	VPADDD      128(p), Y14, Y14; \
	VCVTDQ2PS   Y14, Y14; \
	VMULPS      160(p), Y12, Y13; \
	VFMADD231PS Y13, Y14, acc

// func q4x8x4AVX2Asm(out *[32]float32, w, p []byte, blocks, pstride int)
TEXT ·q4x8x4AVX2Asm(SB), NOSPLIT, $0-72
	MOVQ   w_base+8(FP), SI
	MOVQ   p_base+32(FP), DI
	MOVQ   blocks+56(FP), CX
	MOVQ   pstride+64(FP), R9
	LEAQ   (DI)(R9*1), R10
	LEAQ   (R10)(R9*1), R11
	LEAQ   (R11)(R9*1), R12
	IMUL3Q $144, CX, R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ  CX, CX
	JZ     done

loop:
	// The same block of the next group: it is read from memory while
	// this group's blocks are multiplied from the caches.
	PREFETCHT0 (SI)(R13*1)
	PREFETCHT0 64(SI)(R13*1)
	PREFETCHT0 128(SI)(R13*1)
	Q4X4W(0)
	Q4X4TOK(DI, Y0)
	Q4X4TOK(R10, Y1)
	Q4X4TOK(R11, Y2)
	Q4X4TOK(R12, Y3)
	Q4X4W(1)
	Q4X4TOK(DI, Y4)
	Q4X4TOK(R10, Y5)
	Q4X4TOK(R11, Y6)
	Q4X4TOK(R12, Y7)
	ADDQ $144, SI
	ADDQ $const_x8WideBytes, DI
	ADDQ $const_x8WideBytes, R10
	ADDQ $const_x8WideBytes, R11
	ADDQ $const_x8WideBytes, R12
	DECQ CX
	JNZ  loop

done:
	MOVQ out+0(FP), DX
	X8AOUT(Y0, X0, 0, Y8)
	X8AOUT(Y4, X4, 16, Y8)
	X8AOUT(Y1, X1, 32, Y8)
	X8AOUT(Y5, X5, 48, Y8)
	X8AOUT(Y2, X2, 64, Y8)
	X8AOUT(Y6, X6, 80, Y8)
	X8AOUT(Y3, X3, 96, Y8)
	X8AOUT(Y7, X7, 112, Y8)
	VZEROUPPER
	RET

// func dotsF32AVX2Asm(out, q, keys []float32, stride int)
// out[i] = q · keys[i*stride:][:len(q)], each row with dotF32AVX2Asm's steps
// (so the same bits); rows are independent, so the core overlaps them.
TEXT ·dotsF32AVX2Asm(SB), NOSPLIT, $0-80
	MOVQ  out_base+0(FP), R8
	MOVQ  out_len+8(FP), R9
	MOVQ  q_base+24(FP), R10
	MOVQ  q_len+32(FP), R11
	MOVQ  keys_base+48(FP), R12
	MOVQ  stride+72(FP), R13
	SHLQ  $2, R13
	TESTQ R9, R9
	JZ    dsdone

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

// func axpyRowsAVX2Asm(y, w, rows []float32, stride int)
// for i < len(w): y += w[i] * rows[i*stride:][:len(y)], product rounded,
// then added, as axpyAVX2Asm does. y is taken 32 floats (four registers)
// at a time, then 8, then a masked tail, each over every row.
TEXT ·axpyRowsAVX2Asm(SB), NOSPLIT, $0-80
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), CX
	MOVQ w_base+24(FP), R8
	MOVQ w_len+32(FP), R9
	MOVQ rows_base+48(FP), R10
	MOVQ stride+72(FP), R13
	SHLQ $2, R13

ar32:
	CMPQ    CX, $32
	JB      ar8
	VMOVUPS (DI), Y8
	VMOVUPS 32(DI), Y9
	VMOVUPS 64(DI), Y10
	VMOVUPS 96(DI), Y11
	MOVQ    R8, BX
	MOVQ    R10, SI
	MOVQ    R9, DX

ar32row:
	VBROADCASTSS (BX), Y0
	VMULPS       (SI), Y0, Y1
	VMULPS       32(SI), Y0, Y2
	VMULPS       64(SI), Y0, Y3
	VMULPS       96(SI), Y0, Y4
	VADDPS       Y1, Y8, Y8
	VADDPS       Y2, Y9, Y9
	VADDPS       Y3, Y10, Y10
	VADDPS       Y4, Y11, Y11
	ADDQ         $4, BX
	ADDQ         R13, SI
	DECQ         DX
	JNZ          ar32row
	VMOVUPS      Y8, (DI)
	VMOVUPS      Y9, 32(DI)
	VMOVUPS      Y10, 64(DI)
	VMOVUPS      Y11, 96(DI)
	ADDQ         $128, DI
	ADDQ         $128, R10
	SUBQ         $32, CX
	JMP          ar32

ar8:
	CMPQ    CX, $8
	JB      artail
	VMOVUPS (DI), Y8
	MOVQ    R8, BX
	MOVQ    R10, SI
	MOVQ    R9, DX

ar8row:
	VBROADCASTSS (BX), Y0
	VMULPS       (SI), Y0, Y1
	VADDPS       Y1, Y8, Y8
	ADDQ         $4, BX
	ADDQ         R13, SI
	DECQ         DX
	JNZ          ar8row
	VMOVUPS      Y8, (DI)
	ADDQ         $32, DI
	ADDQ         $32, R10
	SUBQ         $8, CX
	JMP          ar8

artail:
	TESTQ      CX, CX
	JZ         ardone
	TAILMASK(CX, AX, Y3)
	VMASKMOVPS (DI), Y3, Y8
	MOVQ       R8, BX
	MOVQ       R10, SI
	MOVQ       R9, DX

artailrow:
	VBROADCASTSS (BX), Y0
	VMASKMOVPS   (SI), Y3, Y1
	VMULPS       Y1, Y0, Y1
	VADDPS       Y1, Y8, Y8
	ADDQ         $4, BX
	ADDQ         R13, SI
	DECQ         DX
	JNZ          artailrow
	VMASKMOVPS   Y8, Y3, (DI)

ardone:
	VZEROUPPER
	RET
