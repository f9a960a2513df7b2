//go:build (!amd64 && !arm64) || purego

package kernels

// archKernels is empty: without assembly the generic kernels run.
func archKernels() []kernelSet { return nil }
