package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc/metadata"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// pageState is what the console page shows, read from its DOM.
type pageState struct {
	Epoch  string
	Conn   string
	Micro  string
	Dtypes string
	Stages []struct{ ID, Layers, Health string }
	Spares []struct{ ID, Layers, Health string }
	Answer string
	Chat   string
	ChatOK string
}

const readPage = `JSON.stringify({
  Epoch: document.getElementById("epoch").textContent,
  Conn: document.getElementById("conn").textContent,
  Micro: document.getElementById("microbatches").textContent,
  Dtypes: document.getElementById("dtypes").textContent,
  Stages: [...document.querySelectorAll("#stages [data-worker]")].map(e => ({ID: e.dataset.worker, Layers: e.dataset.layers || "", Health: e.dataset.health})),
  Spares: [...document.querySelectorAll("#spares [data-worker]")].map(e => ({ID: e.dataset.worker, Health: e.dataset.health})),
  Answer: document.getElementById("answer").textContent,
  Chat: document.getElementById("chat-status").textContent,
  ChatOK: document.getElementById("chat-status").dataset.state,
})`

// The web console in a real headless Chromium against a real 3-worker
// cluster: the pipeline as ClusterStatus reports it, a worker's death and
// the new plan without a reload, and a streamed chat answer equal to the
// API's for the same greedy request.
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster and a browser")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium; .ci/run does it): the console's browser test needs Debian's headless Chromium")
	}
	artifacts := os.Getenv("PHALANX_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	binaries(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if out, err := exec.Command(bin.phalanx, "synth", "--out", model, "--preset", "tiny", "--layers", "12", "--seed", "3").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	const key = "sk-console-1"
	keyFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	httpAddr := freeAddr(t)
	c := startCluster(t, model, clusterOpts{coordArgs: []string{"--http", httpAddr, "--api-key-file", keyFile, "--min-workers", "3", "--wire", "f16", "--kv-cache", "f16"}})
	for i, speed := range []string{"100", "200", "300"} { // distinct speeds: a deterministic plan over all three
		c.addWorker(fmt.Sprintf("w%d", i+1), "--speed", speed)
	}
	c.waitReady(60 * time.Second)
	st := waitStages(t, c, key, 3, 0)
	base := "http://" + httpAddr

	// The browser, with exactly these flags.
	allocCtx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancel()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	read := func() pageState {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPage))
		if err != nil {
			t.Fatal(err)
		}
		var p pageState
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		return p
	}
	waitPage := func(what string, timeout time.Duration, ok func(pageState) bool) pageState {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			p := read()
			if ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("page: no %s within %v; it shows %+v", what, timeout, p)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(artifacts, "console-"+name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s: %s", name, path)
	}
	// matches: the page's stages are the status's, in pipeline order.
	matches := func(p pageState, st *phalanxpb.ClusterStatusResponse) bool {
		if p.Epoch != fmt.Sprint(st.GetEpoch()) || len(p.Stages) != len(st.GetStages()) || p.Micro != fmt.Sprint(st.GetMicroBatches()) ||
			p.Dtypes != "f16 / f16" || st.GetWire() != phalanxpb.DType_DTYPE_F16 || st.GetKvCache() != phalanxpb.DType_DTYPE_F16 {
			return false
		}
		for i, s := range st.GetStages() {
			if p.Stages[i].ID != s.GetWorkerId() || p.Stages[i].Layers != fmt.Sprintf("%d-%d", s.GetLayerStart(), s.GetLayerEnd()) ||
				p.Stages[i].Health != "healthy" {
				return false
			}
		}
		return true
	}

	// 1. Every worker, with the plan's layer ranges.
	p := waitPage("initial plan", 20*time.Second, func(p pageState) bool { return matches(p, st) })
	t.Logf("initial: epoch %s, stages %+v", p.Epoch, p.Stages)
	for _, w := range []string{"w1", "w2", "w3"} {
		if !slices.ContainsFunc(p.Stages, func(s struct{ ID, Layers, Health string }) bool { return s.ID == w }) {
			t.Errorf("worker %s missing from the page's pipeline: %+v", w, p.Stages)
		}
	}
	shot("initial")

	// 2. Kill the middle stage's worker: the page shows it unreachable (or
	// gone once its lease expires) and then the new plan, without a reload.
	victim := st.GetStages()[1].GetWorkerId()
	c.workers[victim].kill()
	sawUnreachable := false
	p = waitPage("new epoch without "+victim, 60*time.Second, func(p pageState) bool {
		for _, s := range append(p.Stages, p.Spares...) {
			if s.ID == victim && s.Health == "unreachable" && !sawUnreachable {
				sawUnreachable = true
				shot("unreachable") // transient: until the lease expires or the re-plan
			}
		}
		if p.Epoch == fmt.Sprint(st.GetEpoch()) {
			return false
		}
		for _, s := range p.Stages {
			if s.ID == victim && s.Health != "unreachable" {
				return false
			}
		}
		return len(p.Stages) > 0
	})
	st2 := waitStages(t, c, key, 2, st.GetEpoch())
	p = waitPage("re-planned pipeline", 20*time.Second, func(p pageState) bool { return matches(p, st2) })
	t.Logf("after killing %s: epoch %s, stages %+v (saw it unreachable: %v)", victim, p.Epoch, p.Stages, sawUnreachable)
	shot("after-kill")

	// 3. Chat: type a prompt and get the streamed answer, greedy.
	const prompt = "Say hello."
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("apikey"), key),
		chromedp.SetValue(chromedp.ID("temperature"), "0"),
		chromedp.SetValue(chromedp.ID("max_tokens"), "12"),
		chromedp.SendKeys(chromedp.ID("prompt"), prompt),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	p = waitPage("chat answer", 60*time.Second, func(p pageState) bool { return p.ChatOK == "done" || p.ChatOK == "error" })
	if p.ChatOK != "done" {
		t.Fatalf("chat failed: %s", p.Chat)
	}
	want := apiChat(t, base, key, prompt, 12)
	if p.Answer != want || want == "" {
		t.Errorf("page streamed %q, the API answers %q", p.Answer, want)
	}
	if !strings.Contains(p.Chat, "time to first token") || !strings.Contains(p.Chat, "tokens/s") {
		t.Errorf("chat status %q", p.Chat)
	}
	t.Logf("chat: %q; %s", p.Answer, p.Chat)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`localStorage.getItem("phalanx.apiKey") || ""`))
	if err != nil || stored != key {
		t.Errorf("API key in localStorage: %q %v", stored, err)
	}
	shot("after-chat")

	// The same page on a phone-sized screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 390 {
		t.Errorf("phone layout scrolls sideways: scrollWidth %d %v", width, err)
	}
	shot("phone")
}

// waitStages waits for a routed plan of n ready stages with an epoch above after.
func waitStages(t *testing.T, c *cluster, key string, n int, after uint64) *phalanxpb.ClusterStatusResponse {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key), 10*time.Second)
		st, err := c.client.ClusterStatus(ctx, &phalanxpb.ClusterStatusRequest{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ready := len(st.GetStages()) == n && st.GetEpoch() > after
		for _, s := range st.GetStages() {
			ready = ready && s.GetReady()
		}
		if ready {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready plan of %d stages after epoch %d: %v", n, after, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiChat is the API's non-streamed greedy answer.
func apiChat(t *testing.T, base, key, prompt string, maxTokens int) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "phi-2", "temperature": 0, "max_tokens": maxTokens, "template": "chat",
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 || len(r.Choices) != 1 {
		t.Fatalf("API chat: %d %v %+v", resp.StatusCode, err, r)
	}
	return r.Choices[0].Message.Content
}
