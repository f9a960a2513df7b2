package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/tokenizer"
	"github.com/phalanx-llm/phalanx/internal/hub/hubtest"
)

// pullStandIn serves "org/tiny" (the sharded bf16 fixture with a
// tokenizer) as a private repository and points HF_ENDPOINT at it.
func pullStandIn(t *testing.T) (*hubtest.Server, map[string][]byte) {
	t.Helper()
	src := "../../testdata/phi-tiny-bf16-sharded"
	files := map[string][]byte{}
	for _, n := range []string{"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
	}
	tok, err := tokenizer.SynthesizeByteLevelJSON(768)
	if err != nil {
		t.Fatal(err)
	}
	files["tokenizer.json"] = tok
	files["extra.gguf"] = []byte("GGUF not really, but bytes are bytes")
	s := hubtest.New("org/tiny", files)
	s.Private, s.Token = true, "hf_cli"
	t.Cleanup(s.Close)
	t.Setenv("HF_ENDPOINT", s.URL())
	t.Setenv("HF_TOKEN", "")
	t.Setenv("PHALANX_CACHE", "")
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	return s, files
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestPullThenGenerate(t *testing.T) {
	s, files := pullStandIn(t)
	cache := t.TempDir()
	if _, errs, code := phalanx(t, "pull", "org/tiny", "--cache", cache); code != 1 || !strings.Contains(errs, "requires a token: set HF_TOKEN") {
		t.Fatalf("without a token: code %d, %s", code, errs)
	}
	t.Setenv("HF_TOKEN", s.Token)
	out, errs, code := phalanx(t, "pull", "org/tiny", "--cache", cache, "--revision", "main")
	if code != 0 {
		t.Fatal(errs)
	}
	dir := lastLine(out)
	if dir != filepath.Join(cache, "models--org--tiny", "snapshots", s.Commit) {
		t.Errorf("printed %q", dir)
	}
	for _, n := range []string{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		if !strings.Contains(errs, n+": ") {
			t.Errorf("no progress line for %s in %q", n, errs)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, n)); !bytes.Equal(got, files[n]) {
			t.Errorf("%s differs", n)
		}
	}
	if strings.Contains(errs, "\r") {
		t.Error("a redrawn bar on a non-terminal")
	}
	gen, errs, code := phalanx(t, "generate", "--model", dir, "--tokens", "0,1,2", "--max-tokens", "4", "--json")
	if code != 0 || !strings.Contains(gen, `"tokens"`) {
		t.Fatalf("generate on the pulled model: %s %s", gen, errs)
	}

	// Again, quietly, from the cache: only the model info is fetched.
	s.ResetRequests()
	out, errs, code = phalanx(t, "pull", "--quiet", "--cache", cache, "org/tiny")
	if code != 0 || lastLine(out) != dir || errs != "" || len(s.Requests()) != 1 {
		t.Errorf("second pull: code %d, out %q, stderr %q, %d requests", code, out, errs, len(s.Requests()))
	}

	// PHALANX_CACHE, and a direct file URL.
	t.Setenv("PHALANX_CACHE", cache)
	out, errs, code = phalanx(t, "pull", s.URL()+"/org/tiny/resolve/main/extra.gguf")
	if code != 0 || lastLine(out) != filepath.Join(dir, "extra.gguf") {
		t.Fatalf("URL pull: %q %s", out, errs)
	}
}

func TestPullBadInvocations(t *testing.T) {
	pullStandIn(t)
	for _, args := range [][]string{
		{"pull"},
		{"pull", "a/b/c"},
		{"pull", "org/tiny", "org/other"},
		{"pull", "--include", "*.gguf", "http://127.0.0.1:1/x.gguf"},
		{"pull", "--nope", "org/tiny"},
		{"pull", "--max-file-size", "0", "org/tiny"},
		{"pull", "--max-file-size", "12GB", "org/tiny"},
		{"pull", "--max-file-size", "9999999TiB", "org/tiny"},
	} {
		if _, errs, code := phalanx(t, args...); code != 2 {
			t.Errorf("%v: code %d, want 2 (%s)", args, code, errs)
		}
	}
	t.Setenv("HF_TOKEN", "hf_any")
	if _, errs, code := phalanx(t, "pull", "org/missing"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("missing repo: code %d, %s", code, errs)
	}
}
