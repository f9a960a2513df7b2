package stage

import (
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fixture(name string) string { return filepath.Join("..", "..", "testdata", name) }
