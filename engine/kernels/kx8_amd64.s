//go:build amd64 && !purego

#include "textflag.h"

// The AVX2 kernels for K-quant matrices packed by eight rows (kx8.go): one
// 32-bit lane per row. Per super-block, every row's integer sums are exact
// and the float step is kdot.go's, on eight lanes at once, so each row gets
// the plain dot's bits.
//
// The quants of four values of each row (one dword of the packed layout)
// are multiplied by the same four activation quants, broadcast, with
// VPMADDUBSW; the 16-bit products of one sub-block are added in their lanes
// (Q4_K: eight vectors, at most 8·2·15·127 = 30,480), then multiplied by
// the lanes' scales with VPMADDWD.

DATA kx8m3f<>+0(SB)/8, $0x3f3f3f3f3f3f3f3f
DATA kx8m3f<>+8(SB)/8, $0x3f3f3f3f3f3f3f3f
DATA kx8m3f<>+16(SB)/8, $0x3f3f3f3f3f3f3f3f
DATA kx8m3f<>+24(SB)/8, $0x3f3f3f3f3f3f3f3f
GLOBL kx8m3f<>(SB), RODATA|NOPTR, $32

DATA kx8m30<>+0(SB)/8, $0x3030303030303030
DATA kx8m30<>+8(SB)/8, $0x3030303030303030
DATA kx8m30<>+16(SB)/8, $0x3030303030303030
DATA kx8m30<>+24(SB)/8, $0x3030303030303030
GLOBL kx8m30<>(SB), RODATA|NOPTR, $32

// KX8UNPACK unpacks the eight rows' 6-bit scales and mins at 32(SI) (byte
// i of row r at 32+8i+r): byte 8j+r of Y3 is scale j of row r, of Y4 scale
// 4+j, of Y5 min j, of Y6 min 4+j (j = 0…3). Y15 holds 0x0f bytes.
#define KX8UNPACK \
	VMOVDQU    32(SI), Y0; \
	VMOVDQU    64(SI), Y1; \
	VMOVDQU    96(SI), Y2; \
	VPAND      kx8m3f<>(SB), Y0, Y3; \
	VPAND      Y15, Y2, Y4; \
	VPSRLW     $2, Y0, Y5; \
	VPAND      kx8m30<>(SB), Y5, Y5; \
	VPOR       Y5, Y4, Y4; \
	VPAND      kx8m3f<>(SB), Y1, Y5; \
	VPSRLW     $4, Y2, Y6; \
	VPAND      Y15, Y6, Y6; \
	VPSRLW     $2, Y1, Y7; \
	VPAND      kx8m30<>(SB), Y7, Y7; \
	VPOR       Y7, Y6, Y6

// KX8SCALES stores each sub-block's scales and mins (KX8UNPACK), every byte
// doubled, for VPMOVZXBW to make (s, s) word pairs: scales j = 0…7 at
// 0(SP) + 32(j%2) + 16((j%4)/2) + 64(j/4), mins at 128 more.
#define KX8SCALES \
	KX8UNPACK; \
	VPUNPCKLBW Y3, Y3, Y7; \
	VMOVDQU    Y7, 0(SP); \
	VPUNPCKHBW Y3, Y3, Y7; \
	VMOVDQU    Y7, 32(SP); \
	VPUNPCKLBW Y4, Y4, Y7; \
	VMOVDQU    Y7, 64(SP); \
	VPUNPCKHBW Y4, Y4, Y7; \
	VMOVDQU    Y7, 96(SP); \
	VPUNPCKLBW Y5, Y5, Y7; \
	VMOVDQU    Y7, 128(SP); \
	VPUNPCKHBW Y5, Y5, Y7; \
	VMOVDQU    Y7, 160(SP); \
	VPUNPCKLBW Y6, Y6, Y7; \
	VMOVDQU    Y7, 192(SP); \
	VPUNPCKHBW Y6, Y6, Y7; \
	VMOVDQU    Y7, 224(SP)

// KX8MIN adds sub-block j's min times its two block sums (at bs(DI)) to
// Y11, per lane; KX8MIN0 starts Y11.
#define KX8MIN0(m, bs) \
	VPMOVZXBW    m(SP), Y7; \
	VPBROADCASTD bs(DI), Y8; \
	VPMADDWD     Y8, Y7, Y11

#define KX8MIN(m, bs) \
	VPMOVZXBW    m(SP), Y7; \
	VPBROADCASTD bs(DI), Y8; \
	VPMADDWD     Y8, Y7, Y7; \
	VPADDD       Y7, Y11, Y11

// Q4KCHUNK multiplies 32 bytes of packed quants at q(SI) (four values of
// sub-blocks 2c and 2c+1 per row, low and high nibbles) by the activation
// quants at xl(DI) and xh(DI), adding the 16-bit products to Y8 and Y9;
// Q4KCHUNK0 starts them.
#define Q4KCHUNK0(q, xl, xh) \
	VMOVDQU      q(SI), Y0; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y2, Y0, Y8; \
	VPMADDUBSW   Y3, Y1, Y9

#define Q4KCHUNK(q, xl, xh) \
	VMOVDQU      q(SI), Y0; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y2, Y0, Y0; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y0, Y8, Y8; \
	VPADDW       Y1, Y9, Y9

// KX8SCALE multiplies the sub-block sums in Y8 and Y9 by their scales
// (doubled bytes at sl(SP) and sh(SP)) and adds them to Y10; KX8SCALE0
// starts Y10.
#define KX8SCALE0(sl, sh) \
	VPMOVZXBW sl(SP), Y2; \
	VPMADDWD  Y2, Y8, Y8; \
	VPMOVZXBW sh(SP), Y3; \
	VPMADDWD  Y3, Y9, Y9; \
	VPADDD    Y8, Y9, Y10

#define KX8SCALE(sl, sh) \
	VPMOVZXBW sl(SP), Y2; \
	VPMADDWD  Y2, Y8, Y8; \
	VPMOVZXBW sh(SP), Y3; \
	VPMADDWD  Y3, Y9, Y9; \
	VPADDD    Y8, Y10, Y10; \
	VPADDD    Y9, Y10, Y10

// KX8FSTEP ends a Q4_K/Q5_K super-block on eight lanes as kStep4, for the
// token whose Q8_K row is at x: ys holds Σ sc·q·x, ym Σ m·bsum (both
// int32, clobbered); the rows' d and dmin are at 0(SI) and 16(SI);
// acc += d·float(Σ sc·q·x) − dm·float(Σ m·bsum). Y0–Y2 are clobbered.
#define KX8FSTEP(x, ys, ym, acc) \
	VCVTDQ2PS    ys, ys; \
	VCVTDQ2PS    ym, ym; \
	VCVTPH2PS    0(SI), Y0; \
	VCVTPH2PS    16(SI), Y1; \
	VBROADCASTSS 0(x), Y2; \
	VMULPS       Y2, Y0, Y0; \
	VMULPS       Y2, Y1, Y1; \
	VMULPS       ys, Y0, Y0; \
	VMULPS       ym, Y1, Y1; \
	VSUBPS       Y1, Y0, Y0; \
	VADDPS       Y0, acc, acc

// KX8STEP4 is KX8FSTEP for the gemvs: the token at DI, Y10 and Y11 its
// sums, Y12 its accumulator.
#define KX8STEP4 KX8FSTEP(DI, Y10, Y11, Y12)

// KX8T4ENTER loads a tile's arguments (R13: the bytes of a group, bb per
// super-block), zeroes its float accumulators Y12, Y13, a2, a3 and leaves
// for done when there are no super-blocks. (Defined before every TEXT:
// vet's argument check reads a macro as part of the function above it.)
#define KX8T4ENTER(bb, a2, a3) \
	MOVQ   out+0(FP), AX; \
	MOVQ   w_base+8(FP), SI; \
	MOVQ   x_base+32(FP), DI; \
	MOVQ   nb+56(FP), CX; \
	MOVQ   xstride+64(FP), R8; \
	LEAQ   (R8)(R8*2), R9; \
	IMUL3Q $bb, CX, R13; \
	VXORPS Y12, Y12, Y12; \
	VXORPS Y13, Y13, Y13; \
	VXORPS a2, a2, a2; \
	VXORPS a3, a3, a3; \
	TESTQ  CX, CX; \
	JZ     done

// The pair tile (Q4_K): two groups of eight rows (A at SI, B R12 bytes on)
// times two tokens (Q8_K rows at DI and DI + R8). Each token's activations
// are spread (VPERMD) once for both groups, where the four-token tile
// spreads them once per group: the spreads, not the products, bound that
// tile (docs/kernels.md). Each (row, token) runs the gemv's sequence, so
// the bits are the gemv's. Group A's scales and mins are at 0(SP), B's at
// 128(SP); the super-block sums Z8 (A, token 0), Z9 (A, 1), Z10 (B, 0), Z11
// (B, 1); the float accumulators Y12, Y13, Y29, Y30 in that order.

// KX8PPF prefetches three lines of the next pair's two super-blocks from
// byte off of the current one's (R13, R14: the next pair's A and B).
#define KX8PPF(off) \
	PREFETCHT1 off(SI)(R13*1); \
	PREFETCHT1 off+64(SI)(R13*1); \
	PREFETCHT1 off+128(SI)(R13*1); \
	PREFETCHT1 off(SI)(R14*1); \
	PREFETCHT1 off+64(SI)(R14*1); \
	PREFETCHT1 off+128(SI)(R14*1)

// KX8PSCALES is KX8ZSCALES for group B: its scales and mins at 128(SP).
#define KX8PSCALES \
	ADDQ R12, SI; \
	KX8UNPACK; \
	SUBQ R12, SI; \
	VMOVDQU Y3, 128(SP); \
	VMOVDQU Y4, 160(SP); \
	VMOVDQU Y5, 192(SP); \
	VMOVDQU Y6, 224(SP)

// Q4KPCHUNK adds chunk q of both groups times both tokens' activations of
// dword idx of their group (at xo) to Z4 (A, 0), Z5 (A, 1), Z6 (B, 0), Z7
// (B, 1).
#define Q4KPCHUNK(q, xo, idx) \
	VBROADCASTI64X4 q(SI), Z0; \
	VPANDD          Z31, Z0, Z0; \
	VBROADCASTI64X4 q(SI)(R12*1), Z1; \
	VPANDD          Z31, Z1, Z1; \
	VPERMD          xo(DI), idx, Z2; \
	VPDPBUSD        Z2, Z0, Z4; \
	VPDPBUSD        Z2, Z1, Z6; \
	VPERMD          xo(DI)(R8*1), idx, Z3; \
	VPDPBUSD        Z3, Z0, Z5; \
	VPDPBUSD        Z3, Z1, Z7

// Q4KPGROUP adds values 64j … 64j+63 of both super-blocks for both tokens,
// times the sub-blocks' scales, to the sums Z8–Z11.
#define Q4KPGROUP(j) \
	VPXORD     Z4, Z4, Z4; \
	VPXORD     Z5, Z5, Z5; \
	VPXORD     Z6, Z6, Z6; \
	VPXORD     Z7, Z7, Z7; \
	Q4KPCHUNK(128+256*j, 4+64*j, Z16); \
	Q4KPCHUNK(160+256*j, 4+64*j, Z17); \
	Q4KPCHUNK(192+256*j, 4+64*j, Z18); \
	Q4KPCHUNK(224+256*j, 4+64*j, Z19); \
	Q4KPCHUNK(256+256*j, 4+64*j, Z20); \
	Q4KPCHUNK(288+256*j, 4+64*j, Z21); \
	Q4KPCHUNK(320+256*j, 4+64*j, Z22); \
	Q4KPCHUNK(352+256*j, 4+64*j, Z23); \
	VPMOVZXBD  16*j(SP), Z2; \
	VPMULLD    Z2, Z4, Z4; \
	VPMULLD    Z2, Z5, Z5; \
	VPMOVZXBD  128+16*j(SP), Z3; \
	VPMULLD    Z3, Z6, Z6; \
	VPMULLD    Z3, Z7, Z7; \
	VPADDD     Z4, Z8, Z8; \
	VPADDD     Z5, Z9, Z9; \
	VPADDD     Z6, Z10, Z10; \
	VPADDD     Z7, Z11, Z11

// KX8T4MINS is KX8ZMINS for the token whose Q8_K row is at x: Σ m·bsum per
// lane into ym (zm its zmm), the group's mins at so(SP), with Z1–Z3 for
// scratch. (These end macros of the AVX-512 tiles stand before the first
// TEXT: vet reads a macro as part of the function above it, and the pair
// tile's stack is larger than the four-token tile's.)
#define KX8T4MINS(x, zm, ym, so) \
	VMOVDQU       260(x), Y3; \
	VPMADDWD      Y14, Y3, Y3; \
	VPMOVZXBD     so(SP), Z2; \
	VPERMD        Z3, Z24, Z1; \
	VPMADDWD      Z1, Z2, zm; \
	VPMOVZXBD     so+16(SP), Z2; \
	VPERMD        Z3, Z25, Z1; \
	VPMADDWD      Z1, Z2, Z2; \
	VPADDD        Z2, zm, zm; \
	VPMOVZXBD     so+32(SP), Z2; \
	VPERMD        Z3, Z26, Z1; \
	VPMADDWD      Z1, Z2, Z2; \
	VPADDD        Z2, zm, zm; \
	VPMOVZXBD     so+48(SP), Z2; \
	VPERMD        Z3, Z27, Z1; \
	VPMADDWD      Z1, Z2, Z2; \
	VPADDD        Z2, zm, zm; \
	VEXTRACTI64X4 $1, zm, Y2; \
	VPADDD        Y2, ym, ym

