package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// logitBias parses "id=bias,id=bias".
type logitBias map[int]float32

func (b logitBias) String() string { return fmt.Sprint(map[int]float32(b)) }
func (b logitBias) Set(v string) error {
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("%q is not id=bias", kv)
		}
		id, err := strconv.Atoi(k)
		if err != nil {
			return fmt.Errorf("%q: %v", k, err)
		}
		f, err := strconv.ParseFloat(val, 32)
		if err != nil {
			return fmt.Errorf("%q: %v", val, err)
		}
		b[id] = float32(f)
	}
	return nil
}

// samplingFlags registers the sampling flags shared by generate and run.
// kvCacheFlag adds --kv-cache to fs; the function it returns gives the
// engine's dtype for it.
func kvCacheFlag(fs *flag.FlagSet) func() (kernels.DType, error) {
	kv := fs.String("kv-cache", "f32", "how the KV cache keeps keys and values: f32 (exact) or f16 (half the memory and of what attention reads)")
	return func() (kernels.DType, error) {
		switch *kv {
		case "f32":
			return kernels.F32, nil
		case "f16":
			return kernels.F16, nil
		}
		return 0, usagef("--kv-cache %q: want f32 or f16", *kv)
	}
}

func samplingFlags(fs *flag.FlagSet) func() (sample.Params, error) {
	temperature := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy (ties to the lower id)")
	topK := fs.Int("top-k", 0, "keep the k most likely tokens (0: off)")
	topP := fs.Float64("top-p", 0, "nucleus sampling mass in (0,1] (0: off)")
	minP := fs.Float64("min-p", 0, "drop tokens below min-p × the top probability (0: off)")
	rep := fs.Float64("repetition-penalty", 0, "penalty for tokens already seen (1 or 0: off)")
	repN := fs.Int("repeat-last-n", 0, "window of the repetition penalty (0: whole history)")
	pres := fs.Float64("presence-penalty", 0, "OpenAI presence penalty in [-2,2]")
	freq := fs.Float64("frequency-penalty", 0, "OpenAI frequency penalty in [-2,2]")
	bias := logitBias{}
	fs.Var(bias, "logit-bias", "comma-separated id=bias pairs added to the logits")
	seed := fs.String("seed", "", "random seed (default: a random one); the same seed gives the same text")
	return func() (sample.Params, error) {
		p := sample.Params{
			Temperature: float32(*temperature), TopK: *topK, TopP: float32(*topP), MinP: float32(*minP),
			RepetitionPenalty: float32(*rep), RepeatLastN: *repN,
			PresencePenalty: float32(*pres), FrequencyPenalty: float32(*freq), LogitBias: bias,
		}
		if *seed != "" {
			v, err := strconv.ParseUint(*seed, 10, 64)
			if err != nil {
				return p, usagef("--seed: %v", err)
			}
			p.Seed = v
		} else {
			p.Seed = sample.RandomSeed()
		}
		if err := p.Validate(); err != nil {
			return p, usageError{err}
		}
		return p, nil
	}
}

