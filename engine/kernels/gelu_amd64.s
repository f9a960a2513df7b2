//go:build amd64 && !purego

#include "textflag.h"

// See gelu_amd64.go for the method; both kernels below do exactly the same
// operations on each lane.

// geluK holds the constants, each repeated over 32 bytes so that the AVX2
// kernel can take any of them as a memory operand; the AVX-512 kernel
// broadcasts them.
#define K_ABS    0   // 0x7fffffff, |x|
#define K_SIGN   32  // 0x80000000
#define K_K0     64  // −2·√(2/π)
#define K_K1     96  // −2·√(2/π)·0.044715
#define K_CLAMP  128 // −88
#define K_LOG2E  160 // log₂e
#define K_MAGIC  192 // 1.5·2²³ + 127
#define K_NLN2HI 224 // −ln2, high part (float32(ln2))
#define K_NLN2LO 256 // −ln2, low part (ln2 − float32(ln2))
#define K_C6     288 // exp(r) ≈ 1 + r + c2·r² + … + c6·r⁶
#define K_C5     320
#define K_C4     352
#define K_C3     384
#define K_C2     416
#define K_ONE    448

#define K32(off, v) \
	DATA geluK<>+(off)(SB)/8, $v; \
	DATA geluK<>+(off+8)(SB)/8, $v; \
	DATA geluK<>+(off+16)(SB)/8, $v; \
	DATA geluK<>+(off+24)(SB)/8, $v

K32(K_ABS, 0x7fffffff7fffffff)
K32(K_SIGN, 0x8000000080000000)
K32(K_K0, 0xbfcc422abfcc422a)
K32(K_K1, 0xbd922279bd922279)
K32(K_CLAMP, 0xc2b00000c2b00000)
K32(K_LOG2E, 0x3fb8aa3b3fb8aa3b)
K32(K_MAGIC, 0x4b40007f4b40007f)
K32(K_NLN2HI, 0xbf317218bf317218)
K32(K_NLN2LO, 0x3102e3083102e308)
K32(K_C6, 0x3ab512263ab51226)
K32(K_C5, 0x3c091cea3c091cea)
K32(K_C4, 0x3d2aac793d2aac79)
K32(K_C3, 0x3e2aaa493e2aaa49)
K32(K_C2, 0x3efffffe3efffffe)
K32(K_ONE, 0x3f8000003f800000)
GLOBL geluK<>(SB), RODATA|NOPTR, $480

// geluTail: eight all-ones lanes then eight zero lanes; the 32 bytes at
// 32−4k are the VMASKMOVPS mask of the low k lanes.
DATA geluTail<>+0(SB)/8, $0xffffffffffffffff
DATA geluTail<>+8(SB)/8, $0xffffffffffffffff
DATA geluTail<>+16(SB)/8, $0xffffffffffffffff
DATA geluTail<>+24(SB)/8, $0xffffffffffffffff
DATA geluTail<>+32(SB)/8, $0
DATA geluTail<>+40(SB)/8, $0
DATA geluTail<>+48(SB)/8, $0
DATA geluTail<>+56(SB)/8, $0
GLOBL geluTail<>(SB), RODATA|NOPTR, $64

// GELU8 computes Y3 = gelu(Y0); Y1 and Y2 are clobbered. Constants:
// Y15 |x| mask, Y14 k0, Y13 k1, Y12 clamp, Y11 log₂e, Y10 magic,
// Y9 −ln2 high, Y8 −ln2 low, Y7 c6, Y6 one, Y5 c5; c4, c3, c2 in memory.
#define GELU8 \
	VMULPS      Y0, Y0, Y1; /* x² */ \
	VFMADD213PS Y14, Y13, Y1; /* k1·x² + k0 */ \
	VANDPS      Y15, Y0, Y2; /* |x| */ \
	VMULPS      Y2, Y1, Y1; /* a = −2|u| */ \
	VMAXPS      Y1, Y12, Y1; /* max(a, −88), NaN kept */ \
	VMOVAPS     Y10, Y2; \
	VFMADD231PS Y11, Y1, Y2; /* t = a·log₂e + magic */ \
	VSUBPS      Y10, Y2, Y3; /* n = t − magic */ \
	VFMADD231PS Y9, Y3, Y1; /* r = a − n·ln2 (high) */ \
	VFMADD231PS Y8, Y3, Y1; /* r −= n·ln2 (low) */ \
	VPSLLD      $23, Y2, Y2; /* 2ⁿ */ \
	VMOVAPS     Y7, Y3; \
	VFMADD213PS Y5, Y1, Y3; /* c6·r + c5 */ \
	VFMADD213PS geluK<>+K_C4(SB), Y1, Y3; \
	VFMADD213PS geluK<>+K_C3(SB), Y1, Y3; \
	VFMADD213PS geluK<>+K_C2(SB), Y1, Y3; \
	VFMADD213PS Y6, Y1, Y3; /* ·r + 1 */ \
	VFMADD213PS Y6, Y1, Y3; /* ·r + 1: exp(r) */ \
	VMULPS      Y2, Y3, Y3; /* e = exp(a) */ \
	VADDPS      Y6, Y3, Y1; /* 1 + e */ \
	VBLENDVPS   Y0, Y3, Y6, Y3; /* x < 0 ? e : 1 */ \
	VMULPS      Y0, Y3, Y3; \
	VDIVPS      Y1, Y3, Y3