// KX8T4END ends the super-block for one token as KX8ZSUM and KX8STEP4 do:
// zs/ys its Σ sc·q·x (lanes 8–15 still times 16), zm/ym its mins' lanes
// (scratch), x its Q8_K row, acc its float accumulator, so where the
// group's mins are on the stack (its d and dmin at 0(SI) and 16(SI)).
// KX8T4FIN is the same for sums whose lanes 8–15 are not scaled (Q5_K).
#define KX8T4END(x, zs, ys, zm, ym, acc, so) \
	VPSRAVD       Z28, zs, zs; \
	KX8T4FIN(x, zs, ys, zm, ym, acc, so)

#define KX8T4FIN(x, zs, ys, zm, ym, acc, so) \
	VEXTRACTI64X4 $1, zs, Y2; \
	VPADDD        Y2, ys, ys; \
	KX8T4MINS(x, zm, ym, so); \
	KX8FSTEP(x, ys, ym, acc)

// func q4Kx8GemvAVX2Asm(out *[8]float32, w, x []byte, nb int)
TEXT ·q4Kx8GemvAVX2Asm(SB), NOSPLIT, $256-64
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	VXORPS Y12, Y12, Y12
	TESTQ  CX, CX
	JZ     done
	MOVL         $0x0f0f0f0f, DX
	VMOVD        DX, X15
	VPBROADCASTD X15, Y15

loop:
	KX8SCALES
	KX8MIN0(128, 260)
	KX8MIN(160, 264)
	KX8MIN(144, 268)
	KX8MIN(176, 272)
	KX8MIN(192, 276)
	KX8MIN(224, 280)
	KX8MIN(208, 284)
	KX8MIN(240, 288)
	Q4KCHUNK0(128, 4, 36)
	Q4KCHUNK(160, 8, 40)
	Q4KCHUNK(192, 12, 44)
	Q4KCHUNK(224, 16, 48)
	Q4KCHUNK(256, 20, 52)
	Q4KCHUNK(288, 24, 56)
	Q4KCHUNK(320, 28, 60)
	Q4KCHUNK(352, 32, 64)
	KX8SCALE0(0, 32)
	Q4KCHUNK0(384, 68, 100)
	Q4KCHUNK(416, 72, 104)
	Q4KCHUNK(448, 76, 108)
	Q4KCHUNK(480, 80, 112)
	Q4KCHUNK(512, 84, 116)
	Q4KCHUNK(544, 88, 120)
	Q4KCHUNK(576, 92, 124)
	Q4KCHUNK(608, 96, 128)
	KX8SCALE(16, 48)
	Q4KCHUNK0(640, 132, 164)
	Q4KCHUNK(672, 136, 168)
	Q4KCHUNK(704, 140, 172)
	Q4KCHUNK(736, 144, 176)
	Q4KCHUNK(768, 148, 180)
	Q4KCHUNK(800, 152, 184)
	Q4KCHUNK(832, 156, 188)
	Q4KCHUNK(864, 160, 192)
	KX8SCALE(64, 96)
	Q4KCHUNK0(896, 196, 228)
	Q4KCHUNK(928, 200, 232)
	Q4KCHUNK(960, 204, 236)
	Q4KCHUNK(992, 208, 240)
	Q4KCHUNK(1024, 212, 244)
	Q4KCHUNK(1056, 216, 248)
	Q4KCHUNK(1088, 220, 252)
	Q4KCHUNK(1120, 224, 256)
	KX8SCALE(80, 112)
	KX8STEP4
	ADDQ $1152, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VZEROUPPER
	RET

// Q5KCHUNK is Q4KCHUNK for Q5_K: the fifth bits of the four values per row
// are bits 2c (low nibbles) and 2c+1 (high) of the packed qh bytes at
// h(SI), moved to bit 4 by ol $nl and oh $nh (Y14 holds 0x10 bytes). Four
// vectors of products fit 16 bits (4·2·31·127 = 31,496).
#define Q5KCHUNK0(q, h, xl, xh, ol, nl, oh, nh) \
	VMOVDQU      q(SI), Y0; \
	VMOVDQU      h(SI), Y4; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	ol           $nl, Y4, Y5; \
	VPAND        Y14, Y5, Y5; \
	VPOR         Y5, Y0, Y0; \
	oh           $nh, Y4, Y5; \
	VPAND        Y14, Y5, Y5; \
	VPOR         Y5, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y2, Y0, Y8; \
	VPMADDUBSW   Y3, Y1, Y9

#define Q5KCHUNK(q, h, xl, xh, ol, nl, oh, nh) \
	VMOVDQU      q(SI), Y0; \
	VMOVDQU      h(SI), Y4; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	ol           $nl, Y4, Y5; \
	VPAND        Y14, Y5, Y5; \
	VPOR         Y5, Y0, Y0; \
	oh           $nh, Y4, Y5; \
	VPAND        Y14, Y5, Y5; \
	VPOR         Y5, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y2, Y0, Y0; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y0, Y8, Y8; \
	VPADDW       Y1, Y9, Y9

// kx8zip6<> interleaves the bytes of two 8-byte halves (the eight rows'
// scales of Q6_K sub-blocks g and g+1).
DATA kx8zip6<>+0(SB)/8, $0x0b030a0209010800
DATA kx8zip6<>+8(SB)/8, $0x0f070e060d050c04
GLOBL kx8zip6<>(SB), RODATA|NOPTR, $16

// Q6KSCALES stores the eight rows' int8 scales of each Q6_K sub-block g
// (at 16+8g(SI)), every byte doubled, for VPMOVSXBW: at 0(SP) + 64(g/4) +
// 32(g%2) + 16((g%4)/2).
#define Q6KSCALES \
	VMOVDQU    16(SI), Y0; \
	VPUNPCKLBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 0(SP); \
	VPUNPCKHBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 32(SP); \
	VMOVDQU    48(SI), Y0; \
	VPUNPCKLBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 64(SP); \
	VPUNPCKHBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 96(SP); \
	VMOVDQU    80(SI), Y0; \
	VPUNPCKLBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 128(SP); \
	VPUNPCKHBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 160(SP); \
	VMOVDQU    112(SI), Y0; \
	VPUNPCKLBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 192(SP); \
	VPUNPCKHBW Y0, Y0, Y1; \
	VMOVDQU    Y1, 224(SP)

// Q6KCORR adds Σ sc·bsum of sub-blocks g and g+1 (scales at s(SI), block
// sums at bs(DI)) to Y11, per lane; Q6KCORR0 starts Y11.
#define Q6KCORR0(s, bs) \
	VMOVDQU      s(SI), X0; \
	VPSHUFB      kx8zip6<>(SB), X0, X0; \
	VPMOVSXBW    X0, Y0; \
	VPBROADCASTD bs(DI), Y1; \
	VPMADDWD     Y1, Y0, Y11

#define Q6KCORR(s, bs) \
	VMOVDQU      s(SI), X0; \
	VPSHUFB      kx8zip6<>(SB), X0, X0; \
	VPMOVSXBW    X0, Y0; \
	VPBROADCASTD bs(DI), Y1; \
	VPMADDWD     Y1, Y0, Y0; \
	VPADDD       Y0, Y11, Y11

