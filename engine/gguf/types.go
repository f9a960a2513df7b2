package gguf

import "fmt"

// Type is a ggml tensor element type, as stored in a tensor descriptor.
type Type uint32

// The ggml types this package knows. The numbers are fixed by the GGUF
// format; gaps belong to types ggml removed or that Phalanx does not load.
const (
	TypeF32  Type = 0
	TypeF16  Type = 1
	TypeQ4_0 Type = 2
	TypeQ4_1 Type = 3
	TypeQ5_0 Type = 6
	TypeQ5_1 Type = 7
	TypeQ8_0 Type = 8
	TypeQ8_1 Type = 9
	TypeQ2_K Type = 10
	TypeQ3_K Type = 11
	TypeQ4_K Type = 12
	TypeQ5_K Type = 13
	TypeQ6_K Type = 14
	TypeQ8_K Type = 15
	TypeI8   Type = 24
	TypeI16  Type = 25
	TypeI32  Type = 26
	TypeI64  Type = 27
	TypeF64  Type = 28
	TypeBF16 Type = 30
)

type typeTraits struct {
	name       string
	blockSize  uint64 // elements per block
	blockBytes uint64 // bytes per block
}

// Block layouts from ggml-common.h: QK4_0 = QK8_0 = 32, QK_K = 256.
var typeTable = map[Type]typeTraits{
	TypeF32:  {"F32", 1, 4},
	TypeF16:  {"F16", 1, 2},
	TypeQ4_0: {"Q4_0", 32, 2 + 16},           // d, 32 nibbles
	TypeQ4_1: {"Q4_1", 32, 2 + 2 + 16},       // d, m, 32 nibbles
	TypeQ5_0: {"Q5_0", 32, 2 + 4 + 16},       // d, qh, 32 nibbles
	TypeQ5_1: {"Q5_1", 32, 2 + 2 + 4 + 16},   // d, m, qh, 32 nibbles
	TypeQ8_0: {"Q8_0", 32, 2 + 32},           // d, 32 int8
	TypeQ8_1: {"Q8_1", 32, 2 + 2 + 32},       // d, s, 32 int8
	TypeQ2_K: {"Q2_K", 256, 16 + 64 + 2 + 2}, // scales, qs, d, dmin
	TypeQ3_K: {"Q3_K", 256, 32 + 64 + 12 + 2},
	TypeQ4_K: {"Q4_K", 256, 2 + 2 + 12 + 128},
	TypeQ5_K: {"Q5_K", 256, 2 + 2 + 12 + 32 + 128},
	TypeQ6_K: {"Q6_K", 256, 128 + 64 + 16 + 2},
	TypeQ8_K: {"Q8_K", 256, 4 + 256 + 32}, // float d, qs, int16 bsums[16]
	TypeI8:   {"I8", 1, 1},
	TypeI16:  {"I16", 1, 2},
	TypeI32:  {"I32", 1, 4},
	TypeI64:  {"I64", 1, 8},
	TypeF64:  {"F64", 1, 8},
	TypeBF16: {"BF16", 1, 2},
}

// Known reports whether the package knows t's block layout.
func (t Type) Known() bool {
	_, ok := typeTable[t]
	return ok
}

// BlockSize is the number of elements in one block of t (1 for plain
// types), or 0 for an unknown type.
func (t Type) BlockSize() uint64 { return typeTable[t].blockSize }

// BlockBytes is the number of bytes one block of t occupies, or 0 for an
// unknown type.
func (t Type) BlockBytes() uint64 { return typeTable[t].blockBytes }

func (t Type) String() string {
	if tr, ok := typeTable[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// RowBytes returns the size in bytes of n consecutive elements of type t.
// It fails if t is unknown or n is not a whole number of blocks.
func (t Type) RowBytes(n uint64) (uint64, error) {
	tr, ok := typeTable[t]
	if !ok {
		return 0, fmt.Errorf("%w %d", ErrUnknownTensorType, uint32(t))
	}
	if n%tr.blockSize != 0 {
		return 0, fmt.Errorf("%w: %d elements of %s (block size %d)", ErrInvalidTensor, n, tr.name, tr.blockSize)
	}
	return n / tr.blockSize * tr.blockBytes, nil
}
