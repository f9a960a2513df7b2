package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/internal/hub"
)

// runRun is `phalanx run MODEL`: pull the model if it is not a local path,
// start a local cluster, and chat with it in the terminal.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runChat(ctx, args, os.Stdin, stdout, stderr)
}

func runChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	modelFlag := fs.String("model", "", "the model, as the MODEL argument (which takes its place)")
	workers := fs.Int("workers", 2, "number of local worker processes")
	listen := fs.String("listen", "127.0.0.1:7070", "coordinator's Inference API address")
	threads := fs.Int("threads", 0, "kernel threads per process (0: one per CPU; a single stream keeps one stage busy at a time)")
	kvCache := fs.String("kv-cache", "f32", "how the workers keep the conversation's keys and values: f32 or f16 (half the memory)")
	tmpl := fs.String("template", "chat", "conversation template: chat (Alice/Bob) or instruct")
	maxTokens := fs.Int("max-tokens", 256, "most tokens per answer")
	params := samplingFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: phalanx run [flags] MODEL   (a directory, a .gguf file, ORG/NAME on Hugging Face, or a GGUF URL; or --model MODEL)\n\nflags:")
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *modelFlag != "" {
		positional = append(positional, *modelFlag)
	}
	if len(positional) != 1 {
		return usagef("want exactly one MODEL (an argument or --model)")
	}
	t, err := prompt.Parse(*tmpl)
	if err != nil || (t != prompt.Chat && t != prompt.Instruct) {
		return usagef("--template must be chat or instruct")
	}
	sp, err := params()
	if err != nil {
		return err
	}
	model, err := resolveModel(ctx, positional[0], stderr)
	if err != nil {
		return err
	}
	lc, err := startLocal(ctx, localOptions{model: model, listen: *listen, wire: "f32", kvCache: *kvCache, workers: *workers, threads: *threads}, stderr)
	if err != nil {
		return err
	}
	defer lc.Stop()
	fmt.Fprintf(stderr, "chatting with %s over %d workers (template %s). /reset starts over, /exit or Ctrl-D quits.\n", model, *workers, t)

	var history []prompt.Message
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for {
		fmt.Fprint(stdout, "> ")
		if !in.Scan() {
			fmt.Fprintln(stdout)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			history = nil
			fmt.Fprintln(stdout, "(conversation cleared)")
			continue
		}
		history = append(history, prompt.Message{Role: prompt.RoleUser, Content: line})
		rendered, err := prompt.RenderMessages(t, history)
		if err != nil {
			return err
		}
		req := textgen.Request{Prompt: rendered, Template: prompt.Raw, MaxTokens: *maxTokens, Sampling: sp,
			Stop: prompt.DefaultStops(t)}
		var answer strings.Builder
		err = generateRemoteText(ctx, *listen, req, func(s string) {
			answer.WriteString(s)
			io.WriteString(stdout, s)
		})
		fmt.Fprintln(stdout)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(stderr, "error: %v\n", err)
			history = history[:len(history)-1]
			continue
		}
		history = append(history, prompt.Message{Role: prompt.RoleAssistant, Content: strings.TrimSpace(answer.String())})
		sp.Seed++ // a new draw for the next answer, still reproducible from --seed
	}
}

// resolveModel returns a local model path, pulling ORG/NAME or a URL first.
func resolveModel(ctx context.Context, arg string, stderr io.Writer) (string, error) {
	if _, err := os.Stat(arg); err == nil {
		return arg, nil
	}
	c, err := hub.FromEnv(os.Getenv)
	if err != nil {
		return "", err
	}
	c.Progress = hub.NewTextProgress(stderr, isTerminal(stderr))
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		p, err := c.PullURL(ctx, arg)
		return p, offlineHint(err, arg)
	}
	if err := hub.ValidateRepo(arg); err != nil {
		return "", fmt.Errorf("%s is neither a local model nor a Hugging Face repository: %w", arg, err)
	}
	fmt.Fprintf(stderr, "pulling %s\n", arg)
	snap, err := c.Pull(ctx, arg, hub.PullOptions{Revision: "main"})
	if err != nil {
		return "", offlineHint(err, hubEndpoint(c))
	}
	return snap.Dir, nil
}

func hubEndpoint(c *hub.Client) string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	return hub.DefaultEndpoint
}

// offlineHint adds what to try next to an error that means the Hub cannot
// be reached (no network, no DNS, a proxy in the way).
func offlineHint(err error, endpoint string) error {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	if err == nil || !(errors.As(err, &dnsErr) || errors.As(err, &opErr)) {
		return err
	}
	return fmt.Errorf("%w\ncannot reach %s: set HF_ENDPOINT to a mirror, or give a local model directory or .gguf file; "+
		"with no network at all, 'phalanx synth --out /tmp/tiny' writes a small random model to run", err, endpoint)
}

var errNoFinal = errors.New("the coordinator ended the stream without a final message")
