// Command phalanx is the user's tool for Phalanx: it synthesizes test
// models, runs a model in this process (logits, generate) and, with the
// cluster, talks to a running coordinator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"synth":       {"write a random-weight model in the Hugging Face layout", runSynth},
	"logits":      {"print the logits of a token sequence as JSON", runLogits},
	"generate":    {"generate text (or tokens) from a prompt, streamed", runGenerate},
	"bench":       {"measure prefill and decode speed of a model in this process", runBench},
	"up":          {"start a local cluster: embedded-etcd coordinator and N worker processes", runUp},
	"coordinator": {"run the coordinator daemon (as cmd/coordinator)", runCoordinatorCmd},
	"worker":      {"run the worker daemon (as cmd/worker)", runWorkerCmd},
	"status":      {"show a running cluster's pipeline: workers, layer ranges, memory, health", runStatus},
	"tokenize":    {"print the token ids of a text as JSON", runTokenize},
	"detokenize":  {"print the text of comma-separated token ids", runDetokenize},
	"quantize":    {"convert a Hugging Face model to a llama.cpp GGUF file (q4_k_m, q5_k_m, q6_k, q8_0, q4_0, f16, f32)", runQuantize},
	"run":         {"pull a model if needed, start a local cluster and chat with it", runRun},
	"certs":       {"make a development CA and node certificates for mutual TLS", runCerts},
	"pull":        {"download a Hugging Face model (or a GGUF URL) into the cache and print its directory", runPull},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: phalanx COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'phalanx COMMAND -h' for a command's flags. Every flag may also be set as PHALANX_<FLAG>.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "phalanx: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "phalanx %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "phalanx %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }
