package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// benchResult is what `phalanx bench --json` prints.
type benchResult struct {
	Model        string  `json:"model"`
	Threads      int     `json:"threads"`
	Kernels      string  `json:"kernels"`
	Prompt       int     `json:"prompt"`
	Gen          int     `json:"gen"`
	Repetitions  int     `json:"repetitions"`
	PrefillTokS  float64 `json:"prefill_tok_s"`
	DecodeTokS   float64 `json:"decode_tok_s"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	WeightBytes  int64   `json:"weight_bytes"`
	LoadSeconds  float64 `json:"load_s"`
}

// runBench measures prefill and decode speed like llama-bench's pp/tg
// tests: a prompt of --prompt tokens in one pass, then --gen tokens one at a
// time, each repetition on a fresh KV cache, after a warm-up that pages the
// weights in. Reported rates are medians over the repetitions.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	model := fs.String("model", "", "model directory or .gguf file")
	threads := fs.Int("threads", 0, "kernel threads (0: one per CPU)")
	promptN := fs.Int("prompt", 128, "prompt tokens processed in one pass (0: skip)")
	genN := fs.Int("gen", 32, "tokens generated one at a time (0: skip)")
	reps := fs.Int("repetitions", 3, "repetitions; the median is reported")
	asJSON := fs.Bool("json", false, "print one JSON object")
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
	if *promptN < 0 || *genN < 0 || *reps < 1 || *reps > 100 {
		return usagef("--prompt and --gen must be ≥ 0, --repetitions in [1, 100]")
	}
	start := time.Now()
	mf, err := engine.Open(*model)
	if err != nil {
		return err
	}
	m, err := mf.Load(engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: *threads, KVCache: kv})
	if err != nil {
		return err
	}
	defer m.Close()
	load := time.Since(start)
	cfg := m.Config
	if *promptN+*genN+1 > cfg.MaxPositionEmbeddings {
		return usagef("--prompt + --gen exceed the %d-token context", cfg.MaxPositionEmbeddings)
	}
	H, V := cfg.HiddenSize, cfg.VocabSize
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]int, max(*promptN, 1))
	for i := range ids {
		ids[i] = r.IntN(V)
	}
	logits := make([]float32, V)
	x := make([]float32, max(*promptN, 1)*H)
	run := func(cache *engine.KVCache, toks []int) error {
		xs := x[:len(toks)*H]
		if err := m.Embed(toks, xs); err != nil {
			return err
		}
		if err := m.Forward(xs, []engine.Span{{Cache: cache, Tokens: len(toks)}}); err != nil {
			return err
		}
		return m.Logits(xs[(len(toks)-1)*H:], logits)
	}
	// Warm-up: one token through everything pages the weights in.
	warm := m.NewCache()
	if err := run(warm, ids[:1]); err != nil {
		return err
	}
	warm.Release()
	var pp, tg []float64
	for rep := 0; rep < *reps; rep++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if *promptN > 0 {
			t0 := time.Now()
			cache := m.NewCache()
			if err := run(cache, ids[:*promptN]); err != nil {
				return err
			}
			pp = append(pp, float64(*promptN)/time.Since(t0).Seconds())
			cache.Release()
		}
		if *genN > 0 {
			cache := m.NewCache()
			next := ids[0]
			t0 := time.Now()
			for i := 0; i < *genN; i++ {
				if err := run(cache, []int{next}); err != nil {
					return err
				}
				next = engine.Argmax(logits)
			}
			tg = append(tg, float64(*genN)/time.Since(t0).Seconds())
			cache.Release()
		}
	}
	res := benchResult{Model: *model, Threads: m.Threads(), Kernels: kernels.Name(), Prompt: *promptN, Gen: *genN, Repetitions: *reps,
		PrefillTokS: median(pp), DecodeTokS: median(tg), PeakRSSBytes: peakRSS(), WeightBytes: m.WeightBytes(),
		LoadSeconds: load.Seconds()}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "model %s, %d threads, %s kernels\n", res.Model, res.Threads, res.Kernels)
	if *promptN > 0 {
		fmt.Fprintf(stdout, "prefill (pp%d): %8.2f tok/s\n", *promptN, res.PrefillTokS)
	}
	if *genN > 0 {
		fmt.Fprintf(stdout, "decode  (tg%d): %8.2f tok/s  (%.1f GB/s of weights)\n", *genN, res.DecodeTokS,
			res.DecodeTokS*float64(res.WeightBytes)/1e9)
	}
	fmt.Fprintf(stdout, "peak RSS %.2f GB, weights %.2f GB, load %.1f s\n", float64(res.PeakRSSBytes)/1e9, float64(res.WeightBytes)/1e9, res.LoadSeconds)
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
