package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/ggufconv"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

func runQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("quantize", stderr)
	model := fs.String("model", "", "Hugging Face model directory to convert (required)")
	typ := fs.String("type", "q8_0", "file type: "+strings.Join(ggufconv.FileTypeNames(), ", ")+" (see docs/quantization.md)")
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
	ft, ok := ggufconv.ParseFileType(*typ)
	if !ok {
		return usagef("unknown --type %q (%s)", *typ, strings.Join(ggufconv.FileTypeNames(), ", "))
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
	rep, err := ggufconv.Write(ctx, *model, f, ggufconv.Options{
		Type: ft, Name: *name, Tokenizer: tok, SplitQKV: *splitQKV, Threads: *threads,
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
	if len(rep.Fallbacks) > 0 {
		var names []string
		for _, fb := range rep.Fallbacks {
			names = append(names, fmt.Sprintf("%s (%v)", fb.Name, fb.Got))
		}
		fmt.Fprintf(stderr, "%d matrices have rows that are not whole blocks of their type and were written in another: %s\n",
			len(rep.Fallbacks), strings.Join(names, ", "))
	}
	var mix []string
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.Q8_0, kernels.Q6_K, kernels.Q5_K, kernels.Q4_K, kernels.Q4_0} {
		if n := rep.Types[dt]; n > 0 {
			mix = append(mix, fmt.Sprintf("%d %v", n, dt))
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d tensors, %s (matrices: %s), %.1f MB\n", *out, rep.Tensors, strings.ToUpper(ft.String()), strings.Join(mix, ", "), float64(rep.Bytes)/1e6)
	return nil
}
