package tests

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// `phalanx run --model DIR` (or `phalanx run DIR`) starts a local cluster and chats on the terminal: two
// turns, each answer the one a single process gives for the conversation.
func TestRunChat(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	binaries(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if out, err := exec.Command(bin.phalanx, "synth", "--out", model, "--preset", "tiny", "--seed", "9").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.phalanx, "run", "--model", model, "--workers", "2", "--listen", freeAddr(t),
		"--temperature", "0", "--max-tokens", "10", "--threads", "1")
	cmd.Stdin = strings.NewReader("Hi there\nHow are you?\n/exit\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("phalanx run: %v\n%s", err, stderr.String())
	}
	m, err := engine.Load(model, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, _ := tokenizer.FromHFDir(model)
	g := textgen.ForConfig(m.Config, tok)
	var history []prompt.Message
	want := ""
	for _, q := range []string{"Hi there", "How are you?"} {
		history = append(history, prompt.Message{Role: "user", Content: q})
		rendered, _ := prompt.RenderMessages(prompt.Chat, history)
		be, _ := textgen.NewLocalBackend(m)
		res, err := g.Run(context.Background(), be, textgen.Request{Prompt: rendered, MaxTokens: 10, Stop: prompt.DefaultStops(prompt.Chat)}, func(textgen.Chunk) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		want += "> " + res.Text + "\n"
		history = append(history, prompt.Message{Role: "assistant", Content: strings.TrimSpace(res.Text)})
	}
	want += "> "
	if got := stdout.String(); got != want {
		t.Errorf("terminal shows\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(stderr.String(), "stages ready") {
		t.Errorf("no start-up progress on stderr:\n%s", stderr.String())
	}
}