// Q6KCHUNK makes the 6-bit quants of values 32j + 4k … 32j + 4k + 3 of a
// half, j = 0…3, for the eight rows from the packed ql at l0(SI) and l1(SI)
// and qh at h(SI) (Y14 holds 0x30 bytes), multiplies them by the
// activation quants at x0 … x3(DI) and adds the products to Y4 … Y7 (two
// vectors fit 16 bits: 2·2·63·127 = 32,004); Q6KCHUNK0 starts them.
#define Q6KCHUNK0(l0, l1, h, x0, x1, x2, x3) \
	VMOVDQU      l0(SI), Y0; \
	VMOVDQU      h(SI), Y2; \
	VPAND        Y15, Y0, Y1; \
	VPSLLW       $4, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x0(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y4; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y1, Y1; \
	VPAND        Y14, Y2, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x2(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y6; \
	VMOVDQU      l1(SI), Y0; \
	VPAND        Y15, Y0, Y1; \
	VPSLLW       $2, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x1(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y5; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y1, Y1; \
	VPSRLW       $2, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x3(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y7

#define Q6KCHUNK(l0, l1, h, x0, x1, x2, x3) \
	VMOVDQU      l0(SI), Y0; \
	VMOVDQU      h(SI), Y2; \
	VPAND        Y15, Y0, Y1; \
	VPSLLW       $4, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x0(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y1, Y4, Y4; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y1, Y1; \
	VPAND        Y14, Y2, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x2(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y1, Y6, Y6; \
	VMOVDQU      l1(SI), Y0; \
	VPAND        Y15, Y0, Y1; \
	VPSLLW       $2, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x1(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y1, Y5, Y5; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y1, Y1; \
	VPSRLW       $2, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x3(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y1, Y7, Y7

// Q6KSCALE multiplies the sums in Y4 … Y7 by their sub-blocks' scales
// (doubled bytes at s0 … s3(SP)) and adds them to Y10; Q6KSCALE0 starts
// Y10.
#define Q6KSCALE0(s0, s1, s2, s3) \
	VPMOVSXBW s0(SP), Y0; \
	VPMADDWD  Y0, Y4, Y10; \
	VPMOVSXBW s1(SP), Y1; \
	VPMADDWD  Y1, Y5, Y5; \
	VPADDD    Y5, Y10, Y10; \
	VPMOVSXBW s2(SP), Y0; \
	VPMADDWD  Y0, Y6, Y6; \
	VPADDD    Y6, Y10, Y10; \
	VPMOVSXBW s3(SP), Y1; \
	VPMADDWD  Y1, Y7, Y7; \
	VPADDD    Y7, Y10, Y10

#define Q6KSCALE(s0, s1, s2, s3) \
	VPMOVSXBW s0(SP), Y0; \
	VPMADDWD  Y0, Y4, Y4; \
	VPADDD    Y4, Y10, Y10; \
	VPMOVSXBW s1(SP), Y1; \
	VPMADDWD  Y1, Y5, Y5; \
	VPADDD    Y5, Y10, Y10; \
	VPMOVSXBW s2(SP), Y0; \
	VPMADDWD  Y0, Y6, Y6; \
	VPADDD    Y6, Y10, Y10; \
	VPMOVSXBW s3(SP), Y1; \
	VPMADDWD  Y1, Y7, Y7; \
	VPADDD    Y7, Y10, Y10

// Q6KSTEP ends a Q6_K super-block on eight lanes as kStep6: Y10 holds
// Σ sc·q·x (q unsigned), Y11 Σ sc·bsum; the rows' d are at 0(SI).
#define Q6KSTEP \
	VPSLLD       $5, Y11, Y11; \
	VPSUBD       Y11, Y10, Y10; \
	Q6KFSTEP

// Q6KFSTEP is Q6KSTEP's float step, from Σ sc·(q−32)·x in Y10.
#define Q6KFSTEP \
	VCVTDQ2PS    Y10, Y10; \
	VCVTPH2PS    0(SI), Y0; \
	VBROADCASTSS 0(DI), Y2; \
	VMULPS       Y2, Y0, Y0; \
	VMULPS       Y10, Y0, Y0; \
	VADDPS       Y0, Y12, Y12

// func q5Kx8GemvAVX2Asm(out *[8]float32, w, x []byte, nb int)
TEXT ·q5Kx8GemvAVX2Asm(SB), NOSPLIT, $256-64
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	VXORPS Y12, Y12, Y12
	TESTQ  CX, CX
	JZ     done
	MOVL         $0x0f0f0f0f, DX
	VMOVD        DX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x10101010, DX
	VMOVD        DX, X14
	VPBROADCASTD X14, Y14

loop:
	KX8SCALES
	KX8MIN0(128, 260)
	KX8MIN(160, 264)
	KX8MIN(144, 268)
	KX8MIN(176, 272)
	KX8MIN(192, 276)
	KX8MIN(224, 280)
	KX8MIN(208, 284)
	KX8MIN(240, 288)
	Q5KCHUNK0(160, 128, 4, 36, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK(224, 192, 8, 40, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK(288, 256, 12, 44, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK(352, 320, 16, 48, VPSLLW, 4, VPSLLW, 3)
	KX8SCALE0(0, 32)
	Q5KCHUNK0(416, 384, 20, 52, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK(480, 448, 24, 56, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK(544, 512, 28, 60, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK(608, 576, 32, 64, VPSLLW, 4, VPSLLW, 3)
	KX8SCALE(0, 32)
	Q5KCHUNK0(640, 128, 68, 100, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK(672, 192, 72, 104, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK(704, 256, 76, 108, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK(736, 320, 80, 112, VPSLLW, 2, VPSLLW, 1)
	KX8SCALE(16, 48)
	Q5KCHUNK0(768, 384, 84, 116, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK(800, 448, 88, 120, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK(832, 512, 92, 124, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK(864, 576, 96, 128, VPSLLW, 2, VPSLLW, 1)
	KX8SCALE(16, 48)
	Q5KCHUNK0(896, 128, 132, 164, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK(928, 192, 136, 168, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK(960, 256, 140, 172, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK(992, 320, 144, 176, VPSLLW, 0, VPSRLW, 1)
	KX8SCALE(64, 96)
	Q5KCHUNK0(1024, 384, 148, 180, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK(1056, 448, 152, 184, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK(1088, 512, 156, 188, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK(1120, 576, 160, 192, VPSLLW, 0, VPSRLW, 1)
	KX8SCALE(64, 96)
	Q5KCHUNK0(1152, 128, 196, 228, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK(1184, 192, 200, 232, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK(1216, 256, 204, 236, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK(1248, 320, 208, 240, VPSRLW, 2, VPSRLW, 3)
	KX8SCALE(80, 112)
	Q5KCHUNK0(1280, 384, 212, 244, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK(1312, 448, 216, 248, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK(1344, 512, 220, 252, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK(1376, 576, 224, 256, VPSRLW, 2, VPSRLW, 3)
	KX8SCALE(80, 112)
	KX8STEP4
	ADDQ $1408, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VZEROUPPER
	RET

// func q6Kx8GemvAVX2Asm(out *[8]float32, w, x []byte, nb int)
TEXT ·q6Kx8GemvAVX2Asm(SB), NOSPLIT, $256-64
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	VXORPS Y12, Y12, Y12
	TESTQ  CX, CX
	JZ     done
	MOVL         $0x0f0f0f0f, DX
	VMOVD        DX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x30303030, DX
	VMOVD        DX, X14
	VPBROADCASTD X14, Y14

loop:
	Q6KSCALES
	Q6KCORR0(16, 260)
	Q6KCORR(32, 264)
	Q6KCORR(48, 268)
	Q6KCORR(64, 272)
	Q6KCORR(80, 276)
	Q6KCORR(96, 280)
	Q6KCORR(112, 284)
	Q6KCORR(128, 288)
	Q6KCHUNK0(144, 176, 208, 4, 36, 68, 100)
	Q6KCHUNK(240, 272, 304, 8, 40, 72, 104)
	Q6KSCALE0(0, 16, 64, 80)
	Q6KCHUNK0(336, 368, 400, 12, 44, 76, 108)
	Q6KCHUNK(432, 464, 496, 16, 48, 80, 112)
	Q6KSCALE(0, 16, 64, 80)
	Q6KCHUNK0(528, 560, 592, 20, 52, 84, 116)
	Q6KCHUNK(624, 656, 688, 24, 56, 88, 120)
	Q6KSCALE(32, 48, 96, 112)
	Q6KCHUNK0(720, 752, 784, 28, 60, 92, 124)
	Q6KCHUNK(816, 848, 880, 32, 64, 96, 128)
	Q6KSCALE(32, 48, 96, 112)
	Q6KCHUNK0(912, 944, 976, 132, 164, 196, 228)
	Q6KCHUNK(1008, 1040, 1072, 136, 168, 200, 232)
	Q6KSCALE(128, 144, 192, 208)
	Q6KCHUNK0(1104, 1136, 1168, 140, 172, 204, 236)
	Q6KCHUNK(1200, 1232, 1264, 144, 176, 208, 240)
	Q6KSCALE(128, 144, 192, 208)
	Q6KCHUNK0(1296, 1328, 1360, 148, 180, 212, 244)
	Q6KCHUNK(1392, 1424, 1456, 152, 184, 216, 248)
	Q6KSCALE(160, 176, 224, 240)
	Q6KCHUNK0(1488, 1520, 1552, 156, 188, 220, 252)
	Q6KCHUNK(1584, 1616, 1648, 160, 192, 224, 256)
	Q6KSCALE(160, 176, 224, 240)
	Q6KSTEP
	ADDQ $1680, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VZEROUPPER
	RET

// The two-token kernels run the same sequence as the gemv for each token,
// sharing the weights' unpacking: token 0's activations at (DI), token 1's
// at (R8). Each super-block step also prefetches the next group's
// super-block (R9 = the group's bytes ahead), which the product takes
// next: a batched decode step reads a group from memory in its first
// token pair and from cache in the others, so memory keeps streaming
// meanwhile. Q4_K_M DecodeBatch, 8 streams, alternating: 31.8/34.7/33.0 →
// 35.2/36.8/40.2 tok/s; 32 streams +3–5 %; prefill the same.

// KX8PF6 prefetches six lines of the next group's super-block, from byte
// off of the current one's (R9 = the group's bytes ahead).
#define KX8PF6(off) \
	PREFETCHT1 off(SI)(R9*1); \
	PREFETCHT1 off+64(SI)(R9*1); \
	PREFETCHT1 off+128(SI)(R9*1); \
	PREFETCHT1 off+192(SI)(R9*1); \
	PREFETCHT1 off+256(SI)(R9*1); \
	PREFETCHT1 off+320(SI)(R9*1)

// KX8MIN2 is KX8MIN for two tokens: Y11 and Y7.
#define KX8MIN20(m, bs) \
	VPMOVZXBW    m(SP), Y0; \
	VPBROADCASTD bs(DI), Y1; \
	VPMADDWD     Y1, Y0, Y11; \
	VPBROADCASTD bs(R8), Y2; \
	VPMADDWD     Y2, Y0, Y7

#define KX8MIN2(m, bs) \
	VPMOVZXBW    m(SP), Y0; \
	VPBROADCASTD bs(DI), Y1; \
	VPMADDWD     Y1, Y0, Y1; \
	VPADDD       Y1, Y11, Y11; \
	VPBROADCASTD bs(R8), Y2; \
	VPMADDWD     Y2, Y0, Y2; \
	VPADDD       Y2, Y7, Y7

// Q4KCHUNK2 is Q4KCHUNK for two tokens: Y8, Y9 and Y4, Y5.
#define Q4KCHUNK20(q, xl, xh) \
	VMOVDQU      q(SI), Y0; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPMADDUBSW   Y2, Y0, Y8; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y9; \
	VPBROADCASTD xl(R8), Y2; \
	VPMADDUBSW   Y2, Y0, Y4; \
	VPBROADCASTD xh(R8), Y3; \
	VPMADDUBSW   Y3, Y1, Y5

#define Q4KCHUNK2(q, xl, xh) \
	VMOVDQU      q(SI), Y0; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPMADDUBSW   Y2, Y0, Y2; \
	VPADDW       Y2, Y8, Y8; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y3; \
	VPADDW       Y3, Y9, Y9; \
	VPBROADCASTD xl(R8), Y2; \
	VPMADDUBSW   Y2, Y0, Y2; \
	VPADDW       Y2, Y4, Y4; \
	VPBROADCASTD xh(R8), Y3; \
	VPMADDUBSW   Y3, Y1, Y3; \
	VPADDW       Y3, Y5, Y5

// KX8SCALE2 is KX8SCALE for two tokens: Y10 and Y6.
#define KX8SCALE20(sl, sh) \
	VPMOVZXBW sl(SP), Y2; \
	VPMADDWD  Y2, Y8, Y8; \
	VPMADDWD  Y2, Y4, Y4; \
	VPMOVZXBW sh(SP), Y3; \
	VPMADDWD  Y3, Y9, Y9; \
	VPMADDWD  Y3, Y5, Y5; \
	VPADDD    Y8, Y9, Y10; \
	VPADDD    Y4, Y5, Y6

#define KX8SCALE2(sl, sh) \
	VPMOVZXBW sl(SP), Y2; \
	VPMADDWD  Y2, Y8, Y8; \
	VPMADDWD  Y2, Y4, Y4; \
	VPMOVZXBW sh(SP), Y3; \
	VPMADDWD  Y3, Y9, Y9; \
	VPMADDWD  Y3, Y5, Y5; \
	VPADDD    Y8, Y10, Y10; \
	VPADDD    Y9, Y10, Y10; \
	VPADDD    Y4, Y6, Y6; \
	VPADDD    Y5, Y6, Y6

// KX8STEP4X2 is KX8STEP4 for two tokens: sums in Y10, Y11 and Y6, Y7,
// accumulators Y12 and Y13.
#define KX8STEP4X2 \
	VCVTPH2PS    0(SI), Y0; \
	VCVTPH2PS    16(SI), Y1; \
	VCVTDQ2PS    Y10, Y10; \
	VCVTDQ2PS    Y11, Y11; \
	VBROADCASTSS 0(DI), Y2; \
	VMULPS       Y2, Y0, Y3; \
	VMULPS       Y2, Y1, Y2; \
	VMULPS       Y10, Y3, Y3; \
	VMULPS       Y11, Y2, Y2; \
	VSUBPS       Y2, Y3, Y3; \
	VADDPS       Y3, Y12, Y12; \
	VCVTDQ2PS    Y6, Y6; \
	VCVTDQ2PS    Y7, Y7; \
	VBROADCASTSS 0(R8), Y2; \
	VMULPS       Y2, Y0, Y3; \
	VMULPS       Y2, Y1, Y2; \
	VMULPS       Y6, Y3, Y3; \
	VMULPS       Y7, Y2, Y2; \
	VSUBPS       Y2, Y3, Y3; \
	VADDPS       Y3, Y13, Y13

// func q4Kx8x2AVX2Asm(out *[16]float32, w, x []byte, nb, xstride int)
TEXT ·q4Kx8x2AVX2Asm(SB), NOSPLIT, $256-72
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	IMUL3Q $1152, CX, R9
	MOVQ   xstride+64(FP), R8
	ADDQ   DI, R8
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	TESTQ  CX, CX
	JZ     done
	MOVL         $0x0f0f0f0f, DX
	VMOVD        DX, X15
	VPBROADCASTD X15, Y15

loop:
	KX8PF6(0)
	KX8PF6(384)
	KX8PF6(768)
	KX8SCALES
	KX8MIN20(128, 260)
	KX8MIN2(160, 264)
	KX8MIN2(144, 268)
	KX8MIN2(176, 272)
	KX8MIN2(192, 276)
	KX8MIN2(224, 280)
	KX8MIN2(208, 284)
	KX8MIN2(240, 288)
	Q4KCHUNK20(128, 4, 36)
	Q4KCHUNK2(160, 8, 40)
	Q4KCHUNK2(192, 12, 44)
	Q4KCHUNK2(224, 16, 48)
	Q4KCHUNK2(256, 20, 52)
	Q4KCHUNK2(288, 24, 56)
	Q4KCHUNK2(320, 28, 60)
	Q4KCHUNK2(352, 32, 64)
	KX8SCALE20(0, 32)
	Q4KCHUNK20(384, 68, 100)
	Q4KCHUNK2(416, 72, 104)
	Q4KCHUNK2(448, 76, 108)
	Q4KCHUNK2(480, 80, 112)
	Q4KCHUNK2(512, 84, 116)
	Q4KCHUNK2(544, 88, 120)
	Q4KCHUNK2(576, 92, 124)
	Q4KCHUNK2(608, 96, 128)
	KX8SCALE2(16, 48)
	Q4KCHUNK20(640, 132, 164)
	Q4KCHUNK2(672, 136, 168)
	Q4KCHUNK2(704, 140, 172)
	Q4KCHUNK2(736, 144, 176)
	Q4KCHUNK2(768, 148, 180)
	Q4KCHUNK2(800, 152, 184)
	Q4KCHUNK2(832, 156, 188)
	Q4KCHUNK2(864, 160, 192)
	KX8SCALE2(64, 96)
	Q4KCHUNK20(896, 196, 228)
	Q4KCHUNK2(928, 200, 232)
	Q4KCHUNK2(960, 204, 236)
	Q4KCHUNK2(992, 208, 240)
	Q4KCHUNK2(1024, 212, 244)
	Q4KCHUNK2(1056, 216, 248)
	Q4KCHUNK2(1088, 220, 252)
	Q4KCHUNK2(1120, 224, 256)
	KX8SCALE2(80, 112)
	KX8STEP4X2
	ADDQ $1152, SI
	ADDQ $292, DI
	ADDQ $292, R8
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, 32(AX)
	VZEROUPPER
	RET

// Q5KCHUNK2 is Q5KCHUNK for two tokens: Y8, Y9 and Y4, Y5.
#define Q5KCHUNK20(q, h, xl, xh, ol, nl, oh, nh) \
	VMOVDQU      q(SI), Y0; \
	VMOVDQU      h(SI), Y2; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	ol           $nl, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y0, Y0; \
	oh           $nh, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPMADDUBSW   Y2, Y0, Y8; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y9; \
	VPBROADCASTD xl(R8), Y2; \
	VPMADDUBSW   Y2, Y0, Y4; \
	VPBROADCASTD xh(R8), Y3; \
	VPMADDUBSW   Y3, Y1, Y5

#define Q5KCHUNK2(q, h, xl, xh, ol, nl, oh, nh) \
	VMOVDQU      q(SI), Y0; \
	VMOVDQU      h(SI), Y2; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	ol           $nl, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y0, Y0; \
	oh           $nh, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD xl(DI), Y2; \
	VPMADDUBSW   Y2, Y0, Y2; \
	VPADDW       Y2, Y8, Y8; \
	VPBROADCASTD xh(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y3; \
	VPADDW       Y3, Y9, Y9; \
	VPBROADCASTD xl(R8), Y2; \
	VPMADDUBSW   Y2, Y0, Y2; \
	VPADDW       Y2, Y4, Y4; \
	VPBROADCASTD xh(R8), Y3; \
	VPMADDUBSW   Y3, Y1, Y3; \
	VPADDW       Y3, Y5, Y5

// Q6KCORR2 is Q6KCORR for two tokens: Y11 and Y7.
#define Q6KCORR20(s, bs) \
	VMOVDQU      s(SI), X0; \
	VPSHUFB      kx8zip6<>(SB), X0, X0; \
	VPMOVSXBW    X0, Y0; \
	VPBROADCASTD bs(DI), Y1; \
	VPMADDWD     Y1, Y0, Y11; \
	VPBROADCASTD bs(R8), Y2; \
	VPMADDWD     Y2, Y0, Y7

#define Q6KCORR2(s, bs) \
	VMOVDQU      s(SI), X0; \
	VPSHUFB      kx8zip6<>(SB), X0, X0; \
	VPMOVSXBW    X0, Y0; \
	VPBROADCASTD bs(DI), Y1; \
	VPMADDWD     Y1, Y0, Y1; \
	VPADDD       Y1, Y11, Y11; \
	VPBROADCASTD bs(R8), Y2; \
	VPMADDWD     Y2, Y0, Y2; \
	VPADDD       Y2, Y7, Y7

// Q6KCHUNK2 makes the 6-bit quants of four values of one sub-block for
// the eight rows, from the packed ql at l(SI) (the nibble picked by lo
// $ln) and qh at h(SI) (the two bits moved to bits 4–5 by ho $hn), and
// adds their products with each token's activation quants at x to Y4 and
// Y5; Q6KCHUNK20 starts them.
#define Q6KCHUNK20(l, h, x, lo, ln, ho, hn) \
	VMOVDQU      l(SI), Y0; \
	VMOVDQU      h(SI), Y2; \
	lo           $ln, Y0, Y1; \
	VPAND        Y15, Y1, Y1; \
	ho           $hn, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y4; \
	VPBROADCASTD x(R8), Y2; \
	VPMADDUBSW   Y2, Y1, Y5

#define Q6KCHUNK2(l, h, x, lo, ln, ho, hn) \
	VMOVDQU      l(SI), Y0; \
	VMOVDQU      h(SI), Y2; \
	lo           $ln, Y0, Y1; \
	VPAND        Y15, Y1, Y1; \
	ho           $hn, Y2, Y3; \
	VPAND        Y14, Y3, Y3; \
	VPOR         Y3, Y1, Y1; \
	VPBROADCASTD x(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y3; \
	VPADDW       Y3, Y4, Y4; \
	VPBROADCASTD x(R8), Y2; \
	VPMADDUBSW   Y2, Y1, Y2; \
	VPADDW       Y2, Y5, Y5

// Q6KSCALE2 multiplies Y4 and Y5 by the sub-block's scales (doubled bytes
// at s(SP)) and adds them to Y10 and Y6; Q6KSCALE20 starts those.
#define Q6KSCALE20(s) \
	VPMOVSXBW s(SP), Y0; \
	VPMADDWD  Y0, Y4, Y10; \
	VPMADDWD  Y0, Y5, Y6

#define Q6KSCALE2(s) \
	VPMOVSXBW s(SP), Y0; \
	VPMADDWD  Y0, Y4, Y4; \
	VPADDD    Y4, Y10, Y10; \
	VPMADDWD  Y0, Y5, Y5; \
	VPADDD    Y5, Y6, Y6

// Q6KSTEP2 is Q6KSTEP for two tokens: sums in Y10, Y11 and Y6, Y7,
// accumulators Y12 and Y13.
#define Q6KSTEP2 \
	VCVTPH2PS    0(SI), Y0; \
	VPSLLD       $5, Y11, Y11; \
	VPSUBD       Y11, Y10, Y10; \
	VCVTDQ2PS    Y10, Y10; \
	VBROADCASTSS 0(DI), Y2; \
	VMULPS       Y2, Y0, Y2; \
	VMULPS       Y10, Y2, Y2; \
	VADDPS       Y2, Y12, Y12; \
	VPSLLD       $5, Y7, Y7; \
	VPSUBD       Y7, Y6, Y6; \
	VCVTDQ2PS    Y6, Y6; \
	VBROADCASTSS 0(R8), Y2; \
	VMULPS       Y2, Y0, Y2; \
	VMULPS       Y6, Y2, Y2; \
	VADDPS       Y2, Y13, Y13

// func q5Kx8x2AVX2Asm(out *[16]float32, w, x []byte, nb, xstride int)
TEXT ·q5Kx8x2AVX2Asm(SB), NOSPLIT, $256-72
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	IMUL3Q $1408, CX, R9
	MOVQ   xstride+64(FP), R8
	ADDQ   DI, R8
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	TESTQ  CX, CX
	JZ     done
	MOVL         $0x0f0f0f0f, DX
	VMOVD        DX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x10101010, DX
	VMOVD        DX, X14
	VPBROADCASTD X14, Y14

loop:
	KX8PF6(0)
	KX8PF6(384)
	KX8PF6(768)
	PREFETCHT1 1152(SI)(R9*1)
	PREFETCHT1 1216(SI)(R9*1)
	PREFETCHT1 1280(SI)(R9*1)
	PREFETCHT1 1344(SI)(R9*1)
	KX8SCALES
	KX8MIN20(128, 260)
	KX8MIN2(160, 264)
	KX8MIN2(144, 268)
	KX8MIN2(176, 272)
	KX8MIN2(192, 276)
	KX8MIN2(224, 280)
	KX8MIN2(208, 284)
	KX8MIN2(240, 288)
	Q5KCHUNK20(160, 128, 4, 36, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK2(224, 192, 8, 40, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK2(288, 256, 12, 44, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK2(352, 320, 16, 48, VPSLLW, 4, VPSLLW, 3)
	KX8SCALE20(0, 32)
	Q5KCHUNK20(416, 384, 20, 52, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK2(480, 448, 24, 56, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK2(544, 512, 28, 60, VPSLLW, 4, VPSLLW, 3)
	Q5KCHUNK2(608, 576, 32, 64, VPSLLW, 4, VPSLLW, 3)
	KX8SCALE2(0, 32)
	Q5KCHUNK20(640, 128, 68, 100, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK2(672, 192, 72, 104, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK2(704, 256, 76, 108, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK2(736, 320, 80, 112, VPSLLW, 2, VPSLLW, 1)
	KX8SCALE2(16, 48)
	Q5KCHUNK20(768, 384, 84, 116, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK2(800, 448, 88, 120, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK2(832, 512, 92, 124, VPSLLW, 2, VPSLLW, 1)
	Q5KCHUNK2(864, 576, 96, 128, VPSLLW, 2, VPSLLW, 1)
	KX8SCALE2(16, 48)
	Q5KCHUNK20(896, 128, 132, 164, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK2(928, 192, 136, 168, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK2(960, 256, 140, 172, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK2(992, 320, 144, 176, VPSLLW, 0, VPSRLW, 1)
	KX8SCALE2(64, 96)
	Q5KCHUNK20(1024, 384, 148, 180, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK2(1056, 448, 152, 184, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK2(1088, 512, 156, 188, VPSLLW, 0, VPSRLW, 1)
	Q5KCHUNK2(1120, 576, 160, 192, VPSLLW, 0, VPSRLW, 1)
	KX8SCALE2(64, 96)
	Q5KCHUNK20(1152, 128, 196, 228, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK2(1184, 192, 200, 232, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK2(1216, 256, 204, 236, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK2(1248, 320, 208, 240, VPSRLW, 2, VPSRLW, 3)
	KX8SCALE2(80, 112)
	Q5KCHUNK20(1280, 384, 212, 244, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK2(1312, 448, 216, 248, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK2(1344, 512, 220, 252, VPSRLW, 2, VPSRLW, 3)
	Q5KCHUNK2(1376, 576, 224, 256, VPSRLW, 2, VPSRLW, 3)
	KX8SCALE2(80, 112)
	KX8STEP4X2
	ADDQ $1408, SI
	ADDQ $292, DI
	ADDQ $292, R8
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, 32(AX)
	VZEROUPPER
	RET

// func q6Kx8x2AVX2Asm(out *[16]float32, w, x []byte, nb, xstride int)
TEXT ·q6Kx8x2AVX2Asm(SB), NOSPLIT, $256-72
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	IMUL3Q $1680, CX, R9
	MOVQ   xstride+64(FP), R8
	ADDQ   DI, R8
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	TESTQ  CX, CX
	JZ     done
	MOVL         $0x0f0f0f0f, DX
	VMOVD        DX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x30303030, DX
	VMOVD        DX, X14
	VPBROADCASTD X14, Y14

loop:
	KX8PF6(0)
	KX8PF6(384)
	KX8PF6(768)
	KX8PF6(1152)
	PREFETCHT1 1536(SI)(R9*1)
	PREFETCHT1 1600(SI)(R9*1)
	PREFETCHT1 1664(SI)(R9*1)
	Q6KSCALES
	Q6KCORR20(16, 260)
	Q6KCORR2(32, 264)
	Q6KCORR2(48, 268)
	Q6KCORR2(64, 272)
	Q6KCORR2(80, 276)
	Q6KCORR2(96, 280)
	Q6KCORR2(112, 284)
	Q6KCORR2(128, 288)
	Q6KCHUNK20(144, 208, 4, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(240, 304, 8, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE20(0)
	Q6KCHUNK20(336, 400, 12, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(432, 496, 16, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(0)
	Q6KCHUNK20(528, 592, 20, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(624, 688, 24, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(32)
	Q6KCHUNK20(720, 784, 28, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(816, 880, 32, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(32)
	Q6KCHUNK20(176, 208, 36, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(272, 304, 40, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(16)
	Q6KCHUNK20(368, 400, 44, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(464, 496, 48, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(16)
	Q6KCHUNK20(560, 592, 52, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(656, 688, 56, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(48)
	Q6KCHUNK20(752, 784, 60, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(848, 880, 64, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(48)
	Q6KCHUNK20(144, 208, 68, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(240, 304, 72, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(64)
	Q6KCHUNK20(336, 400, 76, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(432, 496, 80, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(64)
	Q6KCHUNK20(528, 592, 84, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(624, 688, 88, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(96)
	Q6KCHUNK20(720, 784, 92, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(816, 880, 96, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(96)
	Q6KCHUNK20(176, 208, 100, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(272, 304, 104, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(80)
	Q6KCHUNK20(368, 400, 108, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(464, 496, 112, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(80)
	Q6KCHUNK20(560, 592, 116, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(656, 688, 120, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(112)
	Q6KCHUNK20(752, 784, 124, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(848, 880, 128, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(112)
	Q6KCHUNK20(912, 976, 132, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(1008, 1072, 136, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(128)
	Q6KCHUNK20(1104, 1168, 140, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(1200, 1264, 144, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(128)
	Q6KCHUNK20(1296, 1360, 148, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(1392, 1456, 152, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(160)
	Q6KCHUNK20(1488, 1552, 156, VPSRLW, 0, VPSLLW, 4)
	Q6KCHUNK2(1584, 1648, 160, VPSRLW, 0, VPSLLW, 4)
	Q6KSCALE2(160)
	Q6KCHUNK20(944, 976, 164, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(1040, 1072, 168, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(144)
	Q6KCHUNK20(1136, 1168, 172, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(1232, 1264, 176, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(144)
	Q6KCHUNK20(1328, 1360, 180, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(1424, 1456, 184, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(176)
	Q6KCHUNK20(1520, 1552, 188, VPSRLW, 0, VPSLLW, 2)
	Q6KCHUNK2(1616, 1648, 192, VPSRLW, 0, VPSLLW, 2)
	Q6KSCALE2(176)
	Q6KCHUNK20(912, 976, 196, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(1008, 1072, 200, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(192)
	Q6KCHUNK20(1104, 1168, 204, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(1200, 1264, 208, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(192)
	Q6KCHUNK20(1296, 1360, 212, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(1392, 1456, 216, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(224)
	Q6KCHUNK20(1488, 1552, 220, VPSRLW, 4, VPSLLW, 0)
	Q6KCHUNK2(1584, 1648, 224, VPSRLW, 4, VPSLLW, 0)
	Q6KSCALE2(224)
	Q6KCHUNK20(944, 976, 228, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(1040, 1072, 232, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(208)
	Q6KCHUNK20(1136, 1168, 236, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(1232, 1264, 240, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(208)
	Q6KCHUNK20(1328, 1360, 244, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(1424, 1456, 248, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(240)
	Q6KCHUNK20(1520, 1552, 252, VPSRLW, 4, VPSRLW, 2)
	Q6KCHUNK2(1616, 1648, 256, VPSRLW, 4, VPSRLW, 2)
	Q6KSCALE2(240)
	Q6KSTEP2
	ADDQ $1680, SI
	ADDQ $292, DI
	ADDQ $292, R8
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, 32(AX)
	VZEROUPPER
	RET


// The AVX-512 (VNNI) kernels for the same packed layout: a zmm holds one
// 32-byte chunk of the eight rows twice (VBROADCASTI64X4), lanes 0–7 for the
// values of one sub-block and lanes 8–15 for those of the next (Q4_K: low
// nibbles, and high nibbles left in place, i.e. times 16), and VPDPBUSD adds
// the four products of each lane into dwords against the activation quants
// spread to match by VPERMD. A sub-block's dword sums are exact (Q4_K's
// high half at most 16·8·4·15·127 = 975,360), are multiplied by the lanes'
// scales with VPMULLD and added over the super-block (at most 2^28); the
// high half is divided by 16 (exact: every term is a multiple of 16) and
// added to the low half, and the float step is KX8STEP4's, so each row gets
// the plain dot's bits as in the AVX2 kernels.

// kx8zperm<> + 64i (i = 0…7) are VPERMD indices that spread dword i of a
// zmm over lanes 0–7 and dword 8+i over lanes 8–15; + 512 + 64j (j = 0…7)
// spread dword 2j over lanes 0–7 and 2j+1 over lanes 8–15.
DATA kx8zperm<>+0(SB)/8, $0x0000000000000000
DATA kx8zperm<>+8(SB)/8, $0x0000000000000000
DATA kx8zperm<>+16(SB)/8, $0x0000000000000000
DATA kx8zperm<>+24(SB)/8, $0x0000000000000000
DATA kx8zperm<>+32(SB)/8, $0x0000000800000008
DATA kx8zperm<>+40(SB)/8, $0x0000000800000008
DATA kx8zperm<>+48(SB)/8, $0x0000000800000008
DATA kx8zperm<>+56(SB)/8, $0x0000000800000008
DATA kx8zperm<>+64(SB)/8, $0x0000000100000001
DATA kx8zperm<>+72(SB)/8, $0x0000000100000001
DATA kx8zperm<>+80(SB)/8, $0x0000000100000001
DATA kx8zperm<>+88(SB)/8, $0x0000000100000001
DATA kx8zperm<>+96(SB)/8, $0x0000000900000009
DATA kx8zperm<>+104(SB)/8, $0x0000000900000009
DATA kx8zperm<>+112(SB)/8, $0x0000000900000009
DATA kx8zperm<>+120(SB)/8, $0x0000000900000009
DATA kx8zperm<>+128(SB)/8, $0x0000000200000002
DATA kx8zperm<>+136(SB)/8, $0x0000000200000002
DATA kx8zperm<>+144(SB)/8, $0x0000000200000002
DATA kx8zperm<>+152(SB)/8, $0x0000000200000002
DATA kx8zperm<>+160(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+168(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+176(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+184(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+192(SB)/8, $0x0000000300000003
DATA kx8zperm<>+200(SB)/8, $0x0000000300000003
DATA kx8zperm<>+208(SB)/8, $0x0000000300000003
DATA kx8zperm<>+216(SB)/8, $0x0000000300000003
DATA kx8zperm<>+224(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+232(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+240(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+248(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+256(SB)/8, $0x0000000400000004
DATA kx8zperm<>+264(SB)/8, $0x0000000400000004
DATA kx8zperm<>+272(SB)/8, $0x0000000400000004
DATA kx8zperm<>+280(SB)/8, $0x0000000400000004
DATA kx8zperm<>+288(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+296(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+304(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+312(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+320(SB)/8, $0x0000000500000005
DATA kx8zperm<>+328(SB)/8, $0x0000000500000005
DATA kx8zperm<>+336(SB)/8, $0x0000000500000005
DATA kx8zperm<>+344(SB)/8, $0x0000000500000005
DATA kx8zperm<>+352(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+360(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+368(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+376(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+384(SB)/8, $0x0000000600000006
DATA kx8zperm<>+392(SB)/8, $0x0000000600000006
DATA kx8zperm<>+400(SB)/8, $0x0000000600000006
DATA kx8zperm<>+408(SB)/8, $0x0000000600000006
DATA kx8zperm<>+416(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+424(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+432(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+440(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+448(SB)/8, $0x0000000700000007
DATA kx8zperm<>+456(SB)/8, $0x0000000700000007
DATA kx8zperm<>+464(SB)/8, $0x0000000700000007
DATA kx8zperm<>+472(SB)/8, $0x0000000700000007
DATA kx8zperm<>+480(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+488(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+496(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+504(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+512(SB)/8, $0x0000000000000000
DATA kx8zperm<>+520(SB)/8, $0x0000000000000000
DATA kx8zperm<>+528(SB)/8, $0x0000000000000000
DATA kx8zperm<>+536(SB)/8, $0x0000000000000000
DATA kx8zperm<>+544(SB)/8, $0x0000000100000001
DATA kx8zperm<>+552(SB)/8, $0x0000000100000001
DATA kx8zperm<>+560(SB)/8, $0x0000000100000001
DATA kx8zperm<>+568(SB)/8, $0x0000000100000001
DATA kx8zperm<>+576(SB)/8, $0x0000000200000002
DATA kx8zperm<>+584(SB)/8, $0x0000000200000002
DATA kx8zperm<>+592(SB)/8, $0x0000000200000002
DATA kx8zperm<>+600(SB)/8, $0x0000000200000002
DATA kx8zperm<>+608(SB)/8, $0x0000000300000003
DATA kx8zperm<>+616(SB)/8, $0x0000000300000003
DATA kx8zperm<>+624(SB)/8, $0x0000000300000003
DATA kx8zperm<>+632(SB)/8, $0x0000000300000003
DATA kx8zperm<>+640(SB)/8, $0x0000000400000004
DATA kx8zperm<>+648(SB)/8, $0x0000000400000004
DATA kx8zperm<>+656(SB)/8, $0x0000000400000004
DATA kx8zperm<>+664(SB)/8, $0x0000000400000004
DATA kx8zperm<>+672(SB)/8, $0x0000000500000005
DATA kx8zperm<>+680(SB)/8, $0x0000000500000005
DATA kx8zperm<>+688(SB)/8, $0x0000000500000005
DATA kx8zperm<>+696(SB)/8, $0x0000000500000005
DATA kx8zperm<>+704(SB)/8, $0x0000000600000006
DATA kx8zperm<>+712(SB)/8, $0x0000000600000006
DATA kx8zperm<>+720(SB)/8, $0x0000000600000006
DATA kx8zperm<>+728(SB)/8, $0x0000000600000006
DATA kx8zperm<>+736(SB)/8, $0x0000000700000007
DATA kx8zperm<>+744(SB)/8, $0x0000000700000007
DATA kx8zperm<>+752(SB)/8, $0x0000000700000007
DATA kx8zperm<>+760(SB)/8, $0x0000000700000007
DATA kx8zperm<>+768(SB)/8, $0x0000000800000008
DATA kx8zperm<>+776(SB)/8, $0x0000000800000008
DATA kx8zperm<>+784(SB)/8, $0x0000000800000008
DATA kx8zperm<>+792(SB)/8, $0x0000000800000008
DATA kx8zperm<>+800(SB)/8, $0x0000000900000009
DATA kx8zperm<>+808(SB)/8, $0x0000000900000009
DATA kx8zperm<>+816(SB)/8, $0x0000000900000009
DATA kx8zperm<>+824(SB)/8, $0x0000000900000009
DATA kx8zperm<>+832(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+840(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+848(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+856(SB)/8, $0x0000000a0000000a
DATA kx8zperm<>+864(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+872(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+880(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+888(SB)/8, $0x0000000b0000000b
DATA kx8zperm<>+896(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+904(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+912(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+920(SB)/8, $0x0000000c0000000c
DATA kx8zperm<>+928(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+936(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+944(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+952(SB)/8, $0x0000000d0000000d
DATA kx8zperm<>+960(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+968(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+976(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+984(SB)/8, $0x0000000e0000000e
DATA kx8zperm<>+992(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+1000(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+1008(SB)/8, $0x0000000f0000000f
DATA kx8zperm<>+1016(SB)/8, $0x0000000f0000000f
GLOBL kx8zperm<>(SB), RODATA|NOPTR, $1024

// kx8zq4m<> keeps the low nibbles in lanes 0–7 and the high ones (in
// place) in lanes 8–15; kx8zsh<> shifts lanes 8–15 right by 4 (Q4_K's sums;
// Q5_K's quants, whose bits that cross from the next byte are masked off).
DATA kx8zq4m<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA kx8zq4m<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA kx8zq4m<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA kx8zq4m<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA kx8zq4m<>+32(SB)/8, $0xf0f0f0f0f0f0f0f0
DATA kx8zq4m<>+40(SB)/8, $0xf0f0f0f0f0f0f0f0
DATA kx8zq4m<>+48(SB)/8, $0xf0f0f0f0f0f0f0f0
DATA kx8zq4m<>+56(SB)/8, $0xf0f0f0f0f0f0f0f0
GLOBL kx8zq4m<>(SB), RODATA|NOPTR, $64

DATA kx8zsh<>+0(SB)/8, $0x0000000000000000
DATA kx8zsh<>+8(SB)/8, $0x0000000000000000
DATA kx8zsh<>+16(SB)/8, $0x0000000000000000
DATA kx8zsh<>+24(SB)/8, $0x0000000000000000
DATA kx8zsh<>+32(SB)/8, $0x0000000400000004
DATA kx8zsh<>+40(SB)/8, $0x0000000400000004
DATA kx8zsh<>+48(SB)/8, $0x0000000400000004
DATA kx8zsh<>+56(SB)/8, $0x0000000400000004
GLOBL kx8zsh<>(SB), RODATA|NOPTR, $64


// kx8zperm6<> + 64k and + 256 + 64k (k = 0…3) are VPERMD indices that
// spread dwords k and k+4 (k+8 and k+12) of a zmm over lanes 0–7 and 8–15.
DATA kx8zperm6<>+0(SB)/8, $0x0000000000000000
DATA kx8zperm6<>+8(SB)/8, $0x0000000000000000
DATA kx8zperm6<>+16(SB)/8, $0x0000000000000000
DATA kx8zperm6<>+24(SB)/8, $0x0000000000000000
DATA kx8zperm6<>+32(SB)/8, $0x0000000400000004
DATA kx8zperm6<>+40(SB)/8, $0x0000000400000004
DATA kx8zperm6<>+48(SB)/8, $0x0000000400000004
DATA kx8zperm6<>+56(SB)/8, $0x0000000400000004
DATA kx8zperm6<>+64(SB)/8, $0x0000000100000001
DATA kx8zperm6<>+72(SB)/8, $0x0000000100000001
DATA kx8zperm6<>+80(SB)/8, $0x0000000100000001
DATA kx8zperm6<>+88(SB)/8, $0x0000000100000001
DATA kx8zperm6<>+96(SB)/8, $0x0000000500000005
DATA kx8zperm6<>+104(SB)/8, $0x0000000500000005
DATA kx8zperm6<>+112(SB)/8, $0x0000000500000005
DATA kx8zperm6<>+120(SB)/8, $0x0000000500000005
DATA kx8zperm6<>+128(SB)/8, $0x0000000200000002
DATA kx8zperm6<>+136(SB)/8, $0x0000000200000002
DATA kx8zperm6<>+144(SB)/8, $0x0000000200000002
DATA kx8zperm6<>+152(SB)/8, $0x0000000200000002
DATA kx8zperm6<>+160(SB)/8, $0x0000000600000006
DATA kx8zperm6<>+168(SB)/8, $0x0000000600000006
DATA kx8zperm6<>+176(SB)/8, $0x0000000600000006
DATA kx8zperm6<>+184(SB)/8, $0x0000000600000006
DATA kx8zperm6<>+192(SB)/8, $0x0000000300000003
DATA kx8zperm6<>+200(SB)/8, $0x0000000300000003
DATA kx8zperm6<>+208(SB)/8, $0x0000000300000003
DATA kx8zperm6<>+216(SB)/8, $0x0000000300000003
DATA kx8zperm6<>+224(SB)/8, $0x0000000700000007
DATA kx8zperm6<>+232(SB)/8, $0x0000000700000007
DATA kx8zperm6<>+240(SB)/8, $0x0000000700000007
DATA kx8zperm6<>+248(SB)/8, $0x0000000700000007
DATA kx8zperm6<>+256(SB)/8, $0x0000000800000008
DATA kx8zperm6<>+264(SB)/8, $0x0000000800000008
DATA kx8zperm6<>+272(SB)/8, $0x0000000800000008
DATA kx8zperm6<>+280(SB)/8, $0x0000000800000008
DATA kx8zperm6<>+288(SB)/8, $0x0000000c0000000c
DATA kx8zperm6<>+296(SB)/8, $0x0000000c0000000c
DATA kx8zperm6<>+304(SB)/8, $0x0000000c0000000c
DATA kx8zperm6<>+312(SB)/8, $0x0000000c0000000c
DATA kx8zperm6<>+320(SB)/8, $0x0000000900000009
DATA kx8zperm6<>+328(SB)/8, $0x0000000900000009
DATA kx8zperm6<>+336(SB)/8, $0x0000000900000009
DATA kx8zperm6<>+344(SB)/8, $0x0000000900000009
DATA kx8zperm6<>+352(SB)/8, $0x0000000d0000000d
DATA kx8zperm6<>+360(SB)/8, $0x0000000d0000000d
DATA kx8zperm6<>+368(SB)/8, $0x0000000d0000000d
DATA kx8zperm6<>+376(SB)/8, $0x0000000d0000000d
DATA kx8zperm6<>+384(SB)/8, $0x0000000a0000000a
DATA kx8zperm6<>+392(SB)/8, $0x0000000a0000000a
DATA kx8zperm6<>+400(SB)/8, $0x0000000a0000000a
DATA kx8zperm6<>+408(SB)/8, $0x0000000a0000000a
DATA kx8zperm6<>+416(SB)/8, $0x0000000e0000000e
DATA kx8zperm6<>+424(SB)/8, $0x0000000e0000000e
DATA kx8zperm6<>+432(SB)/8, $0x0000000e0000000e
DATA kx8zperm6<>+440(SB)/8, $0x0000000e0000000e
DATA kx8zperm6<>+448(SB)/8, $0x0000000b0000000b
DATA kx8zperm6<>+456(SB)/8, $0x0000000b0000000b
DATA kx8zperm6<>+464(SB)/8, $0x0000000b0000000b
DATA kx8zperm6<>+472(SB)/8, $0x0000000b0000000b
DATA kx8zperm6<>+480(SB)/8, $0x0000000f0000000f
DATA kx8zperm6<>+488(SB)/8, $0x0000000f0000000f
DATA kx8zperm6<>+496(SB)/8, $0x0000000f0000000f
DATA kx8zperm6<>+504(SB)/8, $0x0000000f0000000f
GLOBL kx8zperm6<>(SB), RODATA|NOPTR, $512

// kx8zrot5<> + 64j rotates bit 2j of every byte to bit 4 in lanes 0–7 and
// bit 2j+1 in lanes 8–15 (VPROLVD counts).
DATA kx8zrot5<>+0(SB)/8, $0x0000000400000004
DATA kx8zrot5<>+8(SB)/8, $0x0000000400000004
DATA kx8zrot5<>+16(SB)/8, $0x0000000400000004
DATA kx8zrot5<>+24(SB)/8, $0x0000000400000004
DATA kx8zrot5<>+32(SB)/8, $0x0000000300000003
DATA kx8zrot5<>+40(SB)/8, $0x0000000300000003
DATA kx8zrot5<>+48(SB)/8, $0x0000000300000003
DATA kx8zrot5<>+56(SB)/8, $0x0000000300000003
DATA kx8zrot5<>+64(SB)/8, $0x0000000200000002
DATA kx8zrot5<>+72(SB)/8, $0x0000000200000002
DATA kx8zrot5<>+80(SB)/8, $0x0000000200000002
DATA kx8zrot5<>+88(SB)/8, $0x0000000200000002
DATA kx8zrot5<>+96(SB)/8, $0x0000000100000001
DATA kx8zrot5<>+104(SB)/8, $0x0000000100000001
DATA kx8zrot5<>+112(SB)/8, $0x0000000100000001
DATA kx8zrot5<>+120(SB)/8, $0x0000000100000001
DATA kx8zrot5<>+128(SB)/8, $0x0000000000000000
DATA kx8zrot5<>+136(SB)/8, $0x0000000000000000
DATA kx8zrot5<>+144(SB)/8, $0x0000000000000000
DATA kx8zrot5<>+152(SB)/8, $0x0000000000000000
DATA kx8zrot5<>+160(SB)/8, $0x0000001f0000001f
DATA kx8zrot5<>+168(SB)/8, $0x0000001f0000001f
DATA kx8zrot5<>+176(SB)/8, $0x0000001f0000001f
DATA kx8zrot5<>+184(SB)/8, $0x0000001f0000001f
DATA kx8zrot5<>+192(SB)/8, $0x0000001e0000001e
DATA kx8zrot5<>+200(SB)/8, $0x0000001e0000001e
DATA kx8zrot5<>+208(SB)/8, $0x0000001e0000001e
DATA kx8zrot5<>+216(SB)/8, $0x0000001e0000001e
DATA kx8zrot5<>+224(SB)/8, $0x0000001d0000001d
DATA kx8zrot5<>+232(SB)/8, $0x0000001d0000001d
DATA kx8zrot5<>+240(SB)/8, $0x0000001d0000001d
DATA kx8zrot5<>+248(SB)/8, $0x0000001d0000001d
GLOBL kx8zrot5<>(SB), RODATA|NOPTR, $256


// KX8ZCONST loads the constants of the AVX-512 K x8 kernels: the VPERMD
// indices into Z16–Z27, the shift counts into Z28, 0x0f bytes into Y15 and
// int16 ones into Y14.
#define KX8ZCONST \
	VMOVDQU64    kx8zperm<>+0(SB), Z16; \
	VMOVDQU64    kx8zperm<>+64(SB), Z17; \
	VMOVDQU64    kx8zperm<>+128(SB), Z18; \
	VMOVDQU64    kx8zperm<>+192(SB), Z19; \
	VMOVDQU64    kx8zperm<>+256(SB), Z20; \
	VMOVDQU64    kx8zperm<>+320(SB), Z21; \
	VMOVDQU64    kx8zperm<>+384(SB), Z22; \
	VMOVDQU64    kx8zperm<>+448(SB), Z23; \
	VMOVDQU64    kx8zperm<>+512(SB), Z24; \
	VMOVDQU64    kx8zperm<>+576(SB), Z25; \
	VMOVDQU64    kx8zperm<>+640(SB), Z26; \
	VMOVDQU64    kx8zperm<>+704(SB), Z27; \
	VMOVDQU64    kx8zsh<>(SB), Z28; \
	MOVL         $0x0f0f0f0f, DX; \
	VMOVD        DX, X15; \
	VPBROADCASTD X15, Y15; \
	MOVL         $0x00010001, DX; \
	VMOVD        DX, X14; \
	VPBROADCASTD X14, Y14

// KX8ZSCALES stores the sub-blocks' scales and mins (KX8UNPACK) as bytes:
// those of sub-blocks 2j and 2j+1 at 16j(SP), the mins at 64 more, for
// VPMOVZXBD to spread over lanes 0–7 and 8–15.
#define KX8ZSCALES \
	KX8UNPACK; \
	VMOVDQU Y3, 0(SP); \
	VMOVDQU Y4, 32(SP); \
	VMOVDQU Y5, 64(SP); \
	VMOVDQU Y6, 96(SP)

// KX8ZMINS sums min·bsum per lane over the super-block into Y11 (the
// 16-value sums at 260(DI), added in pairs to each sub-block's; both
// factors fit 16 bits, so VPMADDWD multiplies the dwords).
#define KX8ZMIN(j, idx, acc) \
	VPMOVZXBD 64+16*j(SP), Z2; \
	VPERMD    Z7, idx, Z3; \
	VPMADDWD  Z3, Z2, Z2; \
	VPADDD    Z2, acc, acc

#define KX8ZMINS \
	VMOVDQU   260(DI), Y7; \
	VPMADDWD  Y14, Y7, Y7; \
	VPMOVZXBD 64(SP), Z2; \
	VPERMD    Z7, Z24, Z3; \
	VPMADDWD  Z3, Z2, Z13; \
	KX8ZMIN(1, Z25, Z13); \
	KX8ZMIN(2, Z26, Z13); \
	KX8ZMIN(3, Z27, Z13); \
	VEXTRACTI64X4 $1, Z13, Y2; \
	VPADDD    Y2, Y13, Y11

// Q4KZ adds chunk q(SI) (four values of the sub-blocks 2j and 2j+1) times
// the activations of dword idx of zx to acc.
#define Q4KZ(q, idx, zx, acc) \
	VBROADCASTI64X4 q(SI), Z0; \
	VPANDD          Z31, Z0, Z0; \
	VPERMD          zx, idx, Z1; \
	VPDPBUSD        Z1, Z0, acc

// Q4KZGROUP sums values 64j … 64j+63 of the super-block into acc: their
// activations at 4+64j(DI), the chunks at 128+256j(SI).
#define Q4KZGROUP(j, zx, acc) \
	VMOVDQU64 4+64*j(DI), zx; \
	VPXORD    acc, acc, acc; \
	Q4KZ(128+256*j, Z16, zx, acc); \
	Q4KZ(160+256*j, Z17, zx, acc); \
	Q4KZ(192+256*j, Z18, zx, acc); \
	Q4KZ(224+256*j, Z19, zx, acc); \
	Q4KZ(256+256*j, Z20, zx, acc); \
	Q4KZ(288+256*j, Z21, zx, acc); \
	Q4KZ(320+256*j, Z22, zx, acc); \
	Q4KZ(352+256*j, Z23, zx, acc); \
	VPMOVZXBD 16*j(SP), Z2; \
	VPMULLD   Z2, acc, acc

// KX8ZSUM adds the four groups' sums Z4–Z7, divides lanes 8–15 by the
// shifts in Z28 and adds them to lanes 0–7, into Y10.
#define KX8ZSUM \
	VPADDD        Z5, Z4, Z4; \
	VPADDD        Z7, Z6, Z6; \
	VPADDD        Z6, Z4, Z4; \
	VPSRAVD       Z28, Z4, Z4; \
	VEXTRACTI64X4 $1, Z4, Y2; \
	VPADDD        Y2, Y4, Y10

// func q4Kx8GemvAVX512Asm(out *[8]float32, w, x []byte, nb int)
TEXT ·q4Kx8GemvAVX512Asm(SB), NOSPLIT, $128-64
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	VXORPS Y12, Y12, Y12
	TESTQ  CX, CX
	JZ     done
	KX8ZCONST
	VMOVDQU64 kx8zq4m<>(SB), Z31

loop:
	KX8ZSCALES
	KX8ZMINS
	Q4KZGROUP(0, Z29, Z4)
	Q4KZGROUP(1, Z29, Z5)
	Q4KZGROUP(2, Z29, Z6)
	Q4KZGROUP(3, Z29, Z7)
	KX8ZSUM
	KX8STEP4
	ADDQ $1152, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VZEROUPPER
	RET


// The four-token K x8 tiles (AVX-512) run the gemv's sequence for each of
// four tokens while sharing the weights' work: a chunk is broadcast and
// masked once and multiplied by each token's activations (VPERMD straight
// from memory); a group's scales are widened once. Token t's Q8_K row is at
// DI + t·R8 (R9 = 3·R8), its float accumulator Y12, Y13, then Y29, Y30
// (Q4_K) or Y28, Y29 (Q5_K and Q6_K, which use Z30 otherwise).
// The integer sums are exact, so adding the groups in the order they end
// (instead of the gemv's pairs) leaves them unchanged, and the float step is
// KX8STEP4's, in its order: each row still gets the plain dot's bits.

// KX8T4PF prefetches three lines of the next group's super-block, from byte
// off of the current one's (R13 = the group's bytes ahead): a batch reads a
// group from memory in its first tile call and from cache in the others.
#define KX8T4PF(off) \
	PREFETCHT1 off(SI)(R13*1); \
	PREFETCHT1 off+64(SI)(R13*1); \
	PREFETCHT1 off+128(SI)(R13*1)

// KX8T4DOT adds the quants in zq times each token's activations at xo (+
// t·R8) spread by idx to acc0 … acc3, with s0 and s1 for scratch.
#define KX8T4DOT(xo, idx, zq, s0, s1, acc0, acc1, acc2, acc3) \
	VPERMD   xo(DI), idx, s0; \
	VPDPBUSD s0, zq, acc0; \
	VPERMD   xo(DI)(R8*1), idx, s1; \
	VPDPBUSD s1, zq, acc1; \
	VPERMD   xo(DI)(R8*2), idx, s0; \
	VPDPBUSD s0, zq, acc2; \
	VPERMD   xo(DI)(R9*1), idx, s1; \
	VPDPBUSD s1, zq, acc3

// KX8T4OUT stores the four tokens' results of a tile (KX8T4ENTER).
#define KX8T4OUT(a2, a3) \
	VMOVUPS Y12, (AX); \
	VMOVUPS Y13, 32(AX); \
	VMOVUPS a2, 64(AX); \
	VMOVUPS a3, 96(AX); \
	VZEROUPPER; \
	RET

// Q4KT4CHUNK adds chunk q(SI) times each token's activations of dword idx
// of its group (at xo + t·R8) to acc0 … acc3.
#define Q4KT4CHUNK(q, xo, idx, acc0, acc1, acc2, acc3) \
	VBROADCASTI64X4 q(SI), Z0; \
	VPANDD          Z31, Z0, Z0; \
	KX8T4DOT(xo, idx, Z0, Z1, Z3, acc0, acc1, acc2, acc3)

// Q4KT4GROUP sums values 64j … 64j+63 of the super-block for the four tokens
// into acc0 … acc3 (zeroed first) and multiplies them by the sub-blocks'
// scales.
#define Q4KT4GROUP(j, acc0, acc1, acc2, acc3) \
	VPXORD     acc0, acc0, acc0; \
	VPXORD     acc1, acc1, acc1; \
	VPXORD     acc2, acc2, acc2; \
	VPXORD     acc3, acc3, acc3; \
	Q4KT4CHUNK(128+256*j, 4+64*j, Z16, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(160+256*j, 4+64*j, Z17, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(192+256*j, 4+64*j, Z18, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(224+256*j, 4+64*j, Z19, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(256+256*j, 4+64*j, Z20, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(288+256*j, 4+64*j, Z21, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(320+256*j, 4+64*j, Z22, acc0, acc1, acc2, acc3); \
	Q4KT4CHUNK(352+256*j, 4+64*j, Z23, acc0, acc1, acc2, acc3); \
	VPMOVZXBD  16*j(SP), Z2; \
	VPMULLD    Z2, acc0, acc0; \
	VPMULLD    Z2, acc1, acc1; \
	VPMULLD    Z2, acc2, acc2; \
	VPMULLD    Z2, acc3, acc3

// KX8T4ADD adds the group sums Z4–Z7 to the super-block sums Z8–Z11.
#define KX8T4ADD \
	VPADDD Z4, Z8, Z8; \
	VPADDD Z5, Z9, Z9; \
	VPADDD Z6, Z10, Z10; \
	VPADDD Z7, Z11, Z11

// func q4Kx8TileAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)
TEXT ·q4Kx8TileAVX512Asm(SB), NOSPLIT, $128-72
	KX8T4ENTER(1152, Y29, Y30)
	KX8ZCONST
	VMOVDQU64 kx8zq4m<>(SB), Z31

loop:
	KX8T4PF(0)
	KX8ZSCALES
	KX8T4PF(192)
	Q4KT4GROUP(0, Z8, Z9, Z10, Z11)
	KX8T4PF(384)
	Q4KT4GROUP(1, Z4, Z5, Z6, Z7)
	KX8T4ADD
	KX8T4PF(576)
	Q4KT4GROUP(2, Z4, Z5, Z6, Z7)
	KX8T4ADD
	KX8T4PF(768)
	Q4KT4GROUP(3, Z4, Z5, Z6, Z7)
	KX8T4ADD
	KX8T4PF(960)
	LEAQ (DI)(R8*1), R10
	LEAQ (DI)(R8*2), R11
	LEAQ (DI)(R9*1), R12
	KX8T4END(DI, Z8, Y8, Z4, Y4, Y12, 64)
	KX8T4END(R10, Z9, Y9, Z5, Y5, Y13, 64)
	KX8T4END(R11, Z10, Y10, Z6, Y6, Y29, 64)
	KX8T4END(R12, Z11, Y11, Z7, Y7, Y30, 64)
	ADDQ $1152, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	KX8T4OUT(Y29, Y30)

// func q4Kx8PairAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)
TEXT ·q4Kx8PairAVX512Asm(SB), NOSPLIT, $256-72
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	MOVQ   xstride+64(FP), R8
	IMUL3Q $1152, CX, R12
	LEAQ   (R12)(R12*1), R13
	LEAQ   (R13)(R12*1), R14
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y29, Y29, Y29
	VXORPS Y30, Y30, Y30
	TESTQ  CX, CX
	JZ     done
	KX8ZCONST
	VMOVDQU64 kx8zq4m<>(SB), Z31

loop:
	KX8PPF(0)
	KX8ZSCALES
	KX8PSCALES
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	KX8PPF(192)
	Q4KPGROUP(0)
	KX8PPF(384)
	Q4KPGROUP(1)
	KX8PPF(576)
	Q4KPGROUP(2)
	KX8PPF(768)
	Q4KPGROUP(3)
	KX8PPF(960)
	LEAQ (DI)(R8*1), R10
	KX8T4END(DI, Z8, Y8, Z4, Y4, Y12, 64)
	KX8T4END(R10, Z9, Y9, Z5, Y5, Y13, 64)
	ADDQ R12, SI
	KX8T4END(DI, Z10, Y10, Z6, Y6, Y29, 192)
	KX8T4END(R10, Z11, Y11, Z7, Y7, Y30, 192)
	SUBQ R12, SI
	ADDQ $1152, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, 32(AX)
	VMOVUPS Y29, 64(AX)
	VMOVUPS Y30, 96(AX)
	VZEROUPPER
	RET

// Q5KZ is Q4KZ for Q5_K: the high nibbles are shifted down in lanes 8–15
// (Z30: VPSRLVD by 4; only each byte's low four bits are kept) and each
// value's fifth bit, bit 2j (2j+1) of the qh chunk at h(SI), is rotated to
// bit 4 (rot) and put in with VPTERNLOGD (A & Z31) | B, Z31 holding 0x0f
// bytes and Z28 0x10 bytes.
#define Q5KZ(q, h, rot, idx, zx, acc) \
	VBROADCASTI64X4 q(SI), Z0; \
	VPSRLVD         Z30, Z0, Z0; \
	VBROADCASTI64X4 h(SI), Z3; \
	VPROLVD         rot, Z3, Z3; \
	VPANDD          Z28, Z3, Z3; \
	VPTERNLOGD      $0xf8, Z31, Z0, Z3; \
	VPERMD          zx, idx, Z1; \
	VPDPBUSD        Z1, Z3, acc

// Q5KZGROUP is Q4KZGROUP for Q5_K: qs chunk i of group j at q0 + 32i when
// j = 0 (interleaved with qh: q0 + 64i) … the chunk offsets are given.
#define Q5KZGROUP(j, q0, q1, q2, q3, q4, q5, q6, q7, zx, acc) \
	VMOVDQU64 4+64*j(DI), zx; \
	VMOVDQU64 kx8zrot5<>+64*j(SB), Z2; \
	VPXORD    acc, acc, acc; \
	Q5KZ(q0, 128, Z2, Z16, zx, acc); \
	Q5KZ(q1, 192, Z2, Z17, zx, acc); \
	Q5KZ(q2, 256, Z2, Z18, zx, acc); \
	Q5KZ(q3, 320, Z2, Z19, zx, acc); \
	Q5KZ(q4, 384, Z2, Z20, zx, acc); \
	Q5KZ(q5, 448, Z2, Z21, zx, acc); \
	Q5KZ(q6, 512, Z2, Z22, zx, acc); \
	Q5KZ(q7, 576, Z2, Z23, zx, acc); \
	VPMOVZXBD 16*j(SP), Z2; \
	VPMULLD   Z2, acc, acc

// func q5Kx8GemvAVX512Asm(out *[8]float32, w, x []byte, nb int)
TEXT ·q5Kx8GemvAVX512Asm(SB), NOSPLIT, $128-64
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	VXORPS Y12, Y12, Y12
	TESTQ  CX, CX
	JZ     done
	KX8ZCONST
	VMOVDQU64    kx8zsh<>(SB), Z30
	VPBROADCASTD X15, Z31
	MOVL         $0x10101010, DX
	VMOVD        DX, X28
	VPBROADCASTD X28, Z28

loop:
	KX8ZSCALES
	KX8ZMINS
	Q5KZGROUP(0, 160, 224, 288, 352, 416, 480, 544, 608, Z29, Z4)
	Q5KZGROUP(1, 640, 672, 704, 736, 768, 800, 832, 864, Z29, Z5)
	Q5KZGROUP(2, 896, 928, 960, 992, 1024, 1056, 1088, 1120, Z29, Z6)
	Q5KZGROUP(3, 1152, 1184, 1216, 1248, 1280, 1312, 1344, 1376, Z29, Z7)
	VPADDD        Z5, Z4, Z4
	VPADDD        Z7, Z6, Z6
	VPADDD        Z6, Z4, Z4
	VEXTRACTI64X4 $1, Z4, Y2
	VPADDD        Y2, Y4, Y10
	KX8STEP4
	ADDQ $1408, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VZEROUPPER
	RET

// kx8z10<> is 0x10 bytes (the Q5_K tile's mask of the fifth bit, read from
// memory: the tile has no register left for it).
DATA kx8z10<>+0(SB)/8, $0x1010101010101010
DATA kx8z10<>+8(SB)/8, $0x1010101010101010
DATA kx8z10<>+16(SB)/8, $0x1010101010101010
DATA kx8z10<>+24(SB)/8, $0x1010101010101010
DATA kx8z10<>+32(SB)/8, $0x1010101010101010
DATA kx8z10<>+40(SB)/8, $0x1010101010101010
DATA kx8z10<>+48(SB)/8, $0x1010101010101010
DATA kx8z10<>+56(SB)/8, $0x1010101010101010
GLOBL kx8z10<>(SB), RODATA|NOPTR, $64

// Q5KT4CHUNK is Q5KZ's quants (qs chunk at q(SI), qh chunk at h(SI), group
// j's rotation) made once and multiplied by the four tokens' activations.
#define Q5KT4CHUNK(q, h, j, xo, idx) \
	VBROADCASTI64X4 q(SI), Z0; \
	VPSRLVD         Z30, Z0, Z0; \
	VBROADCASTI64X4 h(SI), Z3; \
	VPROLVD         kx8zrot5<>+64*j(SB), Z3, Z3; \
	VPANDD          kx8z10<>(SB), Z3, Z3; \
	VPTERNLOGD      $0xf8, Z31, Z0, Z3; \
	KX8T4DOT(xo, idx, Z3, Z1, Z2, Z4, Z5, Z6, Z7)

// Q5KT4GROUP is Q5KZGROUP for the four tokens: the group's sums in Z4–Z7,
// scaled and added to Z8–Z11.
#define Q5KT4GROUP(j, q0, q1, q2, q3, q4, q5, q6, q7) \
	VPXORD     Z4, Z4, Z4; \
	VPXORD     Z5, Z5, Z5; \
	VPXORD     Z6, Z6, Z6; \
	VPXORD     Z7, Z7, Z7; \
	Q5KT4CHUNK(q0, 128, j, 4+64*j, Z16); \
	Q5KT4CHUNK(q1, 192, j, 4+64*j, Z17); \
	Q5KT4CHUNK(q2, 256, j, 4+64*j, Z18); \
	Q5KT4CHUNK(q3, 320, j, 4+64*j, Z19); \
	Q5KT4CHUNK(q4, 384, j, 4+64*j, Z20); \
	Q5KT4CHUNK(q5, 448, j, 4+64*j, Z21); \
	Q5KT4CHUNK(q6, 512, j, 4+64*j, Z22); \
	Q5KT4CHUNK(q7, 576, j, 4+64*j, Z23); \
	VPMOVZXBD  16*j(SP), Z2; \
	VPMULLD    Z2, Z4, Z4; \
	VPMULLD    Z2, Z5, Z5; \
	VPMULLD    Z2, Z6, Z6; \
	VPMULLD    Z2, Z7, Z7; \
	KX8T4ADD

// func q5Kx8TileAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)
TEXT ·q5Kx8TileAVX512Asm(SB), NOSPLIT, $128-72
	KX8T4ENTER(1408, Y28, Y29)
	KX8ZCONST
	VMOVDQU64    kx8zsh<>(SB), Z30
	VPBROADCASTD X15, Z31

loop:
	KX8T4PF(0)
	KX8ZSCALES
	KX8T4PF(192)
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	Q5KT4GROUP(0, 160, 224, 288, 352, 416, 480, 544, 608)
	KX8T4PF(384)
	KX8T4PF(576)
	Q5KT4GROUP(1, 640, 672, 704, 736, 768, 800, 832, 864)
	KX8T4PF(768)
	KX8T4PF(960)
	Q5KT4GROUP(2, 896, 928, 960, 992, 1024, 1056, 1088, 1120)
	KX8T4PF(1152)
	KX8T4PF(1344)
	Q5KT4GROUP(3, 1152, 1184, 1216, 1248, 1280, 1312, 1344, 1376)
	LEAQ (DI)(R8*1), R10
	LEAQ (DI)(R8*2), R11
	LEAQ (DI)(R9*1), R12
	KX8T4FIN(DI, Z8, Y8, Z4, Y4, Y12, 64)
	KX8T4FIN(R10, Z9, Y9, Z5, Y5, Y13, 64)
	KX8T4FIN(R11, Z10, Y10, Z6, Y6, Y28, 64)
	KX8T4FIN(R12, Z11, Y11, Z7, Y7, Y29, 64)
	ADDQ $1408, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	KX8T4OUT(Y28, Y29)

// The Q6_K kernel pairs chunks k and k+4 of a unit (values 32j + 4k and
// 32j + 4k + 16 of a half, sub-blocks 2j and 2j+1 of it) in lanes 0–7 and
// 8–15, so that each of the eight sums' lanes has its scale at 16 + 8g(SI)
// as the packed layout stores them; each sum starts at −32·bsum, which
// makes it Σ (q−32)·x (at most 16·32·127 in magnitude) before the scale.

// Q6KZLOAD loads ql chunks k and k+4 of the unit pair at u(SI) into Z0
// (the low quarters' nibbles) and Z1, and their qh into Z2.
#define Q6KZLOAD(u) \
	VMOVDQU      u(SI), Y0; \
	VINSERTI64X4 $1, u+384(SI), Z0, Z0; \
	VMOVDQU      u+32(SI), Y1; \
	VINSERTI64X4 $1, u+416(SI), Z1, Z1; \
	VMOVDQU      u+64(SI), Y2; \
	VINSERTI64X4 $1, u+448(SI), Z2, Z2

// Q6KZQ adds the quants in z (low nibbles, Z15 holding 0x0f bytes) with
// their two high bits in t (at bits 4–5, other bits zero) times the
// activations of zx picked by idx to acc.
#define Q6KZQ(z, t, zx, idx, acc) \
	VPTERNLOGD $0xf8, Z15, z, t; \
	VPERMD     zx, idx, Z9; \
	VPDPBUSD   Z9, t, acc

// Q6KZUNIT adds the 256 values of the unit pair at u(SI) (k of the half's
// activation indices, idx0 for j even, idx1 for j odd) to the half's sums
// Z4 … Z7; Z14 holds 0x30 bytes.
#define Q6KZUNIT(u, idx0, idx1) \
	Q6KZLOAD(u); \
	VPSLLW     $4, Z2, Z3; \
	VPANDD     Z14, Z3, Z3; \
	Q6KZQ(Z0, Z3, Z24, idx0, Z4); \
	VPSLLW     $2, Z2, Z3; \
	VPANDD     Z14, Z3, Z3; \
	Q6KZQ(Z1, Z3, Z24, idx1, Z5); \
	VPSRLW     $4, Z0, Z0; \
	VPANDD     Z14, Z2, Z3; \
	Q6KZQ(Z0, Z3, Z25, idx0, Z6); \
	VPSRLW     $4, Z1, Z1; \
	VPSRLW     $2, Z2, Z3; \
	VPANDD     Z14, Z3, Z3; \
	Q6KZQ(Z1, Z3, Z25, idx1, Z7)

// Q6KZINIT starts sum acc (sub-blocks 2p and 2p+1) at −32·bsum: Z13 holds
// −32 times the 16 block sums.
#define Q6KZINIT(p, acc) \
	VMOVDQU64 kx8zperm<>+512+64*p(SB), acc; \
	VPERMD    Z13, acc, acc

// Q6KZSCALE multiplies sum acc by the scales of sub-blocks 2p and 2p+1
// and adds it to Z10.
#define Q6KZSCALE(p, acc) \
	VPMOVSXBD 16+16*p(SI), Z3; \
	VPMULLD   Z3, acc, acc; \
	VPADDD    acc, Z10, Z10

// Q6KZHALF adds half h of the super-block (values 128h … 128h+127) to Z10:
// its sums are the pairs p0 … p3 of sub-blocks (4h … 4h+3; given as
// numbers, macro arguments are not parenthesized).
#define Q6KZHALF(h, p0, p1, p2, p3) \
	VMOVDQU64 4+128*h(DI), Z24; \
	VMOVDQU64 68+128*h(DI), Z25; \
	Q6KZINIT(p0, Z4); \
	Q6KZINIT(p1, Z5); \
	Q6KZINIT(p2, Z6); \
	Q6KZINIT(p3, Z7); \
	Q6KZUNIT(144+768*h, Z16, Z20); \
	Q6KZUNIT(240+768*h, Z17, Z21); \
	Q6KZUNIT(336+768*h, Z18, Z22); \
	Q6KZUNIT(432+768*h, Z19, Z23); \
	Q6KZSCALE(p0, Z4); \
	Q6KZSCALE(p1, Z5); \
	Q6KZSCALE(p2, Z6); \
	Q6KZSCALE(p3, Z7)

// Q6KZCONST loads the Q6_K kernels' constants: the VPERMD indices into
// Z16–Z23, 0x0f bytes into Z15 and 0x30 bytes into Z14.
#define Q6KZCONST \
	VMOVDQU64    kx8zperm6<>+0(SB), Z16; \
	VMOVDQU64    kx8zperm6<>+64(SB), Z17; \
	VMOVDQU64    kx8zperm6<>+128(SB), Z18; \
	VMOVDQU64    kx8zperm6<>+192(SB), Z19; \
	VMOVDQU64    kx8zperm6<>+256(SB), Z20; \
	VMOVDQU64    kx8zperm6<>+320(SB), Z21; \
	VMOVDQU64    kx8zperm6<>+384(SB), Z22; \
	VMOVDQU64    kx8zperm6<>+448(SB), Z23; \
	MOVL         $0x0f0f0f0f, DX; \
	VMOVD        DX, X15; \
	VPBROADCASTD X15, Z15; \
	MOVL         $0x30303030, DX; \
	VMOVD        DX, X14; \
	VPBROADCASTD X14, Z14

// func q6Kx8GemvAVX512Asm(out *[8]float32, w, x []byte, nb int)
TEXT ·q6Kx8GemvAVX512Asm(SB), NOSPLIT, $0-64
	// A 2 KB boundary: where the linker put this loop across two 4 KB
	// pages of code, the same kernel ran 10–17 % slower (docs/kernels.md,
	// "Where a decode loop lies in memory"). Only in frameless functions:
	// with a frame the padding would come after the prologue, executed.
	PCALIGN $2048
	MOVQ   out+0(FP), AX
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	VXORPS Y12, Y12, Y12
	TESTQ  CX, CX
	JZ     done
	Q6KZCONST

loop:
	VPMOVSXWD 260(DI), Z13
	VPSLLD    $5, Z13, Z13
	VPXORD    Z3, Z3, Z3
	VPSUBD    Z13, Z3, Z13
	VPXORD    Z10, Z10, Z10
	Q6KZHALF(0, 0, 1, 2, 3)
	Q6KZHALF(1, 4, 5, 6, 7)
	VEXTRACTI64X4 $1, Z10, Y3
	VPADDD        Y3, Y10, Y10
	Q6KFSTEP
	ADDQ $1680, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVUPS Y12, (AX)
	VZEROUPPER
	RET

// The Q6_K four-token tile runs Q6KZHALF's sums one at a time (p outer,
// the four units inner) so that only four sums are alive, one per token
// (Z4–Z7), each started at its token's −32·bsum (Z24–Z27), scaled and
// added to the token's Z8–Z11; a unit's quants for the sum are made once
// from its chunks (reloaded from cache per sum) for the four tokens.

// Q6KT4Q adds the quants in Z3 times each token's activations of xo picked
// by idx to Z4–Z7.
#define Q6KT4Q(xo, idx) \
	KX8T4DOT(xo, idx, Z3, Z1, Z31, Z4, Z5, Z6, Z7)

// Q6KT4LO and Q6KT4HI load the low (ql chunks k, k+4 of the unit at u) or
// high (ql at u+32) quarters' nibbles into Z0, and the unit's qh into Z2.
#define Q6KT4LO(u) \
	VMOVDQU      u(SI), Y0; \
	VINSERTI64X4 $1, u+384(SI), Z0, Z0; \
	VMOVDQU      u+64(SI), Y2; \
	VINSERTI64X4 $1, u+448(SI), Z2, Z2

#define Q6KT4HI(u) \
	VMOVDQU      u+32(SI), Y0; \
	VINSERTI64X4 $1, u+416(SI), Z0, Z0; \
	VMOVDQU      u+64(SI), Y2; \
	VINSERTI64X4 $1, u+448(SI), Z2, Z2

// Q6KT4P0 … Q6KT4P3 are Q6KZUNIT's four sums of the unit at u (idx0 and
// idx1 its activation indices; half h's activations).
#define Q6KT4P0(u, h, idx0, idx1) \
	Q6KT4LO(u); \
	VPSLLW     $4, Z2, Z3; \
	VPANDD     Z14, Z3, Z3; \
	VPTERNLOGD $0xf8, Z15, Z0, Z3; \
	Q6KT4Q(4+128*h, idx0)

#define Q6KT4P1(u, h, idx0, idx1) \
	Q6KT4HI(u); \
	VPSLLW     $2, Z2, Z3; \
	VPANDD     Z14, Z3, Z3; \
	VPTERNLOGD $0xf8, Z15, Z0, Z3; \
	Q6KT4Q(4+128*h, idx1)

#define Q6KT4P2(u, h, idx0, idx1) \
	Q6KT4LO(u); \
	VPSRLW     $4, Z0, Z0; \
	VPANDD     Z14, Z2, Z3; \
	VPTERNLOGD $0xf8, Z15, Z0, Z3; \
	Q6KT4Q(68+128*h, idx0)

#define Q6KT4P3(u, h, idx0, idx1) \
	Q6KT4HI(u); \
	VPSRLW     $4, Z0, Z0; \
	VPSRLW     $2, Z2, Z3; \
	VPANDD     Z14, Z3, Z3; \
	VPTERNLOGD $0xf8, Z15, Z0, Z3; \
	Q6KT4Q(68+128*h, idx1)

// Q6KT4SUM is sum p (0…3) of half h, pair P = 4h + p of sub-blocks, for
// the four tokens: started at −32·bsum, the four units' quants added (unit
// macro pm), scaled by the pair's scales and added to Z8–Z11.
#define Q6KT4SUM(h, P, pm) \
	VMOVDQU64 kx8zperm<>+512+64*P(SB), Z30; \
	VPERMD    Z24, Z30, Z4; \
	VPERMD    Z25, Z30, Z5; \
	VPERMD    Z26, Z30, Z6; \
	VPERMD    Z27, Z30, Z7; \
	pm(144+768*h, h, Z16, Z20); \
	pm(240+768*h, h, Z17, Z21); \
	pm(336+768*h, h, Z18, Z22); \
	pm(432+768*h, h, Z19, Z23); \
	VPMOVSXBD 16+16*P(SI), Z3; \
	VPMULLD   Z3, Z4, Z4; \
	VPMULLD   Z3, Z5, Z5; \
	VPMULLD   Z3, Z6, Z6; \
	VPMULLD   Z3, Z7, Z7; \
	KX8T4ADD

// Q6KT4BS sets zb to −32 times the block sums of the Q8_K row at x.
#define Q6KT4BS(x, zb) \
	VPMOVSXWD 260(x), zb; \
	VPSLLD    $5, zb, zb; \
	VPSUBD    zb, Z31, zb

// Q6KT4FIN ends the super-block for one token as the gemv does.
#define Q6KT4FIN(x, zs, ys, acc) \
	VEXTRACTI64X4 $1, zs, Y3; \
	VPADDD        Y3, ys, ys; \
	VCVTDQ2PS     ys, ys; \
	VCVTPH2PS     0(SI), Y0; \
	VBROADCASTSS  0(x), Y2; \
	VMULPS        Y2, Y0, Y0; \
	VMULPS        ys, Y0, Y0; \
	VADDPS        Y0, acc, acc

// func q6Kx8TileAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)
TEXT ·q6Kx8TileAVX512Asm(SB), NOSPLIT, $0-72
	KX8T4ENTER(1680, Y28, Y29)
	Q6KZCONST

loop:
	LEAQ   (DI)(R8*1), R10
	LEAQ   (DI)(R8*2), R11
	LEAQ   (DI)(R9*1), R12
	VPXORD Z31, Z31, Z31
	Q6KT4BS(DI, Z24)
	Q6KT4BS(R10, Z25)
	Q6KT4BS(R11, Z26)
	Q6KT4BS(R12, Z27)
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	KX8T4PF(0)
	Q6KT4SUM(0, 0, Q6KT4P0)
	KX8T4PF(192)
	Q6KT4SUM(0, 1, Q6KT4P1)
	KX8T4PF(384)
	Q6KT4SUM(0, 2, Q6KT4P2)
	KX8T4PF(576)
	Q6KT4SUM(0, 3, Q6KT4P3)
	KX8T4PF(768)
	Q6KT4SUM(1, 4, Q6KT4P0)
	KX8T4PF(960)
	Q6KT4SUM(1, 5, Q6KT4P1)
	KX8T4PF(1152)
	Q6KT4SUM(1, 6, Q6KT4P2)
	KX8T4PF(1344)
	Q6KT4SUM(1, 7, Q6KT4P3)
	KX8T4PF(1536)
	Q6KT4FIN(DI, Z8, Y8, Y12)
	Q6KT4FIN(R10, Z9, Y9, Y13)
	Q6KT4FIN(R11, Z10, Y10, Y28)
	Q6KT4FIN(R12, Z11, Y11, Y29)
	ADDQ $1680, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	KX8T4OUT(Y28, Y29)

// The Q8_K activation quantizer (kdot.go's quantizeQ8K, the same bytes for
// finite input): the maximum magnitude by VMAXPS (a NaN never wins, as in
// Go), d = max/127 in float32, and each value times 127/max in float64,
// rounded half away from zero (truncated, then ±1 where the exact remainder
// is at least one half) as the Go code does.

DATA q8kc<>+0(SB)/8, $0.5
DATA q8kc<>+8(SB)/8, $-0.5
DATA q8kc<>+16(SB)/8, $1.0
DATA q8kc<>+24(SB)/8, $127.0
DATA q8kc<>+32(SB)/4, $127.0
DATA q8kc<>+36(SB)/4, $0x7fffffff
GLOBL q8kc<>(SB), RODATA|NOPTR, $40

// Q8KMAX folds the magnitudes of the 32 floats at off(SI) into Y0 … Y3.
#define Q8KMAX(off) \
	VANDPS off(SI), Y15, Y4; \
	VMAXPS Y0, Y4, Y0; \
	VANDPS off+32(SI), Y15, Y5; \
	VMAXPS Y1, Y5, Y1; \
	VANDPS off+64(SI), Y15, Y6; \
	VMAXPS Y2, Y6, Y2; \
	VANDPS off+96(SI), Y15, Y7; \
	VMAXPS Y3, Y7, Y3

// Q8KROUND quantizes the four floats at off(SI) into the int32 lanes of x.
#define Q8KROUND(off, x) \
	VCVTPS2PD   off(SI), Y4; \
	VMULPD      Y11, Y4, Y4; \
	VROUNDPD    $3, Y4, Y5; \
	VSUBPD      Y5, Y4, Y4; \
	VCMPPD      $13, Y14, Y4, Y6; \
	VCMPPD      $2, Y13, Y4, Y7; \
	VANDPD      Y12, Y6, Y6; \
	VANDPD      Y12, Y7, Y7; \
	VADDPD      Y6, Y5, Y5; \
	VSUBPD      Y7, Y5, Y5; \
	VCVTTPD2DQY Y5, x

// Q8KGROUP quantizes the 16 values at off(SI) into 16 bytes at q(DI) and
// stores their sum as an int16 at s(DI).
#define Q8KGROUP(off, q, s) \
	Q8KROUND(off, X0); \
	Q8KROUND(off+16, X1); \
	Q8KROUND(off+32, X2); \
	Q8KROUND(off+48, X3); \
	VPADDD     X1, X0, X8; \
	VPADDD     X3, X2, X9; \
	VPADDD     X9, X8, X8; \
	VPHADDD    X8, X8, X8; \
	VPHADDD    X8, X8, X8; \
	VMOVD      X8, AX; \
	MOVW       AX, s(DI); \
	VPACKSSDW  X1, X0, X0; \
	VPACKSSDW  X3, X2, X2; \
	VPACKSSWB  X2, X0, X0; \
	VMOVDQU    X0, q(DI)

// func quantizeQ8KAVX2Asm(dst []byte, x []float32, nb int)
TEXT ·quantizeQ8KAVX2Asm(SB), NOSPLIT, $0-56
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         nb+48(FP), CX
	TESTQ        CX, CX
	JZ           done
	VBROADCASTSS q8kc<>+36(SB), Y15
	VBROADCASTSD q8kc<>+0(SB), Y14
	VBROADCASTSD q8kc<>+8(SB), Y13
	VBROADCASTSD q8kc<>+16(SB), Y12

block:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	Q8KMAX(0)
	Q8KMAX(128)
	Q8KMAX(256)
	Q8KMAX(384)
	Q8KMAX(512)
	Q8KMAX(640)
	Q8KMAX(768)
	Q8KMAX(896)
	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVD        X0, AX
	TESTL        AX, AX
	JZ           zero
	VDIVSS       q8kc<>+32(SB), X0, X1 // d = max/127
	VMOVSS       X1, (DI)
	VCVTSS2SD    X0, X0, X0
	VMOVSD       q8kc<>+24(SB), X1
	VDIVSD       X0, X1, X1            // 127/max in float64
	VBROADCASTSD X1, Y11
	Q8KGROUP(0, 4, 260)
	Q8KGROUP(64, 20, 262)
	Q8KGROUP(128, 36, 264)
	Q8KGROUP(192, 52, 266)
	Q8KGROUP(256, 68, 268)
	Q8KGROUP(320, 84, 270)
	Q8KGROUP(384, 100, 272)
	Q8KGROUP(448, 116, 274)
	Q8KGROUP(512, 132, 276)
	Q8KGROUP(576, 148, 278)
	Q8KGROUP(640, 164, 280)
	Q8KGROUP(704, 180, 282)
	Q8KGROUP(768, 196, 284)
	Q8KGROUP(832, 212, 286)
	Q8KGROUP(896, 228, 288)
	Q8KGROUP(960, 244, 290)
	JMP next

zero:
	VPXOR   Y0, Y0, Y0
	VMOVDQU Y0, 0(DI)
	VMOVDQU Y0, 32(DI)
	VMOVDQU Y0, 64(DI)
	VMOVDQU Y0, 96(DI)
	VMOVDQU Y0, 128(DI)
	VMOVDQU Y0, 160(DI)
	VMOVDQU Y0, 192(DI)
	VMOVDQU Y0, 224(DI)
	VMOVDQU Y0, 256(DI)
	MOVL    $0, 288(DI)

next:
	ADDQ $1024, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  block

done:
	VZEROUPPER
	RET
