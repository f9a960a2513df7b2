//go:build !unix

package gguf

import "os"

// Without mmap the file is read into memory once.
type mapping struct{ data []byte }

func mapFile(path string) (*mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &mapping{data: b}, nil
}

func (m *mapping) Close() error { m.data = nil; return nil }

func adviseWillNeed([]byte) {}
