package wire

import (
	"fmt"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// names are the flag names of the dtypes (--wire, --kv-cache).
var names = map[phalanxpb.DType]string{
	phalanxpb.DType_DTYPE_F32: "f32",
	phalanxpb.DType_DTYPE_F16: "f16",
	phalanxpb.DType_DTYPE_Q8:  "q8",
}

// Name is how flags, logs and status name d: "f32", "f16" or "q8";
// DTYPE_UNSPECIFIED, which every message reads as f32, is "f32".
func Name(d phalanxpb.DType) string {
	if n, ok := names[d]; ok {
		return n
	}
	if d == phalanxpb.DType_DTYPE_UNSPECIFIED {
		return "f32"
	}
	return d.String()
}

// ParseName is Name's inverse over the dtypes in allowed (all three when
// none are given); anything else is an error that quotes it and lists them.
func ParseName(s string, allowed ...phalanxpb.DType) (phalanxpb.DType, error) {
	if len(allowed) == 0 {
		allowed = []phalanxpb.DType{phalanxpb.DType_DTYPE_F32, phalanxpb.DType_DTYPE_F16, phalanxpb.DType_DTYPE_Q8}
	}
	list := ""
	for i, d := range allowed {
		if names[d] == s {
			return d, nil
		}
		if i > 0 {
			list += ", "
		}
		list += names[d]
	}
	return phalanxpb.DType_DTYPE_UNSPECIFIED, fmt.Errorf("%q (want %s)", s, list)
}
