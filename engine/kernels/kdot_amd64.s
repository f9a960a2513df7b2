//go:build amd64 && !purego

#include "textflag.h"

// The K-quant dots against Q8_K activations (kdot.go): VPMADDUBSW of the
// unsigned weight quants with the activation quants, VPMADDWD by the
// sub-block scales, exact int32 sums per super-block; then the float32 step
// of kdot.go, in scalar, in super-block order.

// kshuf4<> + 32j spreads word j of a scale vector (both lanes) over a whole
// ymm: the scale of Q4_K/Q5_K sub-block j.
DATA kshuf4<>+0(SB)/8, $0x0100010001000100
DATA kshuf4<>+8(SB)/8, $0x0100010001000100
DATA kshuf4<>+16(SB)/8, $0x0100010001000100
DATA kshuf4<>+24(SB)/8, $0x0100010001000100
DATA kshuf4<>+32(SB)/8, $0x0302030203020302
DATA kshuf4<>+40(SB)/8, $0x0302030203020302
DATA kshuf4<>+48(SB)/8, $0x0302030203020302
DATA kshuf4<>+56(SB)/8, $0x0302030203020302
DATA kshuf4<>+64(SB)/8, $0x0504050405040504
DATA kshuf4<>+72(SB)/8, $0x0504050405040504
DATA kshuf4<>+80(SB)/8, $0x0504050405040504
DATA kshuf4<>+88(SB)/8, $0x0504050405040504
DATA kshuf4<>+96(SB)/8, $0x0706070607060706
DATA kshuf4<>+104(SB)/8, $0x0706070607060706
DATA kshuf4<>+112(SB)/8, $0x0706070607060706
DATA kshuf4<>+120(SB)/8, $0x0706070607060706
DATA kshuf4<>+128(SB)/8, $0x0908090809080908
DATA kshuf4<>+136(SB)/8, $0x0908090809080908
DATA kshuf4<>+144(SB)/8, $0x0908090809080908
DATA kshuf4<>+152(SB)/8, $0x0908090809080908
DATA kshuf4<>+160(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshuf4<>+168(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshuf4<>+176(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshuf4<>+184(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshuf4<>+192(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshuf4<>+200(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshuf4<>+208(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshuf4<>+216(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshuf4<>+224(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshuf4<>+232(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshuf4<>+240(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshuf4<>+248(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL kshuf4<>(SB), RODATA|NOPTR, $256

// kshuf6<> + 32p puts word 2p of a scale vector in the low lane and word
// 2p+1 in the high lane: the scales of Q6_K blocks 2p and 2p+1 (16 values
// each, eight words of products each).
DATA kshuf6<>+0(SB)/8, $0x0100010001000100
DATA kshuf6<>+8(SB)/8, $0x0100010001000100
DATA kshuf6<>+16(SB)/8, $0x0302030203020302
DATA kshuf6<>+24(SB)/8, $0x0302030203020302
DATA kshuf6<>+32(SB)/8, $0x0504050405040504
DATA kshuf6<>+40(SB)/8, $0x0504050405040504
DATA kshuf6<>+48(SB)/8, $0x0706070607060706
DATA kshuf6<>+56(SB)/8, $0x0706070607060706
DATA kshuf6<>+64(SB)/8, $0x0908090809080908
DATA kshuf6<>+72(SB)/8, $0x0908090809080908
DATA kshuf6<>+80(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshuf6<>+88(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA kshuf6<>+96(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshuf6<>+104(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA kshuf6<>+112(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA kshuf6<>+120(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL kshuf6<>(SB), RODATA|NOPTR, $128

// BYTES sets every byte of y to the constant c (via x and AX).
#define BYTES(c, x, y) \
	MOVL         c, AX; \
	VMOVD        AX, x; \
	VPBROADCASTD x, y

// KSCALES unpacks the 6-bit scales and mins at 4(SI) (ggml's packing) into
// Y1 (the eight scales as words, in both lanes) and Y2 (Σ m·bsum for
// each sub-block as eight dwords, from the block sums at 260(DI)).
#define KSCALES \
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
	VMOVQ       R10, X2; \
	VPUNPCKLBW  X2, X2, X2; \
	VPMOVZXBW   X2, Y2; \
	VPMADDWD    260(DI), Y2, Y2

// KSTEP4 ends a Q4_K/Q5_K super-block: Y3 holds Σ sc·q·x and Y2 Σ m·bsum
// in dword lanes; X0 += d·float(Σ sc·q·x) − dm·float(Σ m·bsum) as kStep4.
#define KSTEP4 \
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

// func dotQ4KAVX2Asm(w, x []byte, nb int) float32
TEXT ·dotQ4KAVX2Asm(SB), NOSPLIT, $0-60
	MOVQ   w_base+0(FP), SI
	MOVQ   x_base+24(FP), DI
	MOVQ   nb+48(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     done
	BYTES($0x0f0f0f0f, X15, Y15)

loop:
	KSCALES
	VPXOR Y3, Y3, Y3
	VMOVDQU    16(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPMADDUBSW 4(DI), Y4, Y4
	VPMADDUBSW 36(DI), Y5, Y5
	VPSHUFB    kshuf4<>+0(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+32(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	VMOVDQU    48(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPMADDUBSW 68(DI), Y4, Y4
	VPMADDUBSW 100(DI), Y5, Y5
	VPSHUFB    kshuf4<>+64(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+96(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	VMOVDQU    80(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPMADDUBSW 132(DI), Y4, Y4
	VPMADDUBSW 164(DI), Y5, Y5
	VPSHUFB    kshuf4<>+128(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+160(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	VMOVDQU    112(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPMADDUBSW 196(DI), Y4, Y4
	VPMADDUBSW 228(DI), Y5, Y5
	VPSHUFB    kshuf4<>+192(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+224(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	KSTEP4
	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVSS X0, ret+56(FP)
	VZEROUPPER
	RET

// func dotQ5KAVX2Asm(w, x []byte, nb int) float32
TEXT ·dotQ5KAVX2Asm(SB), NOSPLIT, $0-60
	MOVQ   w_base+0(FP), SI
	MOVQ   x_base+24(FP), DI
	MOVQ   nb+48(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     done
	BYTES($0x0f0f0f0f, X15, Y15)
	BYTES($0x10101010, X14, Y14)

loop:
	KSCALES
	VPXOR Y3, Y3, Y3
	VMOVDQU 16(SI), Y13 // the fifth bits: bit j of byte l for value 32j+l
	VMOVDQU    48(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPSLLW     $4, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y4, Y4
	VPSLLW     $3, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y5, Y5
	VPMADDUBSW 4(DI), Y4, Y4
	VPMADDUBSW 36(DI), Y5, Y5
	VPSHUFB    kshuf4<>+0(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+32(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	VMOVDQU    80(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPSLLW     $2, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y4, Y4
	VPSLLW     $1, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y5, Y5
	VPMADDUBSW 68(DI), Y4, Y4
	VPMADDUBSW 100(DI), Y5, Y5
	VPSHUFB    kshuf4<>+64(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+96(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	VMOVDQU    112(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPAND      Y14, Y13, Y6
	VPOR       Y6, Y4, Y4
	VPSRLW     $1, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y5, Y5
	VPMADDUBSW 132(DI), Y4, Y4
	VPMADDUBSW 164(DI), Y5, Y5
	VPSHUFB    kshuf4<>+128(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+160(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	VMOVDQU    144(SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPSRLW     $2, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y4, Y4
	VPSRLW     $3, Y13, Y6
	VPAND      Y14, Y6, Y6
	VPOR       Y6, Y5, Y5
	VPMADDUBSW 196(DI), Y4, Y4
	VPMADDUBSW 228(DI), Y5, Y5
	VPSHUFB    kshuf4<>+192(SB), Y1, Y6
	VPMADDWD   Y6, Y4, Y4
	VPSHUFB    kshuf4<>+224(SB), Y1, Y7
	VPMADDWD   Y7, Y5, Y5
	VPADDD     Y4, Y3, Y3
	VPADDD     Y5, Y3, Y3
	KSTEP4
	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	VMOVSS X0, ret+56(FP)
	VZEROUPPER
	RET

// func dotQ6KAVX2Asm(w, x []byte, nb int) float32
TEXT ·dotQ6KAVX2Asm(SB), NOSPLIT, $0-60
	MOVQ   w_base+0(FP), SI
	MOVQ   x_base+24(FP), DI
	MOVQ   nb+48(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     done
	BYTES($0x0f0f0f0f, X15, Y15)
	BYTES($0x30303030, X14, Y14)

loop:
	VPMOVSXBW 192(SI), Y1
	VPMADDWD  260(DI), Y1, Y2 // Σ sc·bsum per pair of blocks
	VPSLLD    $5, Y2, Y2      // times 32: the quants' offset
	VPXOR     Y3, Y3, Y3
	VPMOVSXBW   192(SI), X1
	VINSERTI128 $1, X1, Y1, Y1
	VMOVDQU     0(SI), Y4
	VMOVDQU     32(SI), Y5
	VMOVDQU     128(SI), Y6
	VPAND       Y15, Y4, Y7
	VPSLLW      $4, Y6, Y8
	VPAND       Y14, Y8, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  4(DI), Y7, Y7
	VPSHUFB     kshuf6<>+0(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPAND       Y15, Y5, Y7
	VPSLLW      $2, Y6, Y8
	VPAND       Y14, Y8, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  36(DI), Y7, Y7
	VPSHUFB     kshuf6<>+32(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPSRLW      $4, Y4, Y7
	VPAND       Y15, Y7, Y7
	VPAND       Y14, Y6, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  68(DI), Y7, Y7
	VPSHUFB     kshuf6<>+64(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPSRLW      $4, Y5, Y7
	VPAND       Y15, Y7, Y7
	VPSRLW      $2, Y6, Y8
	VPAND       Y14, Y8, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  100(DI), Y7, Y7
	VPSHUFB     kshuf6<>+96(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPMOVSXBW   200(SI), X1
	VINSERTI128 $1, X1, Y1, Y1
	VMOVDQU     64(SI), Y4
	VMOVDQU     96(SI), Y5
	VMOVDQU     160(SI), Y6
	VPAND       Y15, Y4, Y7
	VPSLLW      $4, Y6, Y8
	VPAND       Y14, Y8, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  132(DI), Y7, Y7
	VPSHUFB     kshuf6<>+0(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPAND       Y15, Y5, Y7
	VPSLLW      $2, Y6, Y8
	VPAND       Y14, Y8, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  164(DI), Y7, Y7
	VPSHUFB     kshuf6<>+32(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPSRLW      $4, Y4, Y7
	VPAND       Y15, Y7, Y7
	VPAND       Y14, Y6, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  196(DI), Y7, Y7
	VPSHUFB     kshuf6<>+64(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
	VPSRLW      $4, Y5, Y7
	VPAND       Y15, Y7, Y7
	VPSRLW      $2, Y6, Y8
	VPAND       Y14, Y8, Y8
	VPOR        Y8, Y7, Y7
	VPMADDUBSW  228(DI), Y7, Y7
	VPSHUFB     kshuf6<>+96(SB), Y1, Y8
	VPMADDWD    Y8, Y7, Y7
	VPADDD      Y7, Y3, Y3
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
