package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

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

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := cliflag.Parse(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
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
	dt, err := kernels.ParseDType(*dtype)
	if err != nil {
		return usageError{err}
	}
	if *shards < 1 || *shards > 1000 {
		return usagef("--shards %d outside [1, 1000]", *shards)
	}
	if err := synth.Write(*out, synth.Options{Preset: p, DType: dt, Seed: *seed, Shards: *shards}); err != nil {
		return err
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
	model := fs.String("model", "", "model directory (Hugging Face layout)")
	tokens := fs.String("tokens", "", "comma-separated token ids")
	all := fs.Bool("all-positions", false, "print a row for every position, not only the last")
	threads := fs.Int("threads", 0, "kernel threads (0: one per CPU)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usagef("--model is required")
	}
	ids, err := parseTokens(*tokens)
	if err != nil {
		return err
	}
	m, err := engine.Load(*model, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: *threads})
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

func runGenerate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	model := fs.String("model", "", "model directory (Hugging Face layout)")
	tokens := fs.String("tokens", "", "comma-separated prompt token ids")
	maxTokens := fs.Int("max-tokens", 16, "number of tokens to generate")
	temperature := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	asJSON := fs.Bool("json", false, "print one JSON object at the end")
	threads := fs.Int("threads", 0, "kernel threads (0: one per CPU)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usagef("--model is required")
	}
	if *temperature != 0 {
		return usagef("--temperature other than 0 needs the sampler (not built yet)")
	}
	if *maxTokens < 0 {
		return usagef("--max-tokens must be ≥ 0")
	}
	ids, err := parseTokens(*tokens)
	if err != nil {
		return err
	}
	m, err := engine.Load(*model, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: *threads})
	if err != nil {
		return err
	}
	defer m.Close()
	out, err := engine.Greedy(m, ids, *maxTokens)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"tokens": out})
	}
	for i, id := range out {
		if i > 0 {
			fmt.Fprint(stdout, ",")
		}
		fmt.Fprint(stdout, id)
	}
	fmt.Fprintln(stdout)
	return nil
}
