//go:build amd64 && !purego

#include "textflag.h"

// The exponentials of Softmax (softmax.go), sixteen values a step: each
// value's steps are expF32's in float64 lanes (the fused steps fused, the
// rounding to float32 last), so the bits are the generic ones; value i of
// a step is added to lane i of the sixteen float32 lane sums.

DATA expc<>+0(SB)/8, $0xc05e000000000000 // -120
DATA expc<>+8(SB)/8, $0x3ff71547652b82fe // log2(e)
DATA expc<>+16(SB)/8, $0x3fe62e42fee00000 // ln2, high part
DATA expc<>+24(SB)/8, $0x3dea39ef35793c76 // ln2, low part
DATA expc<>+32(SB)/8, $0x43380000000003ff // 1.5·2^52 + 1023: adding it to k puts k + 1023 in the low mantissa bits
DATA expc<>+40(SB)/8, $0x3ff0000000000000 // 1/0!
DATA expc<>+48(SB)/8, $0x3ff0000000000000 // 1/1!
DATA expc<>+56(SB)/8, $0x3fe0000000000000 // 1/2!
DATA expc<>+64(SB)/8, $0x3fc5555555555555 // 1/3!
DATA expc<>+72(SB)/8, $0x3fa5555555555555 // 1/4!
DATA expc<>+80(SB)/8, $0x3f81111111111111 // 1/5!
DATA expc<>+88(SB)/8, $0x3f56c16c16c16c17 // 1/6!
DATA expc<>+96(SB)/8, $0x3f2a01a01a01a01a // 1/7!
DATA expc<>+104(SB)/8, $0x3efa01a01a01a01a // 1/8!
DATA expc<>+112(SB)/8, $0x3ec71de3a556c734 // 1/9!
DATA expc<>+120(SB)/8, $0x3e927e4fb7789f5c // 1/10!
GLOBL expc<>(SB), RODATA|NOPTR, $128

// expc4<> is 1/0! … 1/9!, each four times, for the AVX2 kernel's memory operands.
DATA expc4<>+0(SB)/8, $0x3ff0000000000000
DATA expc4<>+8(SB)/8, $0x3ff0000000000000
DATA expc4<>+16(SB)/8, $0x3ff0000000000000
DATA expc4<>+24(SB)/8, $0x3ff0000000000000
DATA expc4<>+32(SB)/8, $0x3ff0000000000000
DATA expc4<>+40(SB)/8, $0x3ff0000000000000
DATA expc4<>+48(SB)/8, $0x3ff0000000000000
DATA expc4<>+56(SB)/8, $0x3ff0000000000000
DATA expc4<>+64(SB)/8, $0x3fe0000000000000
DATA expc4<>+72(SB)/8, $0x3fe0000000000000
DATA expc4<>+80(SB)/8, $0x3fe0000000000000
DATA expc4<>+88(SB)/8, $0x3fe0000000000000
DATA expc4<>+96(SB)/8, $0x3fc5555555555555
DATA expc4<>+104(SB)/8, $0x3fc5555555555555
DATA expc4<>+112(SB)/8, $0x3fc5555555555555
DATA expc4<>+120(SB)/8, $0x3fc5555555555555
DATA expc4<>+128(SB)/8, $0x3fa5555555555555
DATA expc4<>+136(SB)/8, $0x3fa5555555555555
DATA expc4<>+144(SB)/8, $0x3fa5555555555555
DATA expc4<>+152(SB)/8, $0x3fa5555555555555
DATA expc4<>+160(SB)/8, $0x3f81111111111111
DATA expc4<>+168(SB)/8, $0x3f81111111111111
DATA expc4<>+176(SB)/8, $0x3f81111111111111
DATA expc4<>+184(SB)/8, $0x3f81111111111111
DATA expc4<>+192(SB)/8, $0x3f56c16c16c16c17
DATA expc4<>+200(SB)/8, $0x3f56c16c16c16c17
DATA expc4<>+208(SB)/8, $0x3f56c16c16c16c17
DATA expc4<>+216(SB)/8, $0x3f56c16c16c16c17
DATA expc4<>+224(SB)/8, $0x3f2a01a01a01a01a
DATA expc4<>+232(SB)/8, $0x3f2a01a01a01a01a
DATA expc4<>+240(SB)/8, $0x3f2a01a01a01a01a
DATA expc4<>+248(SB)/8, $0x3f2a01a01a01a01a
DATA expc4<>+256(SB)/8, $0x3efa01a01a01a01a
DATA expc4<>+264(SB)/8, $0x3efa01a01a01a01a
DATA expc4<>+272(SB)/8, $0x3efa01a01a01a01a
DATA expc4<>+280(SB)/8, $0x3efa01a01a01a01a
DATA expc4<>+288(SB)/8, $0x3ec71de3a556c734
DATA expc4<>+296(SB)/8, $0x3ec71de3a556c734
DATA expc4<>+304(SB)/8, $0x3ec71de3a556c734
DATA expc4<>+312(SB)/8, $0x3ec71de3a556c734
GLOBL expc4<>(SB), RODATA|NOPTR, $320

