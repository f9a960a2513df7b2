//go:build !linux

package controlplane

// systemMemory is unknown off Linux; workers then need --memory.
func systemMemory() (total, avail uint64) { return 0, 0 }
