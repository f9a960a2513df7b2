//go:build !unix

package mmapfile

import "os"

func mapFile(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &Mapping{Data: b}, nil
}

func unmap([]byte) error { return nil }

func willNeed([]byte) {}

func populate([]byte) {}

func dontNeed([]byte) {}
