//go:build arm64 && !purego

#include "textflag.h"

// Instructions the Go assembler does not know, encoded by hand.
// FADD Vd.4S, Vn.4S, Vm.4S
#define FADD4S(m, n, d) WORD $(0x4E20D400 | (m)<<16 | (n)<<5 | (d))
// FADDP Vd.4S, Vn.4S, Vm.4S
#define FADDP4S(m, n, d) WORD $(0x6E20D400 | (m)<<16 | (n)<<5 | (d))
// FADDP Sd, Vn.2S
#define FADDP2S(n, d) WORD $(0x7E30D800 | (n)<<5 | (d))
// FCVTL Vd.4S, Vn.4H and FCVTL2 Vd.4S, Vn.8H
#define FCVTL(n, d) WORD $(0x0E217800 | (n)<<5 | (d))
#define FCVTL2(n, d) WORD $(0x4E217800 | (n)<<5 | (d))

// ZERO clears the four accumulators V0–V3 and the scalar F20.
#define ZERO \
	VEOR V0.B16, V0.B16, V0.B16; \
	VEOR V1.B16, V1.B16, V1.B16; \
	VEOR V2.B16, V2.B16, V2.B16; \
	VEOR V3.B16, V3.B16, V3.B16; \
	VEOR V20.B16, V20.B16, V20.B16

// FMA4 accumulates V4–V7 times V8–V11 into V0–V3.
#define FMA4 \
	VFMLA V8.S4, V4.S4, V0.S4; \
	VFMLA V9.S4, V5.S4, V1.S4; \
	VFMLA V10.S4, V6.S4, V2.S4; \
	VFMLA V11.S4, V7.S4, V3.S4

// REDUCE leaves ((V0+V1)+(V2+V3)) summed pairwise, plus F20, in F0.
#define REDUCE \
	FADD4S(1, 0, 0); \
	FADD4S(3, 2, 2); \
	FADD4S(2, 0, 0); \
	FADDP4S(0, 0, 0); \
	FADDP2S(0, 0); \
	FADDS F20, F0, F0

// DOTF32 is the dot product of the R2 float32s at R0 and R1 into F0, in
// the order described in dot_arm64.go; R0–R3, V0–V11 and F20 are
// clobbered. dotF32NEONAsm and dotsF32NEONAsm share it, so their bits
// agree. Its labels are local to the function using it.
#define DOTF32 \
	ZERO; \
	LSR  $4, R2, R3; \
	CBZ  R3, dotrest; \
dotloop: \
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	VLD1.P 64(R1), [V8.S4, V9.S4, V10.S4, V11.S4]; \
	FMA4; \
	SUBS   $1, R3, R3; \
	BNE    dotloop; \
dotrest: \
	AND    $15, R2, R2; \
	CMP    $4, R2; \
	BLT    dottail; \
	VLD1.P 16(R0), [V4.S4]; \
	VLD1.P 16(R1), [V8.S4]; \
	VFMLA  V8.S4, V4.S4, V0.S4; \
	SUB    $4, R2, R2; \
	CMP    $4, R2; \
	BLT    dottail; \
	VLD1.P 16(R0), [V4.S4]; \
	VLD1.P 16(R1), [V8.S4]; \
	VFMLA  V8.S4, V4.S4, V1.S4; \
	SUB    $4, R2, R2; \
	CMP    $4, R2; \
	BLT    dottail; \
	VLD1.P 16(R0), [V4.S4]; \
	VLD1.P 16(R1), [V8.S4]; \
	VFMLA  V8.S4, V4.S4, V2.S4; \
	SUB    $4, R2, R2; \
dottail: \
	CBZ     R2, dotdone; \
	FMOVS.P 4(R0), F4; \
	FMOVS.P 4(R1), F8; \
	FMADDS  F8, F20, F4, F20; \
	SUB     $1, R2, R2; \
	B       dottail; \
dotdone: \
	REDUCE

// func dotF32NEONAsm(a, b []float32) float32
TEXT ·dotF32NEONAsm(SB), NOSPLIT, $0-52
	MOVD a_base+0(FP), R0
	MOVD a_len+8(FP), R2
	MOVD b_base+24(FP), R1
	DOTF32
	FMOVS F0, ret+48(FP)
	RET

// func dotF16NEONAsm(a []uint16, b []float32) float32
TEXT ·dotF16NEONAsm(SB), NOSPLIT, $0-52
	MOVD a_base+0(FP), R0
	MOVD a_len+8(FP), R2
	MOVD b_base+24(FP), R1
	ZERO
	LSR  $4, R2, R3
	CBZ  R3, rest