// MAX8END ends the max kernels: the eight lanes of Y0 folded as the loop
// folds values (the greater wins), the result returned.
#define MAX8END \
	VEXTRACTF128 $1, Y0, X1; \
	VMAXPS       X0, X1, X0; \
	VMOVHLPS     X0, X0, X1; \
	VMAXPS       X0, X1, X0; \
	VMOVSHDUP    X0, X1; \
	VMAXSS       X0, X1, X0; \
	VMOVSS       X0, ret+24(FP); \
	VZEROUPPER; \
	RET

// EXP8 computes the exp of the eight float64 in z into z; Z20–Z24 and
// Z9–Z19 hold the constants, t and u are scratch.
#define EXP8(z, t, u) \
	VMAXPD       z, Z20, z; \
	VMULPD       Z21, z, t; \
	VRNDSCALEPD  $0, t, t; \
	VFNMADD231PD Z22, t, z; \
	VFNMADD231PD Z23, t, z; \
	VMOVAPD      Z19, u; \
	VFMADD213PD  Z18, z, u; \
	VFMADD213PD  Z17, z, u; \
	VFMADD213PD  Z16, z, u; \
	VFMADD213PD  Z15, z, u; \
	VFMADD213PD  Z14, z, u; \
	VFMADD213PD  Z13, z, u; \
	VFMADD213PD  Z12, z, u; \
	VFMADD213PD  Z11, z, u; \
	VFMADD213PD  Z10, z, u; \
	VFMADD213PD  Z9, z, u; \
	VADDPD       Z24, t, t; \
	VPSLLQ       $52, t, t; \
	VMULPD       t, u, z

