package ggufconv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// FileType is what a file holds, as llama.cpp's llama_ftype enum numbers
// it; the value is written as general.file_type.
type FileType uint32

// The file types Write produces.
const (
	AllF32     FileType = 0
	MostlyF16  FileType = 1
	MostlyQ4_0 FileType = 2
	MostlyQ8_0 FileType = 7
	// The K-quant mixes: most weights in the named type, some at higher
	// precision, as llama-quantize chooses them (see tensorType).
	MostlyQ4_K_M FileType = 15
	MostlyQ5_K_M FileType = 17
	MostlyQ6_K   FileType = 18
)

var fileTypeNames = map[FileType]string{
	AllF32: "f32", MostlyF16: "f16", MostlyQ4_0: "q4_0", MostlyQ8_0: "q8_0",
	MostlyQ4_K_M: "q4_k_m", MostlyQ5_K_M: "q5_k_m", MostlyQ6_K: "q6_k",
}

// base is each file type's default weight type.
var base = map[FileType]kernels.DType{
	AllF32: kernels.F32, MostlyF16: kernels.F16, MostlyQ4_0: kernels.Q4_0, MostlyQ8_0: kernels.Q8_0,
	MostlyQ4_K_M: kernels.Q4_K, MostlyQ5_K_M: kernels.Q5_K, MostlyQ6_K: kernels.Q6_K,
}

func (t FileType) valid() bool { _, ok := base[t]; return ok }

// String is the name ParseFileType reads: "q4_k_m", "f16", ….
func (t FileType) String() string {
	if n, ok := fileTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("FileType(%d)", uint32(t))
}

// FileTypeNames lists the names ParseFileType accepts.
func FileTypeNames() []string {
	var out []string
	for _, n := range fileTypeNames {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ParseFileType reads a file type's name, case-insensitively.
func ParseFileType(s string) (FileType, bool) {
	for t, n := range fileTypeNames {
		if strings.EqualFold(s, n) {
			return t, true
		}
	}
	return 0, false
}

// useMoreBits picks the layers llama-quantize gives more bits in its _M
// mixes: the first and last eighth, and every third layer between.
func useMoreBits(layer, layers int) bool {
	return layer < layers/8 || layer >= 7*layers/8 || (layer-layers/8)%3 == 2
}

// tensorType is the type of the 2-D weight name (layer its block, -1 for
// token_embd and output) in a file of type t. The K-quant mixes follow
// llama-quantize for phi2:
//
//   - output.weight: Q6_K;
//   - attn_qkv (fused): Q5_K in Q4_K_M, Q6_K in Q5_K_M and Q6_K;
//   - attn_v (split) and ffn_down: Q6_K in the layers useMoreBits picks,
//     the base type elsewhere;
//   - everything else, token_embd included: the base type (Q4_K, Q5_K,
//     Q6_K).
//
// The other file types put every 2-D weight in their one type.
func (t FileType) tensorType(name string, layer, layers int) kernels.DType {
	b := base[t]
	if t != MostlyQ4_K_M && t != MostlyQ5_K_M && t != MostlyQ6_K {
		return b
	}
	switch {
	case name == "output.weight":
		return kernels.Q6_K
	case strings.HasSuffix(name, ".attn_qkv.weight"):
		if t == MostlyQ4_K_M {
			return kernels.Q5_K
		}
		return kernels.Q6_K
	case strings.HasSuffix(name, ".attn_v.weight"), strings.HasSuffix(name, ".ffn_down.weight"):
		if useMoreBits(layer, layers) {
			return kernels.Q6_K
		}
	}
	return b
}

// fitType is want, or the type a row of cols values falls back to when
// they are not whole blocks of want: K-quants (256-value super-blocks) fall
// back to Q8_0 (llama.cpp picks Q5_0, Q5_1 and Q8_0 for Q4_K, Q5_K and
// Q6_K; Phalanx runs no Q5 types, so Q8_0 for all three), and rows that are
// not whole 32-value blocks either to F16, as llama.cpp does.
func fitType(want kernels.DType, cols int) kernels.DType {
	if want.RowBytes(cols) >= 0 {
		return want
	}
	if want.BlockSize() == kernels.QKK && kernels.Q8_0.RowBytes(cols) >= 0 {
		return kernels.Q8_0
	}
	return kernels.F16
}