loop:
	VLD1.P 32(R0), [V12.H8, V13.H8]
	FCVTL(12, 4)
	FCVTL2(12, 5)
	FCVTL(13, 6)
	FCVTL2(13, 7)
	VLD1.P 64(R1), [V8.S4, V9.S4, V10.S4, V11.S4]
	FMA4
	SUBS   $1, R3, R3
	BNE    loop

rest:
	AND    $15, R2, R2
	CMP    $4, R2
	BLT    tail
	VLD1.P 8(R0), [V12.H4]
	FCVTL(12, 4)
	VLD1.P 16(R1), [V8.S4]
	VFMLA  V8.S4, V4.S4, V0.S4
	SUB    $4, R2, R2
	CMP    $4, R2
	BLT    tail
	VLD1.P 8(R0), [V12.H4]
	FCVTL(12, 4)
	VLD1.P 16(R1), [V8.S4]
	VFMLA  V8.S4, V4.S4, V1.S4
	SUB    $4, R2, R2
	CMP    $4, R2
	BLT    tail
	VLD1.P 8(R0), [V12.H4]
	FCVTL(12, 4)
	VLD1.P 16(R1), [V8.S4]
	VFMLA  V8.S4, V4.S4, V2.S4
	SUB    $4, R2, R2

tail:
	CBZ     R2, done
	MOVHU.P 2(R0), R4
	FMOVS   R4, F12
	FCVTHS  F12, F4
	FMOVS.P 4(R1), F8
	FMADDS  F8, F20, F4, F20
	SUB     $1, R2, R2
	B       tail

done:
	REDUCE
	FMOVS F0, ret+48(FP)
	RET

// func dotBF16NEONAsm(a []uint16, b []float32) float32
TEXT ·dotBF16NEONAsm(SB), NOSPLIT, $0-52
	MOVD a_base+0(FP), R0
	MOVD a_len+8(FP), R2
	MOVD b_base+24(FP), R1
	ZERO
	LSR  $4, R2, R3
	CBZ  R3, rest

loop:
	VLD1.P  32(R0), [V12.H8, V13.H8]
	VUXTL   V12.H4, V4.S4
	VUXTL2  V12.H8, V5.S4
	VUXTL   V13.H4, V6.S4
	VUXTL2  V13.H8, V7.S4
	VSHL    $16, V4.S4, V4.S4
	VSHL    $16, V5.S4, V5.S4
	VSHL    $16, V6.S4, V6.S4
	VSHL    $16, V7.S4, V7.S4
	VLD1.P  64(R1), [V8.S4, V9.S4, V10.S4, V11.S4]
	FMA4
	SUBS    $1, R3, R3
	BNE     loop

rest:
	AND    $15, R2, R2
	CMP    $4, R2
	BLT    tail
	VLD1.P 8(R0), [V12.H4]
	VUXTL  V12.H4, V4.S4
	VSHL   $16, V4.S4, V4.S4
	VLD1.P 16(R1), [V8.S4]
	VFMLA  V8.S4, V4.S4, V0.S4
	SUB    $4, R2, R2
	CMP    $4, R2
	BLT    tail
	VLD1.P 8(R0), [V12.H4]
	VUXTL  V12.H4, V4.S4
	VSHL   $16, V4.S4, V4.S4
	VLD1.P 16(R1), [V8.S4]
	VFMLA  V8.S4, V4.S4, V1.S4
	SUB    $4, R2, R2
	CMP    $4, R2
	BLT    tail
	VLD1.P 8(R0), [V12.H4]
	VUXTL  V12.H4, V4.S4
	VSHL   $16, V4.S4, V4.S4
	VLD1.P 16(R1), [V8.S4]
	VFMLA  V8.S4, V4.S4, V2.S4
	SUB    $4, R2, R2

tail:
	CBZ     R2, done
	MOVHU.P 2(R0), R4
	LSLW    $16, R4, R4
	FMOVS   R4, F4
	FMOVS.P 4(R1), F8
	FMADDS  F8, F20, F4, F20
	SUB     $1, R2, R2
	B       tail

done:
	REDUCE
	FMOVS F0, ret+48(FP)
	RET

