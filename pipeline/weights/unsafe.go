package weights

import "unsafe"

// unsafeBytes views w's memory as bytes: an 8-byte aligned buffer.
func unsafeBytes(w []uint64) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8)
}