// func expLanesAVX512Asm(x []float32, mx float32, l *[16]float32)
TEXT ·expLanesAVX512Asm(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	SHRQ         $4, CX
	JZ           done
	MOVQ         l+32(FP), DX
	VMOVUPS      (DX), Z7
	VBROADCASTSS mx+24(FP), Z8
	VBROADCASTSD expc<>+0(SB), Z20
	VBROADCASTSD expc<>+8(SB), Z21
	VBROADCASTSD expc<>+16(SB), Z22
	VBROADCASTSD expc<>+24(SB), Z23
	VBROADCASTSD expc<>+32(SB), Z24
	VBROADCASTSD expc<>+40(SB), Z9
	VBROADCASTSD expc<>+48(SB), Z10
	VBROADCASTSD expc<>+56(SB), Z11
	VBROADCASTSD expc<>+64(SB), Z12
	VBROADCASTSD expc<>+72(SB), Z13
	VBROADCASTSD expc<>+80(SB), Z14
	VBROADCASTSD expc<>+88(SB), Z15
	VBROADCASTSD expc<>+96(SB), Z16
	VBROADCASTSD expc<>+104(SB), Z17
	VBROADCASTSD expc<>+112(SB), Z18
	VBROADCASTSD expc<>+120(SB), Z19

loop:
	VMOVUPS       (SI), Z0
	VSUBPS        Z8, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y2
	VCVTPS2PD     Y0, Z1
	VCVTPS2PD     Y2, Z2
	EXP8(Z1, Z3, Z4)
	EXP8(Z2, Z5, Z6)
	VCVTPD2PS     Z1, Y0
	VCVTPD2PS     Z2, Y2
	VINSERTF64X4  $1, Y2, Z0, Z0
	VMOVUPS       Z0, (SI)
	VADDPS        Z0, Z7, Z7
	ADDQ          $64, SI
	DECQ          CX
	JNZ           loop
	VMOVUPS       Z7, (DX)
	VZEROUPPER

done:
	RET

// EXP4 is EXP8 on four float64 lanes (AVX2): Y7–Y11 and Y13 hold the
// constants (1/10!, 1.5·2^52 + 1023, ln2's parts, log2(e), −120), expc4<>
// the other coefficients.
#define EXP4(z, t, u) \
	VMAXPD       z, Y13, z; \
	VMULPD       Y11, z, t; \
	VROUNDPD     $0, t, t; \
	VFNMADD231PD Y10, t, z; \
	VFNMADD231PD Y9, t, z; \
	VMOVAPD      Y7, u; \
	VFMADD213PD  expc4<>+288(SB), z, u; \
	VFMADD213PD  expc4<>+256(SB), z, u; \
	VFMADD213PD  expc4<>+224(SB), z, u; \
	VFMADD213PD  expc4<>+192(SB), z, u; \
	VFMADD213PD  expc4<>+160(SB), z, u; \
	VFMADD213PD  expc4<>+128(SB), z, u; \
	VFMADD213PD  expc4<>+96(SB), z, u; \
	VFMADD213PD  expc4<>+64(SB), z, u; \
	VFMADD213PD  expc4<>+32(SB), z, u; \
	VFMADD213PD  expc4<>+0(SB), z, u; \
	VADDPD       Y8, t, t; \
	VPSLLQ       $52, t, t; \
	VMULPD       t, u, z

// EXPSTEP8 replaces the eight values at off(SI) by their exps and adds
// them to the lanes in acc.
#define EXPSTEP8(off, acc) \
	VMOVUPS      off(SI), Y0; \
	VSUBPS       Y12, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X2; \
	VCVTPS2PD    X0, Y1; \
	VCVTPS2PD    X2, Y2; \
	EXP4(Y1, Y3, Y4); \
	EXP4(Y2, Y5, Y6); \
	VCVTPD2PSY   Y1, X1; \
	VCVTPD2PSY   Y2, X2; \
	VINSERTF128  $1, X2, Y1, Y0; \
	VMOVUPS      Y0, off(SI); \
	VADDPS       Y0, acc, acc

// func expLanesAVX2Asm(x []float32, mx float32, l *[16]float32)
TEXT ·expLanesAVX2Asm(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	SHRQ         $4, CX
	JZ           done
	MOVQ         l+32(FP), DX
	VMOVUPS      (DX), Y14
	VMOVUPS      32(DX), Y15
	VBROADCASTSS mx+24(FP), Y12
	VBROADCASTSD expc<>+0(SB), Y13
	VBROADCASTSD expc<>+8(SB), Y11
	VBROADCASTSD expc<>+16(SB), Y10
	VBROADCASTSD expc<>+24(SB), Y9
	VBROADCASTSD expc<>+32(SB), Y8
	VBROADCASTSD expc<>+120(SB), Y7

loop:
	EXPSTEP8(0, Y14)
	EXPSTEP8(32, Y15)
	ADDQ $64, SI
	DECQ CX
	JNZ  loop
	VMOVUPS Y14, (DX)
	VMOVUPS Y15, 32(DX)
	VZEROUPPER

done:
	RET

// func divAVX512Asm(x []float32, d float32)
// x[i] /= d, sixteen at a time, the last ones masked: each quotient
// rounded once, as the Go loop rounds it.
TEXT ·divAVX512Asm(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS d+24(FP), Z1

dloop:
	CMPQ    CX, $16
	JB      dtail
	VMOVUPS (SI), Z0
	VDIVPS  Z1, Z0, Z0
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     dloop

dtail:
	TESTQ     CX, CX
	JZ        ddone
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	KMOVW     AX, K1
	VMOVUPS.Z (SI), K1, Z0
	VDIVPS    Z1, Z0, Z0
	VMOVUPS   Z0, K1, (SI)

ddone:
	VZEROUPPER
	RET

// func divAVX2Asm(x []float32, d float32)
// x[i] /= d for the whole groups of eight; the caller does the rest.
TEXT ·divAVX2Asm(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	SHRQ         $3, CX
	JZ           d2done
	VBROADCASTSS d+24(FP), Y1

d2loop:
	VMOVUPS (SI), Y0
	VDIVPS  Y1, Y0, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     d2loop
	VZEROUPPER

d2done:
	RET

// func maxAVX512Asm(x []float32) float32
// The largest of the whole steps of sixteen values: per lane, a value
// replaces the lane's maximum only if it is greater (so a NaN never does,
// as in the Go loop), from −Inf; then the lanes the same way.
TEXT ·maxAVX512Asm(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	SHRQ         $4, CX
	MOVL         $0xff800000, AX
	VPBROADCASTD AX, Z0
	TESTQ        CX, CX
	JZ           mdone

mloop:
	VMOVUPS (SI), Z1
	VMAXPS  Z0, Z1, Z0
	ADDQ    $64, SI
	DECQ    CX
	JNZ     mloop

mdone:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y0, Y1, Y0
	MAX8END

// func maxAVX2Asm(x []float32) float32
// maxAVX512Asm in eight lanes, over whole steps of eight values.
TEXT ·maxAVX2Asm(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	SHRQ         $3, CX
	MOVL         $0xff800000, AX
	VMOVD        AX, X0
	VBROADCASTSS X0, Y0
	TESTQ        CX, CX
	JZ           m2done

m2loop:
	VMOVUPS (SI), Y1
	VMAXPS  Y0, Y1, Y0
	ADDQ    $32, SI
	DECQ    CX
	JNZ     m2loop

m2done:
	MAX8END