// Widening integer instructions, encoded by hand.
// SMULL Vd.8H, Vn.8B, Vm.8B and SMULL2 Vd.8H, Vn.16B, Vm.16B
#define SMULL(m, n, d) WORD $(0x0E20C000 | (m)<<16 | (n)<<5 | (d))
#define SMULL2(m, n, d) WORD $(0x4E20C000 | (m)<<16 | (n)<<5 | (d))
// SADDLP Vd.4S, Vn.8H and SADALP Vd.4S, Vn.8H
#define SADDLP(n, d) WORD $(0x4E602800 | (n)<<5 | (d))
#define SADALP(n, d) WORD $(0x4E606800 | (n)<<5 | (d))
// ADDV Sd, Vn.4S
#define ADDV4S(n, d) WORD $(0x4EB1B800 | (n)<<5 | (d))

// BLOCKSCALE reads the fp16 scales at R0 and R1 (advancing both past
// them) and leaves their product in F16.
#define BLOCKSCALE \
	MOVHU.P 2(R0), R4; \
	MOVHU.P 2(R1), R5; \
	FMOVS   R4, F16; \
	FCVTHS  F16, F16; \
	FMOVS   R5, F17; \
	FCVTHS  F17, F17; \
	FMULS   F17, F16, F16

// BLOCKDOT adds to F0 the block's Σ w·x of the signed bytes V1, V2 (w) and
// V3, V4 (x), exact in int16 products and int32 sums, times F16.
#define BLOCKDOT \
	SMULL(3, 1, 5); \
	SMULL2(3, 1, 6); \
	SMULL(4, 2, 7); \
	SMULL2(4, 2, 8); \
	SADDLP(5, 9); \
	SADALP(6, 9); \
	SADALP(7, 9); \
	SADALP(8, 9); \
	ADDV4S(9, 9); \
	FMOVS   F9, R6; \
	SCVTFWS R6, F9; \
	FMULS   F16, F9, F9; \
	FADDS   F9, F0, F0

// func dotQ8_0NEONAsm(w, x []byte) float32
TEXT ·dotQ8_0NEONAsm(SB), NOSPLIT, $0-52
	MOVD w_base+0(FP), R0
	MOVD w_len+8(FP), R2
	MOVD x_base+24(FP), R1
	VEOR V0.B16, V0.B16, V0.B16

loop:
	CMP    $34, R2
	BLT    done
	BLOCKSCALE
	VLD1.P 32(R0), [V1.B16, V2.B16]
	VLD1.P 32(R1), [V3.B16, V4.B16]
	BLOCKDOT
	SUB    $34, R2, R2
	B      loop

done:
	FMOVS F0, ret+48(FP)
	RET

// func dotQ4_0NEONAsm(w, x []byte) float32
TEXT ·dotQ4_0NEONAsm(SB), NOSPLIT, $0-52
	MOVD  w_base+0(FP), R0
	MOVD  w_len+8(FP), R2
	MOVD  x_base+24(FP), R1
	VEOR  V0.B16, V0.B16, V0.B16
	VMOVI $15, V30.B16
	VMOVI $8, V31.B16

loop:
	CMP    $18, R2
	BLT    done
	BLOCKSCALE
	VLD1.P 16(R0), [V1.B16]
	VUSHR  $4, V1.B16, V2.B16    // elements 16–31
	VAND   V30.B16, V1.B16, V1.B16 // elements 0–15
	VSUB   V31.B16, V1.B16, V1.B16
	VSUB   V31.B16, V2.B16, V2.B16
	VLD1.P 32(R1), [V3.B16, V4.B16]
	BLOCKDOT
	SUB    $18, R2, R2
	B      loop

done:
	FMOVS F0, ret+48(FP)
	RET

// func dotsF32NEONAsm(out, q, keys []float32, stride int)
// out[i] = q · keys[i*stride:][:len(q)], each row with dotF32NEONAsm's
// steps (so the same bits).
TEXT ·dotsF32NEONAsm(SB), NOSPLIT, $0-80
	MOVD out_base+0(FP), R5
	MOVD out_len+8(FP), R6
	MOVD q_base+24(FP), R7
	MOVD q_len+32(FP), R8
	MOVD keys_base+48(FP), R9
	MOVD stride+72(FP), R10
	LSL  $2, R10, R10
	CBZ  R6, dsdone

dsrow:
	MOVD    R7, R0
	MOVD    R9, R1
	MOVD    R8, R2
	DOTF32
	FMOVS.P F0, 4(R5)
	ADD     R10, R9, R9
	SUBS    $1, R6, R6
	BNE     dsrow

dsdone:
	RET
