package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/tokenizer"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/synth"
	"github.com/phalanx-llm/phalanx/internal/cliflag"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("phalanx "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlagsArgs parses flags and leaves positional arguments.
func parseFlagsArgs(fs *flag.FlagSet, args []string) error {
	if err := cliflag.Parse(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	return nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments (`pull microsoft/phi-2 --revision main`) and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for rest := args; ; {
		if err := parseFlagsArgs(fs, rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseFlagsArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func runSynth(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("synth", stderr)
	out := fs.String("out", "", "directory to write the model into (required)")
	preset := fs.String("preset", "tiny", "model shape: tiny or phi-2")
	dtype := fs.String("dtype", "f32", "weight dtype: f32, f16 or bf16")
	seed := fs.Uint64("seed", 1, "random seed; the same seed writes the same model")
	shards := fs.Int("shards", 1, "number of safetensors shards")
	layers := fs.Int("layers", 0, "override the preset's number of layers (0: the preset's)")
	tokFile := fs.String("tokenizer", "", "tokenizer to ship with the model (tokenizer.json or .gguf, e.g. Phi-2's); default: a small byte-level one")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	p, ok := synth.Presets[*preset]
	if !ok {
		return usagef("unknown --preset %q (tiny or phi-2)", *preset)
	}
	if *layers < 0 || *layers > 1024 {
		return usagef("--layers %d outside [0, 1024]", *layers)
	}
	if *layers > 0 {
		p.Layers = *layers
	}
	dt, err := kernels.ParseDType(*dtype)
	if err != nil {
		return usageError{err}
	}
	if *shards < 1 || *shards > 1000 {
		return usagef("--shards %d outside [1, 1000]", *shards)
	}
	var tokJSON, tokCfg []byte
	if *tokFile != "" {
		tok, err := tokenizer.Load(*tokFile)
		if err != nil {
			return err
		}
		if tok.VocabSize() > p.Vocab {
			return fmt.Errorf("the tokenizer has %d ids but the %s model's vocabulary is %d", tok.VocabSize(), *preset, p.Vocab)
		}
		if tok.BOS() >= 0 {
			p.BOS = tok.BOS()
		}
		if tok.EOS() >= 0 {
			p.EOS = tok.EOS()
		}
		if tokJSON, err = tok.MarshalHFJSON(); err != nil {
			return err
		}
		if tokCfg, err = tok.MarshalHFConfig(); err != nil {
			return err
		}
	} else {
		// A byte-level vocabulary filling the model's, with <|endoftext|>
		// as its last id: the preset's BOS/EOS.
		if tokJSON, err = tokenizer.SynthesizeByteLevelJSON(p.Vocab); err != nil {
			return err
		}
		p.BOS, p.EOS = p.Vocab-1, p.Vocab-1
	}
	if err := synth.Write(*out, synth.Options{Preset: p, DType: dt, Seed: *seed, Shards: *shards}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "tokenizer.json"), tokJSON, 0o644); err != nil {
		return err
	}
	if tokCfg != nil {
		if err := os.WriteFile(filepath.Join(*out, "tokenizer_config.json"), tokCfg, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s model (%v, seed %d, %d shard(s)) to %s\n", *preset, dt, *seed, *shards, *out)
	return nil
}

func parseTokens(s string) ([]int, error) {
	var ids []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, usagef("--tokens: %q is not a token id", f)
		}
		ids = append(ids, v)
	}
	if len(ids) == 0 {
		return nil, usagef("--tokens is empty")
	}
	return ids, nil
}

func runLogits(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logits", stderr)
	model := fs.String("model", "", "model directory (Hugging Face layout) or .gguf file")
	tokens := fs.String("tokens", "", "comma-separated token ids")
	all := fs.Bool("all-positions", false, "print a row for every position, not only the last")
	threads := fs.Int("threads", 0, "kernel threads (0: one per CPU)")
	kvFlag := kvCacheFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kv, err := kvFlag()
	if err != nil {
		return err
	}
	if *model == "" {
		return usagef("--model is required")
	}
	ids, err := parseTokens(*tokens)
	if err != nil {
		return err
	}
	mf, err := engine.Open(*model)
	if err != nil {
		return err
	}
	m, err := mf.Load(engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: *threads, KVCache: kv})
	if err != nil {
		return err
	}
	defer m.Close()
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	x := make([]float32, len(ids)*H)
	if err := m.Embed(ids, x); err != nil {
		return err
	}
	if err := m.Forward(x, []engine.Span{{Cache: m.NewCache(), Tokens: len(ids)}}); err != nil {
		return err
	}
	if !*all {
		x = x[(len(ids)-1)*H:]
	}
	logits := make([]float32, len(x)/H*V)
	if err := m.Logits(x, logits); err != nil {
		return err
	}
	w := bufio.NewWriterSize(stdout, 1<<16)
	w.WriteString(`{"logits": [`)
	for r := 0; r < len(logits)/V; r++ {
		if r > 0 {
			w.WriteString(", ")
		}
		w.WriteByte('[')
		for i, v := range logits[r*V : (r+1)*V] {
			if i > 0 {
				w.WriteByte(',')
			}
			w.Write(strconv.AppendFloat(nil, float64(v), 'g', -1, 32))
		}
		w.WriteByte(']')
	}
	w.WriteString("]}\n")
	return w.Flush()
}
