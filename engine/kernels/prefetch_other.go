//go:build (!amd64 && !arm64) || purego

package kernels

// Prefetch does nothing without assembly (see prefetch_asm.go).
func Prefetch(b []float32) {}