// loadTokenizer reads --tokenizer FILE, or the model's own: a GGUF file's
// tokenizer.ggml.* metadata or a model directory's tokenizer.json. A
// missing one is not an error for token-only use.
func loadTokenizer(model, file string) (*tokenizer.Tokenizer, error) {
	if file != "" {
		return tokenizer.Load(file)
	}
	if model == "" {
		return nil, usagef("--model or --tokenizer is required")
	}
	if _, err := os.Stat(model); err != nil {
		return nil, fmt.Errorf("model %s: %v", model, errors.Unwrap(err))
	}
	mf, err := engine.Open(model)
	if err != nil {
		return nil, err
	}
	return mf.Tokenizer()
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	model := fs.String("model", "", "model directory (Hugging Face layout) or .gguf file to run in this process")
	coordinator := fs.String("coordinator", "", "host:port of a running cluster's coordinator (instead of --model)")
	tokFile := fs.String("tokenizer", "", "tokenizer file (tokenizer.json or .gguf); default: the model's")
	promptText := fs.String("prompt", "", "text prompt")
	tokens := fs.String("tokens", "", "comma-separated prompt token ids (instead of --prompt)")
	tmpl := fs.String("template", "raw", "prompt template: raw, instruct (\"Instruct: …\\nOutput:\") or chat (\"Alice: …\\nBob:\")")
	maxTokens := fs.Int("max-tokens", 128, "most tokens to generate")
	var stops stringList
	fs.Var(&stops, "stop", "stop sequence (repeatable); not printed")
	noDefaultStops := fs.Bool("no-default-stops", false, "do not stop at the template's next turn marker")
	ignoreEOS := fs.Bool("ignore-eos", false, "keep generating past end-of-text (always on with --tokens unless --stop-at-eos)")
	stopAtEOS := fs.Bool("stop-at-eos", false, "with --tokens, stop at end-of-text")
	asJSON := fs.Bool("json", false, "print one JSON object at the end instead of streaming text")
	threads := fs.Int("threads", 0, "kernel threads (0: one per CPU)")
	kvFlag := kvCacheFlag(fs)
	params := samplingFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kv, err := kvFlag()
	if err != nil {
		return err
	}
	if (*model == "") == (*coordinator == "") {
		return usagef("give exactly one of --model and --coordinator")
	}
	if (*promptText == "") == (*tokens == "") {
		return usagef("give exactly one of --prompt and --tokens")
	}
	t, err := prompt.Parse(*tmpl)
	if err != nil {
		return usageError{err}
	}
	sp, err := params()
	if err != nil {
		return err
	}
	req := textgen.Request{Prompt: *promptText, Template: t, MaxTokens: *maxTokens, Sampling: sp,
		Stop: stops, NoDefaultStops: *noDefaultStops, IgnoreEOS: *ignoreEOS}
	if *tokens != "" {
		if req.Tokens, err = parseTokens(*tokens); err != nil {
			return err
		}
		// Token mode is the raw model interface: like reference greedy
		// decoding it runs to --max-tokens unless asked to stop at EOS.
		req.IgnoreEOS = !*stopAtEOS
	}
	if *coordinator != "" {
		return generateRemote(ctx, *coordinator, req, *tmpl, *asJSON, stdout, stderr)
	}
	if err := checkModel(*model); err != nil {
		return err
	}
	tok, err := loadTokenizer(*model, *tokFile)
	if err != nil {
		return err
	}
	if tok == nil && req.Tokens == nil {
		return fmt.Errorf("%s has no tokenizer; pass --tokenizer FILE or use --tokens", *model)
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
	b, err := textgen.NewLocalBackend(m)
	if err != nil {
		return err
	}
	g := textgen.ForConfig(m.Config, tok)
	res, err := g.Run(ctx, b, req, func(c textgen.Chunk) error {
		if *asJSON {
			return nil
		}
		_, err := io.WriteString(stdout, c.Text)
		return err
	})
	if err != nil {
		return err
	}
	if !*asJSON {
		if tok == nil { // no text to stream: print the ids
			fmt.Fprintln(stdout, strings.Trim(fmt.Sprint(res.Tokens), "[]"))
		} else {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stderr, "\n%d prompt tokens, %d generated (%s); first token %.0f ms, prefill %.1f tok/s, decode %.2f tok/s\n",
			len(res.PromptTokens), len(res.Tokens), res.FinishReason, ms(res.TimeToFirst.Seconds()), res.PrefillTokensPerSecond(), res.DecodeTokensPerSecond())
		return nil
	}
	out := map[string]any{
		"tokens":        nonNil(res.Tokens),
		"finish_reason": res.FinishReason,
		"usage":         map[string]int{"prompt_tokens": len(res.PromptTokens), "completion_tokens": len(res.Tokens)},
		"timings": map[string]float64{
			"time_to_first_token_ms":    ms(res.TimeToFirst.Seconds()),
			"prefill_tokens_per_second": res.PrefillTokensPerSecond(),
			"decode_tokens_per_second":  res.DecodeTokensPerSecond(),
		},
	}
	if tok != nil {
		out["text"] = res.Text
	}
	return json.NewEncoder(stdout).Encode(out)
}

func ms(s float64) float64 { return s * 1000 }

func nonNil(v []int) []int {
	if v == nil {
		return []int{}
	}
	return v
}

func runTokenize(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", stderr)
	model := fs.String("model", "", "model directory holding tokenizer.json")
	tokFile := fs.String("tokenizer", "", "tokenizer.json or .gguf file")
	if err := parseFlagsArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one TEXT argument")
	}
	tok, err := loadTokenizer(*model, *tokFile)
	if err != nil {
		return err
	}
	if tok == nil {
		return fmt.Errorf("%s has no tokenizer.json", *model)
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"ids": nonNil(tok.Encode(fs.Arg(0)))})
}

func runDetokenize(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("detokenize", stderr)
	model := fs.String("model", "", "model directory holding tokenizer.json")
	tokFile := fs.String("tokenizer", "", "tokenizer.json or .gguf file")
	if err := parseFlagsArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one IDS argument (comma-separated)")
	}
	ids, err := parseTokens(fs.Arg(0))
	if err != nil {
		return err
	}
	tok, err := loadTokenizer(*model, *tokFile)
	if err != nil {
		return err
	}
	if tok == nil {
		return fmt.Errorf("%s has no tokenizer.json", *model)
	}
	for _, id := range ids {
		if id < 0 || id >= tok.VocabSize() {
			return fmt.Errorf("token id %d outside the tokenizer's %d ids", id, tok.VocabSize())
		}
	}
	_, err = io.WriteString(stdout, tok.Decode(ids))
	return err
}