// func geluAVX2(x []float32)
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), CX
	VMOVUPS geluK<>+K_ABS(SB), Y15
	VMOVUPS geluK<>+K_K0(SB), Y14
	VMOVUPS geluK<>+K_K1(SB), Y13
	VMOVUPS geluK<>+K_CLAMP(SB), Y12
	VMOVUPS geluK<>+K_LOG2E(SB), Y11
	VMOVUPS geluK<>+K_MAGIC(SB), Y10
	VMOVUPS geluK<>+K_NLN2HI(SB), Y9
	VMOVUPS geluK<>+K_NLN2LO(SB), Y8
	VMOVUPS geluK<>+K_C6(SB), Y7
	VMOVUPS geluK<>+K_ONE(SB), Y6
	VMOVUPS geluK<>+K_C5(SB), Y5
	MOVQ    CX, DX
	SHRQ    $3, DX
	JZ      tail

loop:
	VMOVUPS (SI), Y0
	GELU8
	VMOVUPS Y3, (SI)
	ADDQ    $32, SI
	DECQ    DX
	JNZ     loop

tail:
	ANDQ       $7, CX
	JZ         done
	LEAQ       geluTail<>(SB), AX
	NEGQ       CX
	VMOVDQU    32(AX)(CX*4), Y4
	VMASKMOVPS (SI), Y4, Y0
	GELU8
	VMASKMOVPS Y3, Y4, (SI)

done:
	VZEROUPPER
	RET

// GELU16 computes Z3 = gelu(Z0) with GELU8's operations; Z1, Z2 and K2
// are clobbered. Constants:
// Z16 |x| mask, Z17 sign bit, Z18 k0, Z19 k1, Z20 clamp, Z21 log₂e,
// Z22 magic, Z23 −ln2 high, Z24 −ln2 low, Z25–Z29 c6–c2, Z30 one.
#define GELU16 \
	VMULPS      Z0, Z0, Z1; \
	VFMADD213PS Z18, Z19, Z1; \
	VPANDD      Z16, Z0, Z2; \
	VMULPS      Z2, Z1, Z1; \
	VMAXPS      Z1, Z20, Z1; \
	VMOVAPS     Z22, Z2; \
	VFMADD231PS Z21, Z1, Z2; \
	VSUBPS      Z22, Z2, Z3; \
	VFMADD231PS Z23, Z3, Z1; \
	VFMADD231PS Z24, Z3, Z1; \
	VPSLLD      $23, Z2, Z2; \
	VMOVAPS     Z25, Z3; \
	VFMADD213PS Z26, Z1, Z3; \
	VFMADD213PS Z27, Z1, Z3; \
	VFMADD213PS Z28, Z1, Z3; \
	VFMADD213PS Z29, Z1, Z3; \
	VFMADD213PS Z30, Z1, Z3; \
	VFMADD213PS Z30, Z1, Z3; \
	VMULPS      Z2, Z3, Z3; \
	VADDPS      Z30, Z3, Z1; \
	VPTESTMD    Z17, Z0, K2; \
	VBLENDMPS   Z3, Z30, K2, Z3; \
	VMULPS      Z0, Z3, Z3; \
	VDIVPS      Z1, Z3, Z3

// func geluAVX512(x []float32)
TEXT ·geluAVX512(SB), NOSPLIT, $0-24
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS geluK<>+K_ABS(SB), Z16
	VBROADCASTSS geluK<>+K_SIGN(SB), Z17
	VBROADCASTSS geluK<>+K_K0(SB), Z18
	VBROADCASTSS geluK<>+K_K1(SB), Z19
	VBROADCASTSS geluK<>+K_CLAMP(SB), Z20
	VBROADCASTSS geluK<>+K_LOG2E(SB), Z21
	VBROADCASTSS geluK<>+K_MAGIC(SB), Z22
	VBROADCASTSS geluK<>+K_NLN2HI(SB), Z23
	VBROADCASTSS geluK<>+K_NLN2LO(SB), Z24
	VBROADCASTSS geluK<>+K_C6(SB), Z25
	VBROADCASTSS geluK<>+K_C5(SB), Z26
	VBROADCASTSS geluK<>+K_C4(SB), Z27
	VBROADCASTSS geluK<>+K_C3(SB), Z28
	VBROADCASTSS geluK<>+K_C2(SB), Z29
	VBROADCASTSS geluK<>+K_ONE(SB), Z30
	MOVQ         CX, DX
	SHRQ         $4, DX
	JZ           tail

loop:
	VMOVUPS (SI), Z0
	GELU16
	VMOVUPS Z3, (SI)
	ADDQ    $64, SI
	DECQ    DX
	JNZ     loop

tail:
	ANDQ      $15, CX
	JZ        done
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	KMOVW     AX, K1
	VMOVUPS.Z (SI), K1, Z0
	GELU16
	VMOVUPS   Z3, K1, (SI)

done:
	VZEROUPPER
	RET
