//go:build (!amd64 && !arm64) || purego

package kernels

// Prefetch does nothing without assembly (see prefetch_asm.go).
func Prefetch[T float32 | uint16](b []T) {}
