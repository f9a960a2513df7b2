package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Load loads a tokenizer from a GGUF file (by its .gguf extension), a
// Hugging Face model directory, or a tokenizer.json file (its directory's
// tokenizer_config.json is used if present).
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	switch {
	case st.IsDir():
		return FromHFDir(path)
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		return FromGGUF(path)
	case strings.EqualFold(filepath.Ext(path), ".json"):
		tok, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cfg, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "tokenizer_config.json"))
		return fromHFJSON(tok, cfg, path)
	}
	return nil, fmt.Errorf("%s: %w: want a .gguf file, a tokenizer.json or a model directory", path, ErrUnsupported)
}
