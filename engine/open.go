package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/safetensors"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// Format is how a model is stored.
type Format string

// The formats Open reads.
const (
	// FormatSafetensors is a Hugging Face directory: config.json, one or
	// more *.safetensors files, tokenizer.json.
	FormatSafetensors Format = "safetensors"
	// FormatGGUF is one llama.cpp GGUF file of architecture phi2.
	FormatGGUF Format = "gguf"
)

// ModelFiles is a model on disk, opened once: its configuration, identity
// and per-layer sizes, read from headers only. It is the one door every
// command and daemon goes through, whatever the format; Load reads the
// weights a process needs.
type ModelFiles struct {
	Path   string
	Format Format
	Config *Config
	// ID identifies the model's contents cheaply (a digest of the
	// configuration and the weight files' headers and sizes): processes
	// compare it to be sure they run the same model from their own copies.
	ID string
	// LayerBytes[i] is the stored size of decoder layer i's weights.
	LayerBytes []uint64
	// OtherBytes is the size of the weights outside the layers (embedding,
	// final norm, head).
	OtherBytes uint64
}

// Open reads a model's configuration and headers: a Hugging Face directory
// or a .gguf file. It maps no weights.
func Open(path string) (*ModelFiles, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if !st.IsDir() {
		if !strings.EqualFold(filepath.Ext(path), ".gguf") {
			return nil, fmt.Errorf("%w: %s is neither a model directory (config.json and safetensors) nor a .gguf file", ErrConfig, path)
		}
		return openGGUF(path)
	}
	return openHFDir(path)
}

func openHFDir(dir string) (*ModelFiles, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	id, err := ModelID(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	mf := &ModelFiles{Path: dir, Format: FormatSafetensors, Config: cfg, ID: id, LayerBytes: make([]uint64, cfg.NumLayers)}
	for _, name := range set.Names() {
		t, err := set.Tensor(name)
		if err != nil {
			return nil, err
		}
		mf.add(layerOf(name, "model.layers."), uint64(len(t.Data)))
	}
	if err := mf.checkLayers(); err != nil {
		return nil, err
	}
	return mf, nil
}

func openGGUF(path string) (*ModelFiles, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWeights, err)
	}
	defer f.Close()
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	// The identity is a digest of the whole header (metadata and tensor
	// table) and the file's size: cheap, and it changes with any
	// re-quantization.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f.ReaderAt(), 0, f.DataOffset)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWeights, path, err)
	}
	fmt.Fprintf(h, "size:%d\n", f.Size())
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	mf := &ModelFiles{Path: path, Format: FormatGGUF, Config: cfg, ID: name + "@" + hex.EncodeToString(h.Sum(nil))[:12],
		LayerBytes: make([]uint64, cfg.NumLayers)}
	for _, t := range f.Tensors {
		mf.add(layerOf(t.Name, "blk."), uint64(t.Size))
	}
	if err := mf.checkLayers(); err != nil {
		return nil, err
	}
	return mf, nil
}

// layerOf is the layer index of a tensor named prefix + "N." + rest, or -1.
func layerOf(name, prefix string) int {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return -1
	}
	idx, _, _ := strings.Cut(rest, ".")
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

func (mf *ModelFiles) add(layer int, n uint64) {
	if layer < 0 || layer >= len(mf.LayerBytes) {
		mf.OtherBytes += n
		return
	}
	mf.LayerBytes[layer] += n
}

func (mf *ModelFiles) checkLayers() error {
	for i, b := range mf.LayerBytes {
		if b == 0 {
			return fmt.Errorf("%w: %s has no weights for decoder layer %d of %d", ErrWeights, mf.Path, i, len(mf.LayerBytes))
		}
	}
	return nil
}

// MaxLayerBytes is the size of the largest decoder layer.
func (mf *ModelFiles) MaxLayerBytes() uint64 {
	var most uint64
	for _, b := range mf.LayerBytes {
		most = max(most, b)
	}
	return most
}

// RangeBytes is the stored size of the layers in r.
func (mf *ModelFiles) RangeBytes(r LayerRange) uint64 {
	var n uint64
	for i := max(r.Start, 0); i < min(r.End, len(mf.LayerBytes)); i++ {
		n += mf.LayerBytes[i]
	}
	return n
}

// Load maps the weights opts asks for (see the package Load).
func (mf *ModelFiles) Load(opts Options) (*Model, error) {
	if mf.Format == FormatGGUF {
		return LoadGGUF(mf.Path, opts)
	}
	return Load(mf.Path, opts)
}

// Tokenizer loads the model's tokenizer: tokenizer.json of a directory, or
// the tokenizer.ggml.* metadata of a GGUF file. A model that ships none
// gives (nil, nil).
func (mf *ModelFiles) Tokenizer() (*tokenizer.Tokenizer, error) {
	if mf.Format == FormatGGUF {
		f, err := gguf.Open(mf.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if _, ok := f.Value("tokenizer.ggml.model"); !ok {
			return nil, nil
		}
		return tokenizer.FromGGUFFile(f)
	}
	if _, err := os.Stat(filepath.Join(mf.Path, "tokenizer.json")); err != nil {
		return nil, nil
	}
	return tokenizer.FromHFDir(mf.Path)
}

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
