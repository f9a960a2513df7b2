package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/safetensors"
)

// ModelID identifies a model directory's contents cheaply: a digest of
// config.json and of the names and sizes of its weight files. Workers and
// the coordinator compare it to be sure they run the same model from their
// own copies.
func ModelID(dir string) (string, error) {
	h := sha256.New()
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	h.Write(cfg)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".safetensors") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s:%d\n", n, st.Size())
	}
	return filepath.Base(filepath.Clean(dir)) + "@" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// LayerBytes is the size of one decoder layer's weights (the largest layer),
// read from the weight files' headers without touching the weights.
func LayerBytes(dir string) (uint64, error) {
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return 0, err
	}
	defer set.Close()
	per := map[string]uint64{}
	for _, name := range set.Names() {
		rest, ok := strings.CutPrefix(name, "model.layers.")
		if !ok {
			continue
		}
		idx, _, _ := strings.Cut(rest, ".")
		t, err := set.Tensor(name)
		if err != nil {
			return 0, err
		}
		per[idx] += uint64(len(t.Data))
	}
	var most uint64
	for _, b := range per {
		most = max(most, b)
	}
	if most == 0 {
		return 0, fmt.Errorf("%w: %s has no decoder layers", ErrWeights, dir)
	}
	return most, nil
}
