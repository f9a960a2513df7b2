package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/internal/hub/hubtest"
)

// TestInitContainerPull runs every init container's pull, exactly as the
// manifests write it ($(VAR)s expanded, the cache moved to a temporary
// directory), with the real phalanx binary against a Hub stand-in serving
// the pinned commit: it must create the directory the daemons' --model
// names, and a second run (a restarted pod) must download nothing.
func TestInitContainerPull(t *testing.T) {
	bin := filepath.Join(programs(t), "phalanx")
	c := render(t, "k8s/base")
	for _, pull := range c.daemon(t, "phalanx pull") {
		t.Run(pull.w.name, func(t *testing.T) {
			rev := c.expandArg(pull.c, pull.flags["revision"])
			repo := pull.posargs[0]
			hub := hubtest.New(repo, map[string][]byte{
				"config.json":       []byte(`{"model_type":"phi"}`),
				"tokenizer.json":    []byte(`{}`),
				"model.safetensors": make([]byte, 11<<20), // over the LFS threshold: goes through the CDN
			})
			defer hub.Close()
			hub.SetCommit(rev)

			cache := t.TempDir()
			var args []string
			for _, a := range pull.c.Args {
				a = c.expandArg(pull.c, a)
				if strings.HasPrefix(a, "--cache=") {
					a = "--cache=" + cache
				}
				args = append(args, a)
			}
			run := func() string {
				cmd := exec.Command(bin, args...)
				cmd.Env = append(os.Environ(), "HF_ENDPOINT="+hub.URL(), "HF_TOKEN=", "PHALANX_CACHE=", "HF_HUB_CACHE=", "HF_HOME=")
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("phalanx %s: %v", strings.Join(args, " "), err)
				}
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				return lines[len(lines)-1]
			}
			got := run()
			for _, daemon := range append(c.daemon(t, "coordinator"), c.daemon(t, "worker")...) {
				if daemon.w.name != pull.w.name {
					continue
				}
				want := strings.Replace(c.expandArg(daemon.c, daemon.flags["model"]), pull.flags["cache"], cache, 1)
				if got != want {
					t.Errorf("pull made %s; %s loads --model %s", got, daemon.c.Name, want)
				}
			}
			if _, err := os.Stat(filepath.Join(got, "model.safetensors")); err != nil {
				t.Errorf("the snapshot has no weights: %v", err)
			}
			hub.ResetRequests()
			if again := run(); again != got {
				t.Errorf("second pull printed %s, first %s", again, got)
			}
			for _, r := range hub.Requests() {
				if r.Server == "cdn" || strings.Contains(r.Path, "/resolve/") {
					t.Errorf("a second pull downloaded again: %s %s %s", r.Server, r.Method, r.Path)
				}
			}
		})
	}
}
