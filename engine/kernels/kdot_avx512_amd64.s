//go:build amd64 && !purego

#include "textflag.h"

// The AVX-512 K-quant dots (kdot.go's rules, the AVX2 kernels' bits): 64
// weight quants per zmm, VPMADDUBSW with the activation quants, then VNNI's
// VPDPWSSD multiplies the word pairs by the sub-block scales and adds them
// into the dword sums in one instruction. The scale unpacking and the
// float32 step per super-block are the AVX2 kernels' (KSCALES and KSTEP4 are
// repeated here: macros do not cross files).

// kshufz4<> + 64c spreads word 2c of the scales (in every lane) over the
// low half of a zmm and word 2c+1 over the high half.
DATA kshufz4<>+0(SB)/8, $0x0100010001000100
DATA kshufz4<>+8(SB)/8, $0x0100010001000100
DATA kshufz4<>+16(SB)/8, $0x0100010001000100
DATA kshufz4<>+24(SB)/8, $0x0100010001000100
DATA kshufz4<>+32(SB)/8, $0x0302030203020302
DATA kshufz4<>+40(SB)/8, $0x0302030203020302
DATA kshufz4<>+48(SB)/8, $0x0302030203020302
DATA kshufz4<>+56(SB)/8, $0x0302030203020302
DATA kshufz4<>+64(SB)/8, $0x0504050405040504
DATA kshufz4<>+72(SB)/8, $0x0504050405040504
DATA kshufz4<>+80(SB)/8, $0x0504050405040504
DATA kshufz4<>+88(SB)/8, $0x0504050405040504
DATA kshufz4<>+96(SB)/8, $0x0706070607060706
DATA kshufz4<>+104(SB)/8, $0x0706070607060706
DATA kshufz4<>+112(SB)/8, $0x0706070607060706
DATA kshufz4<>+120(SB)/8, $0x0706070607060706
DATA kshufz4<>+128(SB)/8, $0x0908090809080908
DATA kshufz4<>+136(SB)/8, $0x0908090809080908
DATA kshufz4<>+144(SB)/8, $0x0908090809080908
DATA kshufz4<>+152(SB)/8, $0x0908090809080908
DATA kshufz4<>+160(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshufz4<>+168(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshufz4<>+176(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshufz4<>+184(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshufz4<>+192(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshufz4<>+200(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshufz4<>+208(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshufz4<>+216(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshufz4<>+224(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshufz4<>+232(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshufz4<>+240(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshufz4<>+248(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL kshufz4<>(SB), RODATA|NOPTR, $256

// kpermz6<> + 64(2h+p) are VPERMW indices: lane i takes Q6_K scale
// 8h+4p+i, the block of the 16 values there.
DATA kpermz6<>+0(SB)/8, $0x0000000000000000
DATA kpermz6<>+8(SB)/8, $0x0000000000000000
DATA kpermz6<>+16(SB)/8, $0x0001000100010001
DATA kpermz6<>+24(SB)/8, $0x0001000100010001
DATA kpermz6<>+32(SB)/8, $0x0002000200020002
DATA kpermz6<>+40(SB)/8, $0x0002000200020002
DATA kpermz6<>+48(SB)/8, $0x0003000300030003
DATA kpermz6<>+56(SB)/8, $0x0003000300030003
DATA kpermz6<>+64(SB)/8, $0x0004000400040004
DATA kpermz6<>+72(SB)/8, $0x0004000400040004
DATA kpermz6<>+80(SB)/8, $0x0005000500050005
DATA kpermz6<>+88(SB)/8, $0x0005000500050005
DATA kpermz6<>+96(SB)/8, $0x0006000600060006
DATA kpermz6<>+104(SB)/8, $0x0006000600060006
DATA kpermz6<>+112(SB)/8, $0x0007000700070007
DATA kpermz6<>+120(SB)/8, $0x0007000700070007
DATA kpermz6<>+128(SB)/8, $0x0008000800080008
DATA kpermz6<>+136(SB)/8, $0x0008000800080008
DATA kpermz6<>+144(SB)/8, $0x0009000900090009
DATA kpermz6<>+152(SB)/8, $0x0009000900090009
DATA kpermz6<>+160(SB)/8, $0x000a000a000a000a
DATA kpermz6<>+168(SB)/8, $0x000a000a000a000a
DATA kpermz6<>+176(SB)/8, $0x000b000b000b000b
DATA kpermz6<>+184(SB)/8, $0x000b000b000b000b
DATA kpermz6<>+192(SB)/8, $0x000c000c000c000c
DATA kpermz6<>+200(SB)/8, $0x000c000c000c000c
DATA kpermz6<>+208(SB)/8, $0x000d000d000d000d
DATA kpermz6<>+216(SB)/8, $0x000d000d000d000d
DATA kpermz6<>+224(SB)/8, $0x000e000e000e000e
DATA kpermz6<>+232(SB)/8, $0x000e000e000e000e
DATA kpermz6<>+240(SB)/8, $0x000f000f000f000f
DATA kpermz6<>+248(SB)/8, $0x000f000f000f000f
GLOBL kpermz6<>(SB), RODATA|NOPTR, $256

#define BYTESZ(c, x, z) \
	MOVL         c, AX; \
	VMOVD        AX, x; \
	VPBROADCASTD x, z

#define KSCALESZ \
	MOVL        4(SI), AX; \
	MOVL        8(SI), BX; \
	MOVL        12(SI), DX; \
	MOVL        AX, R8; \
	ANDL        $0x3f3f3f3f, R8; \
	MOVL        AX, R9; \
	SHRL        $6, R9; \
	ANDL        $0x03030303, R9; \
	SHLL        $4, R9; \
	MOVL        DX, R10; \
	ANDL        $0x0f0f0f0f, R10; \
	ORL         R10, R9; \
	SHLQ        $32, R9; \
	ORQ         R9, R8; \
	MOVL        BX, R10; \
	ANDL        $0x3f3f3f3f, R10; \
	MOVL        BX, R11; \
	SHRL        $6, R11; \
	ANDL        $0x03030303, R11; \
	SHLL        $4, R11; \
	SHRL        $4, DX; \
	ANDL        $0x0f0f0f0f, DX; \
	ORL         DX, R11; \
	SHLQ        $32, R11; \
	ORQ         R11, R10; \
	VMOVQ       R8, X1; \
	VPMOVZXBW   X1, X1; \
	VINSERTI128 $1, X1, Y1, Y1; \
	VINSERTI64X4 $1, Y1, Z1, Z1; \
	VMOVQ       R10, X2; \
	VPUNPCKLBW  X2, X2, X2; \
	VPMOVZXBW   X2, Y2; \
	VPMADDWD    260(DI), Y2, Y2

#define KSTEP4Z \
	VEXTRACTI64X4 $1, Z3, Y4; \
	VPADDD       Y4, Y3, Y3; \
	VPHADDD      Y2, Y3, Y3; \
	VEXTRACTI128 $1, Y3, X4; \
	VPADDD       X4, X3, X3; \
	VPHADDD      X3, X3, X3; \
	VCVTDQ2PS    X3, X3; \
	VMOVD        (SI), X4; \
	VCVTPH2PS    X4, X4; \
	VBROADCASTSS (DI), X5; \
	VMULPS       X5, X4, X4; \
	VMULPS       X4, X3, X3; \
	VMOVSHDUP    X3, X4; \
	VSUBSS       X4, X3, X3; \
	VADDSS       X3, X0, X0

// func dotQ4KAVX512Asm(w, x []byte, nb int) float32
TEXT ·dotQ4KAVX512Asm(SB), NOSPLIT, $0-60
	MOVQ   w_base+0(FP), SI
	MOVQ   x_base+24(FP), DI
	MOVQ   nb+48(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     done
	BYTESZ($0x0f0f0f0f, X15, Z31)

loop:
	KSCALESZ
	VPXORD Z3, Z3, Z3
	VMOVDQU      16(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPMADDUBSW   4(DI), Z4, Z4
	VPSHUFB      kshufz4<>+0(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	VMOVDQU      48(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPMADDUBSW   68(DI), Z4, Z4
	VPSHUFB      kshufz4<>+64(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	VMOVDQU      80(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPMADDUBSW   132(DI), Z4, Z4
	VPSHUFB      kshufz4<>+128(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	VMOVDQU      112(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPMADDUBSW   196(DI), Z4, Z4
	VPSHUFB      kshufz4<>+192(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	KSTEP4Z
	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVSS X0, ret+56(FP)
	VZEROUPPER
	RET

// func dotQ5KAVX512Asm(w, x []byte, nb int) float32
TEXT ·dotQ5KAVX512Asm(SB), NOSPLIT, $0-60
	MOVQ   w_base+0(FP), SI
	MOVQ   x_base+24(FP), DI
	MOVQ   nb+48(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     done
	BYTESZ($0x0f0f0f0f, X15, Z31)
	BYTESZ($0x10101010, X15, Z30)

loop:
	KSCALESZ
	VPXORD Z3, Z3, Z3
	VMOVDQU      16(SI), Y13 // fifth bits: bit j of byte l for value 32j+l
	VPSRLW       $1, Y13, Y12
	VINSERTI64X4 $1, Y12, Z13, Z13 // odd sub-blocks' bits one place lower
	VMOVDQU      48(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPSLLW       $4, Z13, Z6
	VPANDD       Z30, Z6, Z6
	VPORD        Z6, Z4, Z4
	VPMADDUBSW   4(DI), Z4, Z4
	VPSHUFB      kshufz4<>+0(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	VMOVDQU      80(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPSLLW       $2, Z13, Z6
	VPANDD       Z30, Z6, Z6
	VPORD        Z6, Z4, Z4
	VPMADDUBSW   68(DI), Z4, Z4
	VPSHUFB      kshufz4<>+64(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	VMOVDQU      112(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPANDD       Z30, Z13, Z6
	VPORD        Z6, Z4, Z4
	VPMADDUBSW   132(DI), Z4, Z4
	VPSHUFB      kshufz4<>+128(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	VMOVDQU      144(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4 // values 64c…64c+63
	VPSRLW       $2, Z13, Z6
	VPANDD       Z30, Z6, Z6
	VPORD        Z6, Z4, Z4
	VPMADDUBSW   196(DI), Z4, Z4
	VPSHUFB      kshufz4<>+192(SB), Z1, Z5
	VPDPWSSD     Z5, Z4, Z3
	KSTEP4Z
	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVSS X0, ret+56(FP)
	VZEROUPPER
	RET

// func dotQ6KAVX512Asm(w, x []byte, nb int) float32
TEXT ·dotQ6KAVX512Asm(SB), NOSPLIT, $0-60
	MOVQ   w_base+0(FP), SI
	MOVQ   x_base+24(FP), DI
	MOVQ   nb+48(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     done
	BYTESZ($0x0f0f0f0f, X15, Z31)
	BYTESZ($0x30303030, X15, Z30)
	VMOVDQU64 kpermz6<>+0(SB), Z16
	VMOVDQU64 kpermz6<>+64(SB), Z17
	VMOVDQU64 kpermz6<>+128(SB), Z18
	VMOVDQU64 kpermz6<>+192(SB), Z19

loop:
	VPMOVSXBW 192(SI), Y1     // the 16 scales as words
	VPMADDWD  260(DI), Y1, Y2 // Σ sc·bsum per pair of blocks
	VPSLLD    $5, Y2, Y2      // times 32: the quants' offset
	VPXORD    Z3, Z3, Z3
	VMOVDQU64    0(SI), Z4
	VMOVDQU      128(SI), Y6
	VPSLLW       $4, Y6, Y7
	VPSLLW       $2, Y6, Y8
	VINSERTI64X4 $1, Y8, Z7, Z7 // bits 4–5: values 0–31 from qh bits 0–1, 32–63 from 2–3
	VPSRLW       $2, Y6, Y9
	VINSERTI64X4 $1, Y9, Z6, Z9 // values 64–95 from bits 4–5, 96–127 from 6–7
	VPANDD       Z31, Z4, Z10
	VPSRLW       $4, Z4, Z11
	VPANDD       Z31, Z11, Z11
	VPANDD       Z30, Z7, Z7
	VPORD        Z7, Z10, Z10
	VPANDD       Z30, Z9, Z9
	VPORD        Z9, Z11, Z11
	VPMADDUBSW   4(DI), Z10, Z10
	VPMADDUBSW   68(DI), Z11, Z11
	VPERMW       Z1, Z16, Z12
	VPDPWSSD     Z12, Z10, Z3
	VPERMW       Z1, Z17, Z12
	VPDPWSSD     Z12, Z11, Z3
	VMOVDQU64    64(SI), Z4
	VMOVDQU      160(SI), Y6
	VPSLLW       $4, Y6, Y7
	VPSLLW       $2, Y6, Y8
	VINSERTI64X4 $1, Y8, Z7, Z7 // bits 4–5: values 0–31 from qh bits 0–1, 32–63 from 2–3
	VPSRLW       $2, Y6, Y9
	VINSERTI64X4 $1, Y9, Z6, Z9 // values 64–95 from bits 4–5, 96–127 from 6–7
	VPANDD       Z31, Z4, Z10
	VPSRLW       $4, Z4, Z11
	VPANDD       Z31, Z11, Z11
	VPANDD       Z30, Z7, Z7
	VPORD        Z7, Z10, Z10
	VPANDD       Z30, Z9, Z9
	VPORD        Z9, Z11, Z11
	VPMADDUBSW   132(DI), Z10, Z10
	VPMADDUBSW   196(DI), Z11, Z11
	VPERMW       Z1, Z18, Z12
	VPDPWSSD     Z12, Z10, Z3
	VPERMW       Z1, Z19, Z12
	VPDPWSSD     Z12, Z11, Z3
	VEXTRACTI64X4 $1, Z3, Y4
	VPADDD       Y4, Y3, Y3
	VPSUBD       Y2, Y3, Y3
	VEXTRACTI128 $1, Y3, X4
	VPADDD       X4, X3, X3
	VPHADDD      X3, X3, X3
	VPHADDD      X3, X3, X3
	VCVTDQ2PS    X3, X3
	MOVWLZX      208(SI), AX
	VMOVD        AX, X4
	VCVTPH2PS    X4, X4
	VMULSS       (DI), X4, X4
	VMULSS       X4, X3, X3
	VADDSS       X3, X0, X0
	ADDQ         $210, SI
	ADDQ         $292, DI
	DECQ         CX
	JNZ          loop

done:
	VMOVSS X0, ret+56(FP)
	VZEROUPPER
	RET

// The 1-row × 4-token tiles (prefill): a super-block's weights and scales
// are unpacked once for four activation rows (xstride bytes apart), each
// token with its own int32 sums (Z3, Z16, Z17, Z18) and float32 step (X0,
// X8, X9, X10): exactly the dot's operations per token, so the dot's bits.

// KSCALEST is KSCALESZ leaving the mins, each twice, as words in Y11.
#define KSCALEST \
	MOVL         4(SI), AX; \
	MOVL         8(SI), BX; \
	MOVL         12(SI), DX; \
	MOVL         AX, R8; \
	ANDL         $0x3f3f3f3f, R8; \
	MOVL         AX, R9; \
	SHRL         $6, R9; \
	ANDL         $0x03030303, R9; \
	SHLL         $4, R9; \
	MOVL         DX, R10; \
	ANDL         $0x0f0f0f0f, R10; \
	ORL          R10, R9; \
	SHLQ         $32, R9; \
	ORQ          R9, R8; \
	MOVL         BX, R10; \
	ANDL         $0x3f3f3f3f, R10; \
	MOVL         BX, R11; \
	SHRL         $6, R11; \
	ANDL         $0x03030303, R11; \
	SHLL         $4, R11; \
	SHRL         $4, DX; \
	ANDL         $0x0f0f0f0f, DX; \
	ORL          DX, R11; \
	SHLQ         $32, R11; \
	ORQ          R11, R10; \
	VMOVQ        R8, X1; \
	VPMOVZXBW    X1, X1; \
	VINSERTI128  $1, X1, Y1, Y1; \
	VINSERTI64X4 $1, Y1, Z1, Z1; \
	VMOVQ        R10, X11; \
	VPUNPCKLBW   X11, X11, X11; \
	VPMOVZXBW    X11, Y11

// KSTEPT is KSTEP4Z for one token of the tile: its sums in zacc (low half
// yacc), its activations at x (an address; xs = x + 260, its block sums),
// its float32 sum in facc.
#define KSTEPT(zacc, yacc, xs, x, facc) \
	VEXTRACTI64X4 $1, zacc, Y4; \
	VPADDD        Y4, yacc, Y3; \
	VPMADDWD      xs, Y11, Y2; \
	VPHADDD       Y2, Y3, Y3; \
	VEXTRACTI128  $1, Y3, X4; \
	VPADDD        X4, X3, X3; \
	VPHADDD       X3, X3, X3; \
	VCVTDQ2PS     X3, X3; \
	VMOVD         (SI), X4; \
	VCVTPH2PS     X4, X4; \
	VBROADCASTSS  x, X5; \
	VMULPS        X5, X4, X4; \
	VMULPS        X4, X3, X3; \
	VMOVSHDUP     X3, X4; \
	VSUBSS        X4, X3, X3; \
	VADDSS        X3, facc, facc

// func dotQ4KTile1x4AVX512Asm(out *[4]float32, w, x []byte, nb, xstride int)
TEXT ·dotQ4KTile1x4AVX512Asm(SB), NOSPLIT, $0-72
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	MOVQ   xstride+64(FP), R12
	LEAQ   (R12)(R12*1), R13
	LEAQ   (R13)(R12*1), R14
	VXORPS X0, X0, X0
	VXORPS X8, X8, X8
	VXORPS X9, X9, X9
	VXORPS X10, X10, X10
	TESTQ  CX, CX
	JZ     done
	BYTESZ($0x0f0f0f0f, X15, Z31)

loop:
	KSCALEST
	VPXORD       Z3, Z3, Z3
	VPXORD       Z16, Z16, Z16
	VPXORD       Z17, Z17, Z17
	VPXORD       Z18, Z18, Z18
	VMOVDQU      16(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSHUFB      kshufz4<>+0(SB), Z1, Z5
	VPMADDUBSW   4(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   4(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   4(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   4(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	VMOVDQU      48(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSHUFB      kshufz4<>+64(SB), Z1, Z5
	VPMADDUBSW   68(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   68(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   68(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   68(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	VMOVDQU      80(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSHUFB      kshufz4<>+128(SB), Z1, Z5
	VPMADDUBSW   132(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   132(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   132(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   132(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	VMOVDQU      112(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSHUFB      kshufz4<>+192(SB), Z1, Z5
	VPMADDUBSW   196(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   196(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   196(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   196(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	KSTEPT(Z3, Y3, 260(DI), (DI), X0)
	KSTEPT(Z16, Y16, 260(DI)(R12*1), (DI)(R12*1), X8)
	KSTEPT(Z17, Y17, 260(DI)(R13*1), (DI)(R13*1), X9)
	KSTEPT(Z18, Y18, 260(DI)(R14*1), (DI)(R14*1), X10)
	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	MOVQ   out+0(FP), DX
	VMOVSS X0, (DX)
	VMOVSS X8, 4(DX)
	VMOVSS X9, 8(DX)
	VMOVSS X10, 12(DX)
	VZEROUPPER
	RET

// func dotQ5KTile1x4AVX512Asm(out *[4]float32, w, x []byte, nb, xstride int)
TEXT ·dotQ5KTile1x4AVX512Asm(SB), NOSPLIT, $0-72
	MOVQ   w_base+8(FP), SI
	MOVQ   x_base+32(FP), DI
	MOVQ   nb+56(FP), CX
	MOVQ   xstride+64(FP), R12
	LEAQ   (R12)(R12*1), R13
	LEAQ   (R13)(R12*1), R14
	VXORPS X0, X0, X0
	VXORPS X8, X8, X8
	VXORPS X9, X9, X9
	VXORPS X10, X10, X10
	TESTQ  CX, CX
	JZ     done
	BYTESZ($0x0f0f0f0f, X15, Z31)
	BYTESZ($0x10101010, X15, Z30)

loop:
	KSCALEST
	VPXORD       Z3, Z3, Z3
	VPXORD       Z16, Z16, Z16
	VPXORD       Z17, Z17, Z17
	VPXORD       Z18, Z18, Z18
	VMOVDQU      16(SI), Y13
	VPSRLW       $1, Y13, Y12
	VINSERTI64X4 $1, Y12, Z13, Z13
	VMOVDQU      48(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSLLW       $4, Z13, Z6
	VPANDD       Z30, Z6, Z6
	VPORD        Z6, Z4, Z4
	VPSHUFB      kshufz4<>+0(SB), Z1, Z5
	VPMADDUBSW   4(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   4(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   4(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   4(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	VMOVDQU      80(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSLLW       $2, Z13, Z6
	VPANDD       Z30, Z6, Z6
	VPORD        Z6, Z4, Z4
	VPSHUFB      kshufz4<>+64(SB), Z1, Z5
	VPMADDUBSW   68(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   68(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   68(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   68(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	VMOVDQU      112(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPANDD       Z30, Z13, Z6
	VPORD        Z6, Z4, Z4
	VPSHUFB      kshufz4<>+128(SB), Z1, Z5
	VPMADDUBSW   132(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   132(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   132(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   132(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	VMOVDQU      144(SI), Y4
	VPSRLW       $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VPANDD       Z31, Z4, Z4
	VPSRLW       $2, Z13, Z6
	VPANDD       Z30, Z6, Z6
	VPORD        Z6, Z4, Z4
	VPSHUFB      kshufz4<>+192(SB), Z1, Z5
	VPMADDUBSW   196(DI), Z4, Z7
	VPDPWSSD     Z5, Z7, Z3
	VPMADDUBSW   196(DI)(R12*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z16
	VPMADDUBSW   196(DI)(R13*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z17
	VPMADDUBSW   196(DI)(R14*1), Z4, Z7
	VPDPWSSD     Z5, Z7, Z18
	KSTEPT(Z3, Y3, 260(DI), (DI), X0)
	KSTEPT(Z16, Y16, 260(DI)(R12*1), (DI)(R12*1), X8)
	KSTEPT(Z17, Y17, 260(DI)(R13*1), (DI)(R13*1), X9)
	KSTEPT(Z18, Y18, 260(DI)(R14*1), (DI)(R14*1), X10)
	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	MOVQ   out+0(FP), DX
	VMOVSS X0, (DX)
	VMOVSS X8, 4(DX)
	VMOVSS X9, 8(DX)
	VMOVSS X10, 12(DX)
	VZEROUPPER
	RET

// KSTEP6T ends one token of the Q6_K tile: its sums in zacc (low half yacc),
// its activations at x (xs = x + 260, the block sums), its float32 sum in
// facc; Y1 holds the scales as words.
#define KSTEP6T(zacc, yacc, xs, x, facc) \
	VEXTRACTI64X4 $1, zacc, Y4; \
	VPADDD        Y4, yacc, Y3; \
	VPMADDWD      xs, Y1, Y2; \
	VPSLLD        $5, Y2, Y2; \
	VPSUBD        Y2, Y3, Y3; \
	VEXTRACTI128  $1, Y3, X4; \
	VPADDD        X4, X3, X3; \
	VPHADDD       X3, X3, X3; \
	VPHADDD       X3, X3, X3; \
	VCVTDQ2PS     X3, X3; \
	MOVWLZX       208(SI), AX; \
	VMOVD         AX, X4; \
	VCVTPH2PS     X4, X4; \
	VMULSS        x, X4, X4; \
	VMULSS        X4, X3, X3; \
	VADDSS        X3, facc, facc

// func dotQ6KTile1x4AVX512Asm(out *[4]float32, w, x []byte, nb, xstride int)
TEXT ·dotQ6KTile1x4AVX512Asm(SB), NOSPLIT, $0-72
	MOVQ      w_base+8(FP), SI
	MOVQ      x_base+32(FP), DI
	MOVQ      nb+56(FP), CX
	MOVQ      xstride+64(FP), R12
	LEAQ      (R12)(R12*1), R13
	LEAQ      (R13)(R12*1), R14
	VXORPS    X0, X0, X0
	VXORPS    X8, X8, X8
	VXORPS    X9, X9, X9
	VXORPS    X10, X10, X10
	TESTQ     CX, CX
	JZ        done
	BYTESZ($0x0f0f0f0f, X15, Z31)
	BYTESZ($0x30303030, X15, Z30)
	VMOVDQU64 kpermz6<>+0(SB), Z21
	VMOVDQU64 kpermz6<>+64(SB), Z22
	VMOVDQU64 kpermz6<>+128(SB), Z23
	VMOVDQU64 kpermz6<>+192(SB), Z24

loop:
	VPMOVSXBW 192(SI), Y1
	VPXORD    Z3, Z3, Z3
	VPXORD    Z16, Z16, Z16
	VPXORD    Z17, Z17, Z17
	VPXORD    Z18, Z18, Z18
	VMOVDQU64    0(SI), Z4
	VMOVDQU      128(SI), Y6
	VPSLLW       $4, Y6, Y7
	VPSLLW       $2, Y6, Y13
	VINSERTI64X4 $1, Y13, Z7, Z7
	VPSRLW       $2, Y6, Y14
	VINSERTI64X4 $1, Y14, Z6, Z25
	VPANDD       Z31, Z4, Z26
	VPSRLW       $4, Z4, Z27
	VPANDD       Z31, Z27, Z27
	VPANDD       Z30, Z7, Z7
	VPORD        Z7, Z26, Z26
	VPANDD       Z30, Z25, Z25
	VPORD        Z25, Z27, Z27
	VPERMW       Z1, Z21, Z12
	VPERMW       Z1, Z22, Z20
	VPMADDUBSW   4(DI), Z26, Z7
	VPDPWSSD     Z12, Z7, Z3
	VPMADDUBSW   68(DI), Z27, Z7
	VPDPWSSD     Z20, Z7, Z3
	VPMADDUBSW   4(DI)(R12*1), Z26, Z7
	VPDPWSSD     Z12, Z7, Z16
	VPMADDUBSW   68(DI)(R12*1), Z27, Z7
	VPDPWSSD     Z20, Z7, Z16
	VPMADDUBSW   4(DI)(R13*1), Z26, Z7
	VPDPWSSD     Z12, Z7, Z17
	VPMADDUBSW   68(DI)(R13*1), Z27, Z7
	VPDPWSSD     Z20, Z7, Z17
	VPMADDUBSW   4(DI)(R14*1), Z26, Z7
	VPDPWSSD     Z12, Z7, Z18
	VPMADDUBSW   68(DI)(R14*1), Z27, Z7
	VPDPWSSD     Z20, Z7, Z18
	VMOVDQU64    64(SI), Z4
	VMOVDQU      160(SI), Y6
	VPSLLW       $4, Y6, Y7
	VPSLLW       $2, Y6, Y13
	VINSERTI64X4 $1, Y13, Z7, Z7
	VPSRLW       $2, Y6, Y14
	VINSERTI64X4 $1, Y14, Z6, Z25
	VPANDD       Z31, Z4, Z26
	VPSRLW       $4, Z4, Z27
	VPANDD       Z31, Z27, Z27
	VPANDD       Z30, Z7, Z7
	VPORD        Z7, Z26, Z26
	VPANDD       Z30, Z25, Z25
	VPORD        Z25, Z27, Z27
	VPERMW       Z1, Z23, Z12
	VPERMW       Z1, Z24, Z20
	VPMADDUBSW   132(DI), Z26, Z7
	VPDPWSSD     Z12, Z7, Z3
	VPMADDUBSW   196(DI), Z27, Z7
	VPDPWSSD     Z20, Z7, Z3
	VPMADDUBSW   132(DI)(R12*1), Z26, Z7
	VPDPWSSD     Z12, Z7, Z16
	VPMADDUBSW   196(DI)(R12*1), Z27, Z7
	VPDPWSSD     Z20, Z7, Z16
	VPMADDUBSW   132(DI)(R13*1), Z26, Z7
	VPDPWSSD     Z12, Z7, Z17
	VPMADDUBSW   196(DI)(R13*1), Z27, Z7
	VPDPWSSD     Z20, Z7, Z17
	VPMADDUBSW   132(DI)(R14*1), Z26, Z7
	VPDPWSSD     Z12, Z7, Z18
	VPMADDUBSW   196(DI)(R14*1), Z27, Z7
	VPDPWSSD     Z20, Z7, Z18
	KSTEP6T(Z3, Y3, 260(DI), (DI), X0)
	KSTEP6T(Z16, Y16, 260(DI)(R12*1), (DI)(R12*1), X8)
	KSTEP6T(Z17, Y17, 260(DI)(R13*1), (DI)(R13*1), X9)
	KSTEP6T(Z18, Y18, 260(DI)(R14*1), (DI)(R14*1), X10)
	ADDQ $210, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	MOVQ   out+0(FP), DX
	VMOVSS X0, (DX)
	VMOVSS X8, 4(DX)
	VMOVSS X9, 8(DX)
	VMOVSS X10, 12(DX)
	VZEROUPPER
	RET
