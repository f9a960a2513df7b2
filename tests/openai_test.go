package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// The official OpenAI Node SDK drives a cluster through the HTTP API:
// models, chat and completions, streaming and not, seeds, errors, keys.
func TestOpenAISDK(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	sdk, _ := filepath.Abs(filepath.Join("openai"))
	if _, err := os.Stat(filepath.Join(sdk, "node_modules", "openai")); err != nil {
		t.Skip("the openai npm package is not installed: npm ci --prefix tests/openai (.ci/run does it)")
	}
	binaries(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if out, err := exec.Command(bin.phalanx, "synth", "--out", model, "--preset", "tiny", "--seed", "3").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	keyFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keyFile, []byte("# keys\nsk-test-123\n"), 0o600)
	httpAddr := freeAddr(t)
	c := startCluster(t, model, clusterOpts{workers: 2, coordArgs: []string{"--http", httpAddr, "--api-key-file", keyFile}})

	cmd := exec.Command(node, "client.mjs")
	cmd.Dir = sdk
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL=http://"+httpAddr+"/v1", "OPENAI_API_KEY=sk-test-123")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("client.mjs: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var r struct {
		Models []string
		Chat   struct {
			Text, Finish, Object string
			Usage                struct{ Prompt_tokens, Completion_tokens, Total_tokens int }
		}
		ChatStream struct {
			Text, Finish, Role string
			Chunks             int
			Usage              struct{ Prompt_tokens, Completion_tokens, Total_tokens int }
		}
		Completion struct {
			Text, Finish string
			Usage        struct{ Prompt_tokens, Completion_tokens int }
		}
		CompletionStream struct{ Text, Finish string }
		Sampled          []string
		BadRequest       struct {
			Status  int
			Message string
		}
		Unauthorized struct {
			Status int
			Code   string
		}
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("SDK results: %s", out)

	// The reference: the same generation in one process.
	m, err := engine.Load(model, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := tokenizer.FromHFDir(model)
	if err != nil {
		t.Fatal(err)
	}
	rendered, _ := prompt.RenderMessages(prompt.Chat, []prompt.Message{{Role: "user", Content: "Say hello."}})
	be, _ := textgen.NewLocalBackend(m)
	want, err := textgen.ForConfig(m.Config, tok).Run(context.Background(), be,
		textgen.Request{Prompt: rendered, MaxTokens: 12, Stop: prompt.DefaultStops(prompt.Chat)}, func(textgen.Chunk) error { return nil })
	if err != nil {
		t.Fatal(err)
	}

	if len(r.Models) != 1 || !strings.HasPrefix(r.Models[0], "tiny@") {
		t.Errorf("models %v", r.Models)
	}
	if r.Chat.Text != want.Text || r.Chat.Finish != string(want.FinishReason) || r.Chat.Object != "chat.completion" {
		t.Errorf("chat %+v, want text %q finish %s", r.Chat, want.Text, want.FinishReason)
	}
	if r.Chat.Usage.Prompt_tokens != len(want.PromptTokens) || r.Chat.Usage.Completion_tokens != len(want.Tokens) ||
		r.Chat.Usage.Total_tokens != len(want.PromptTokens)+len(want.Tokens) {
		t.Errorf("chat usage %+v, want %d + %d", r.Chat.Usage, len(want.PromptTokens), len(want.Tokens))
	}
	if r.ChatStream.Text != r.Chat.Text || r.ChatStream.Finish != r.Chat.Finish || r.ChatStream.Role != "assistant" ||
		r.ChatStream.Usage != r.Chat.Usage || r.ChatStream.Chunks < 3 {
		t.Errorf("streamed chat %+v differs from %+v", r.ChatStream, r.Chat)
	}
	if r.CompletionStream.Text != r.Completion.Text || r.CompletionStream.Finish != r.Completion.Finish || r.Completion.Usage.Completion_tokens == 0 {
		t.Errorf("completion %+v, streamed %+v", r.Completion, r.CompletionStream)
	}
	if strings.Contains(r.Completion.Text, "\n\n") {
		t.Errorf("stop sequence emitted: %q", r.Completion.Text)
	}
	if len(r.Sampled) != 2 || r.Sampled[0] != r.Sampled[1] || r.Sampled[0] == "" {
		t.Errorf("same seed, different text: %q", r.Sampled)
	}
	if r.BadRequest.Status != 400 {
		t.Errorf("empty messages: %+v", r.BadRequest)
	}
	if r.Unauthorized.Status != 401 || r.Unauthorized.Code != "invalid_api_key" {
		t.Errorf("wrong key: %+v", r.Unauthorized)
	}

	// gRPC: the same keys; health stays open for probes.
	if _, _, _, err := c.generate(context.Background(), tokenRequest([]int{1, 2}, 2)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a key: %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer sk-test-123")
	if _, _, _, err := c.generate(ctx, tokenRequest([]int{1, 2}, 2)); err != nil {
		t.Errorf("gRPC with the key: %v", err)
	}
	if _, err := healthpb.NewHealthClient(c.conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health needs no key: %v", err)
	}
}
