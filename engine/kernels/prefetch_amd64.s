//go:build amd64 && !purego

#include "textflag.h"

// func prefetchAsm(p unsafe.Pointer, lines int)
TEXT ·prefetchAsm(SB), NOSPLIT, $0-16
	MOVQ  p+0(FP), SI
	MOVQ  lines+8(FP), CX
	TESTQ CX, CX
	JZ    done

loop:
	PREFETCHT0 (SI)
	ADDQ       $64, SI
	DECQ       CX
	JNZ        loop

done:
	RET
