package mmapfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	want := bytes.Repeat([]byte("phalanx!"), 3000)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Map(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, want) {
		t.Fatal("mapped bytes differ from the file")
	}
	WillNeed(m.Data[5000:9000]) // an unaligned range inside the mapping
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	if m, err := Map(empty); err != nil || len(m.Data) != 0 {
		t.Errorf("empty file: %v, %d bytes", err, len(m.Data))
	}
	if _, err := Map(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file mapped")
	}
}
