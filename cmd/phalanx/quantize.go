package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// quantizeTypes are the --type values and the dtypes they write.
var quantizeTypes = map[string]kernels.DType{"f32": kernels.F32, "f16": kernels.F16, "q8_0": kernels.Q8_0, "q4_0": kernels.Q4_0}

func runQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("quantize", stderr)
	model := fs.String("model", "", "Hugging Face model directory to convert (required)")
	typ := fs.String("type", "q8_0", "weight type: q8_0, q4_0, f16 or f32")
	out := fs.String("out", "", "GGUF file to write (required)")
	name := fs.String("name", "", "general.name (default: the model directory's name)")
	tokFile := fs.String("tokenizer", "", "tokenizer to store (tokenizer.json or .gguf); default: the model directory's")
	splitQKV := fs.Bool("split-qkv", false, "write attn_q/attn_k/attn_v instead of the fused attn_qkv")
	threads := fs.Int("threads", 2, "goroutines quantizing rows")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return usagef("--model and --out are required")
	}
	dt, ok := quantizeTypes[strings.ToLower(*typ)]
	if !ok {
		return usagef("unknown --type %q (q8_0, q4_0, f16 or f32)", *typ)
	}
	if *threads < 1 || *threads > 1024 {
		return usagef("--threads %d outside [1, 1024]", *threads)
	}
	var tok *tokenizer.Tokenizer
	var err error
	switch {
	case *tokFile != "":
		tok, err = tokenizer.Load(*tokFile)
	default:
		tok, err = loadTokenizer(*model, "")
	}
	if err != nil {
		return err
	}
	if tok == nil {
		fmt.Fprintf(stderr, "warning: %s has no tokenizer.json; the GGUF file will have no tokenizer (Phalanx loads it, llama.cpp does not)\n", *model)
	}

	// Write beside the target and rename, so a failed run leaves no
	// truncated file under the final name.
	f, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	rep, err := engine.WriteGGUF(ctx, *model, f, engine.GGUFOptions{
		Type: dt, Name: *name, Tokenizer: tok, SplitQKV: *splitQKV, Threads: *threads,
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	if len(rep.FallbackF16) > 0 {
		fmt.Fprintf(stderr, "%d matrices have rows that are not whole %v blocks and were written as F16: %s\n",
			len(rep.FallbackF16), dt, strings.Join(rep.FallbackF16, ", "))
	}
	fmt.Fprintf(stdout, "wrote %s: %d tensors, %s, %.1f MB\n", *out, rep.Tensors, strings.ToUpper(*typ), float64(rep.Bytes)/1e6)
	return nil
}
