package hub_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/ggufconv"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
	"github.com/phalanx-llm/phalanx/internal/hub"
	"github.com/phalanx-llm/phalanx/internal/hub/hubtest"
)

const fixture = "../../testdata/phi-tiny-bf16-sharded"

const (
	shard1 = "model-00001-of-00002.safetensors"
	shard2 = "model-00002-of-00002.safetensors"
)

// tinyRepo is the files of "org/tiny": the sharded bf16 fixture, a
// tokenizer.json for its 768 ids, and a README that Pull must skip.
func tinyRepo(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"README.md": []byte("# tiny\n")}
	for _, n := range []string{"config.json", "model.safetensors.index.json", shard1, shard2} {
		b, err := os.ReadFile(filepath.Join(fixture, n))
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
	return files
}

func newStandIn(t *testing.T, files map[string][]byte) *hubtest.Server {
	t.Helper()
	s := hubtest.New("org/tiny", files)
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, s *hubtest.Server) *hub.Client {
	t.Helper()
	return &hub.Client{Endpoint: s.URL(), CacheDir: t.TempDir(), Backoff: time.Millisecond}
}

func count(reqs []hubtest.Request, server, method string) int {
	n := 0
	for _, r := range reqs {
		if r.Server == server && r.Method == method {
			n++
		}
	}
	return n
}

func checkSnapshot(t *testing.T, dir string, files map[string][]byte, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(dir, n)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, files[n]) {
			t.Errorf("%s differs from the original", n)
		}
		target, err := os.Readlink(p)
		if err != nil || filepath.IsAbs(target) || !strings.HasPrefix(target, "../../blobs/") {
			t.Errorf("%s: link %q (%v), want a relative symlink into ../../blobs/", n, target, err)
		}
	}
}

func TestPullLoadsAndSecondPullDownloadsNothing(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.Private, s.Token = true, "hf_secret"
	c := newClient(t, s)
	c.Token = s.Token
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config.json", "tokenizer.json", "model.safetensors.index.json", shard1, shard2}
	if strings.Join(snap.Files, " ") != strings.Join(want, " ") {
		t.Errorf("files %v, want %v", snap.Files, want)
	}
	if snap.Commit != s.Commit || snap.Dir != filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", s.Commit) {
		t.Errorf("snapshot %+v, commit %s", snap, s.Commit)
	}
	checkSnapshot(t, snap.Dir, files, want...)
	if _, err := os.Stat(filepath.Join(snap.Dir, "README.md")); err == nil {
		t.Error("README.md was pulled")
	}
	if ref, err := os.ReadFile(filepath.Join(c.CacheDir, "models--org--tiny", "refs", "main")); err != nil || string(ref) != s.Commit {
		t.Errorf("refs/main = %q (%v), want %s", ref, err, s.Commit)
	}
	for _, n := range []string{shard1, shard2} {
		if _, err := os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "blobs", s.SHA256(n))); err != nil {
			t.Errorf("LFS blob of %s is not named by its sha256: %v", n, err)
		}
	}
	m, err := engine.Load(snap.Dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()

	reqs := s.Requests()
	if n := count(reqs, "cdn", http.MethodGet); n != 2 {
		t.Errorf("%d CDN downloads, want 2 (the shards)", n)
	}
	for _, r := range reqs {
		switch {
		case r.Server == "cdn" && r.Authorization != "":
			t.Errorf("the token was forwarded to the CDN: %+v", r)
		case r.Server == "hub" && r.Authorization != "Bearer hf_secret":
			t.Errorf("the Hub got no token: %+v", r)
		}
	}

	s.ResetRequests()
	if _, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if reqs := s.Requests(); len(reqs) != 1 || !strings.HasPrefix(reqs[0].Path, "/api/models/org/tiny/revision/main") {
		t.Errorf("second pull sent %+v, want only the model info", reqs)
	}
}

func TestResumeAfterCutConnection(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.CutOnce(shard1, 100_000)
	s.CutOnce("tokenizer.json", 1000) // non-LFS, served by the Hub itself
	c := newClient(t, s)
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap.Dir, files, shard1, "tokenizer.json")
	var ranges []string
	for _, r := range s.Requests() {
		if r.Range != "" {
			ranges = append(ranges, r.Server+" "+r.Range)
		}
	}
	if strings.Join(ranges, ",") != "hub bytes=1000-,hub bytes=100000-,cdn bytes=100000-" {
		t.Errorf("range requests %v", ranges)
	}
}

func TestServerIgnoringRangeStartsOver(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.IgnoreRange = true
	s.CutOnce(shard2, 50_000)
	c := newClient(t, s)
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap.Dir, files, shard2)
}

// cancelAt cancels a context once a file has more than n bytes on disk.
type cancelAt struct {
	file   string
	n      int64
	cancel context.CancelFunc
	cur    string
}

func (p *cancelAt) Start(name string) { p.cur = name }
func (p *cancelAt) Update(done, _ int64) {
	if p.cur == p.file && done > p.n {
		p.cancel()
	}
}
func (p *cancelAt) Finish(error) {}

func TestResumeAfterCancel(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.CutOnce(shard1, 120_000) // the cut gives the cancellation a point to land
	c := newClient(t, s)
	c.Attempts = 1
	ctx, cancel := context.WithCancel(context.Background())
	c.Progress = &cancelAt{file: shard1, n: 1, cancel: cancel}
	_, err := c.Pull(ctx, "org/tiny", hub.PullOptions{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), shard1) {
		t.Fatalf("err %v, want a cancellation naming %s", err, shard1)
	}
	part := filepath.Join(c.CacheDir, "models--org--tiny", "blobs", s.SHA256(shard1)+".incomplete")
	fi, err := os.Stat(part)
	if err != nil || fi.Size() == 0 || fi.Size() >= int64(len(files[shard1])) {
		t.Fatalf("partial download %v (%v)", fi, err)
	}
	s.ResetRequests()
	c.Progress = nil
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap.Dir, files, shard1, shard2)
	var resumed bool
	for _, r := range s.Requests() {
		if r.Server == "cdn" && r.Range != "" {
			resumed = r.Range == "bytes="+itoa(fi.Size())+"-"
		}
	}
	if !resumed {
		t.Errorf("no Range request from %d bytes: %+v", fi.Size(), s.Requests())
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf(".incomplete left behind: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCorruptContentFails(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.Corrupt(shard2)
	c := newClient(t, s)
	_, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if !errors.Is(err, hub.ErrChecksum) || !strings.Contains(err.Error(), shard2) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("err %v, want a sha256 mismatch naming %s", err, shard2)
	}
	blob := filepath.Join(c.CacheDir, "models--org--tiny", "blobs", s.SHA256(shard2))
	for _, p := range []string{blob, blob + ".incomplete"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed verification (%v)", p, err)
		}
	}
}

func TestTransientFailureRetried(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.FailOnce(shard1, http.StatusServiceUnavailable)
	c := newClient(t, s)
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap.Dir, files, shard1)
	if n := count(s.Requests(), "cdn", http.MethodGet); n != 3 {
		t.Errorf("%d CDN GETs, want 3 (one failed, retried, and the other shard)", n)
	}
}

func TestPrivateRepoNeedsToken(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.Private, s.Token = true, "hf_secret"
	env := map[string]string{"HF_ENDPOINT": s.URL(), "HF_HUB_CACHE": t.TempDir()}
	c, err := hub.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if !errors.Is(err, hub.ErrUnauthorized) || !strings.Contains(err.Error(), "requires a token: set HF_TOKEN") {
		t.Fatalf("err %v, want a request for HF_TOKEN", err)
	}
	env["HF_TOKEN"] = "wrong"
	c, _ = hub.FromEnv(func(k string) string { return env[k] })
	if _, err = c.Pull(context.Background(), "org/tiny", hub.PullOptions{}); !errors.Is(err, hub.ErrUnauthorized) || !strings.Contains(err.Error(), "refused the token") {
		t.Fatalf("err %v, want a refused token", err)
	}
	env["HF_TOKEN"] = "hf_secret"
	c, _ = hub.FromEnv(func(k string) string { return env[k] })
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(snap.Dir, env["HF_HUB_CACHE"]) {
		t.Errorf("snapshot %s outside HF_HUB_CACHE", snap.Dir)
	}
}

func TestNotFound(t *testing.T) {
	s := newStandIn(t, tinyRepo(t))
	c := newClient(t, s)
	c.Token = "hf_any" // with a token the Hub says 404 rather than 401
	for _, tc := range []struct{ repo, rev, want string }{
		{"org/missing", "main", "repository org/missing"},
		{"org/tiny", "v9", `revision "v9"`},
	} {
		_, err := c.Pull(context.Background(), tc.repo, hub.PullOptions{Revision: tc.rev})
		if !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s@%s: err %v, want not found (%s)", tc.repo, tc.rev, err, tc.want)
		}
	}
	_, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{Include: []string{"*.gguf"}})
	if !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("include matching nothing: %v", err)
	}
}

func TestBlobIDsFromHead(t *testing.T) {
	files := tinyRepo(t)
	s := newStandIn(t, files)
	s.OmitBlobIDs = true
	c := newClient(t, s)
	snap, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap.Dir, files, "config.json", shard1, shard2)
	if n := count(s.Requests(), "hub", http.MethodHead); n != 5 {
		t.Errorf("%d HEADs, want one per file", n)
	}
	if _, err := os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "blobs", s.SHA256(shard1))); err != nil {
		t.Errorf("X-Linked-Etag not used as the blob name: %v", err)
	}
}

func writeGGUF(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := ggufconv.Write(context.Background(), fixture, &b, ggufconv.Options{Type: ggufconv.MostlyQ8_0}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPullURL(t *testing.T) {
	files := tinyRepo(t)
	files["tiny-q8_0.gguf"] = writeGGUF(t)
	s := newStandIn(t, files)
	s.Private, s.Token = true, "hf_secret"
	c := newClient(t, s)
	c.Token = s.Token

	// Another host's URL: the token stays home.
	p, err := c.PullURL(context.Background(), s.CDN.URL+"/files/tiny-q8_0.gguf")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.ReplaceAll(strings.TrimPrefix(s.CDN.URL, "http://"), ":", "_")
	if p != filepath.Join(c.CacheDir, "urls", host, "files", "tiny-q8_0.gguf") {
		t.Errorf("path %s", p)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, files["tiny-q8_0.gguf"]) {
		t.Error("downloaded GGUF differs")
	}
	m, err := engine.Load(p, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	for _, r := range s.Requests() {
		if r.Authorization != "" {
			t.Errorf("token sent to another host: %+v", r)
		}
	}
	s.ResetRequests()
	if _, err := c.PullURL(context.Background(), s.CDN.URL+"/files/tiny-q8_0.gguf"); err != nil || len(s.Requests()) != 0 {
		t.Errorf("second pull of a URL: %v, %d requests", err, len(s.Requests()))
	}

	// A Hub file URL lands in the repository's snapshot, verified.
	p, err = c.PullURL(context.Background(), s.URL()+"/org/tiny/resolve/main/tiny-q8_0.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", s.Commit, "tiny-q8_0.gguf") {
		t.Errorf("path %s", p)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, files["tiny-q8_0.gguf"]) {
		t.Error("downloaded GGUF differs")
	}
}

func TestUnsafePathsRefused(t *testing.T) {
	for _, bad := range []string{"../escape.json", "/etc/passwd", "a/../../b", "a//b", `..\x`} {
		s := newStandIn(t, tinyRepo(t))
		s.ExtraSiblings = []string{bad}
		c := newClient(t, s)
		_, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{})
		if !errors.Is(err, hub.ErrUnsafePath) {
			t.Errorf("sibling %q: err %v, want ErrUnsafePath", bad, err)
		}
	}
	// An index naming a shard outside the snapshot.
	files := tinyRepo(t)
	files["model.safetensors.index.json"] = []byte(`{"weight_map": {"x": "../../../evil.safetensors"}}`)
	s := newStandIn(t, files)
	c := newClient(t, s)
	if _, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{}); !errors.Is(err, hub.ErrUnsafePath) {
		t.Errorf("index with ../: err %v", err)
	}
	for _, repo := range []string{"../x", "a/b/c", "org/..", "org--x/y", ""} {
		if err := hub.ValidateRepo(repo); err == nil {
			t.Errorf("repo %q accepted", repo)
		}
	}
	if _, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{Revision: "../../x"}); !errors.Is(err, hub.ErrUnsafePath) {
		t.Errorf("revision ../../x: %v", err)
	}
}

func TestMetadataSizeCapped(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"sha": "`))
		chunk := bytes.Repeat([]byte("a"), 1<<20)
		for i := 0; i < 17; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer big.Close()
	c := &hub.Client{Endpoint: big.URL, CacheDir: t.TempDir()}
	if _, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{}); !errors.Is(err, hub.ErrMetadata) {
		t.Errorf("err %v, want ErrMetadata", err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	home, _ := os.UserHomeDir()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PHALANX_CACHE": "/p", "HF_HUB_CACHE": "/h"}, "/p"},
		{map[string]string{"HF_HUB_CACHE": "/h", "HF_HOME": "/home"}, "/h"},
		{map[string]string{"HF_HOME": "/hf", "XDG_CACHE_HOME": "/x"}, "/hf/hub"},
		{map[string]string{"XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"},
		{map[string]string{}, filepath.Join(home, ".cache", "huggingface", "hub")},
	} {
		got, err := hub.DefaultCacheDir(func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("%v: %q %v, want %q", tc.env, got, err, tc.want)
		}
	}
}

// A file whose size nothing announces (no size in the listing, no
// Content-Length, no Content-Range total) stops at the cap, fails with
// ErrTooLarge and leaves no partial data; under the cap it downloads.
func TestUnknownSizeCapped(t *testing.T) {
	files := tinyRepo(t)
	files["tiny-q8_0.gguf"] = writeGGUF(t)
	size := int64(len(files["tiny-q8_0.gguf"]))
	s := newStandIn(t, files)
	s.HideSizes, s.OmitBlobIDs = true, true

	noPartial := func(t *testing.T, root string) {
		t.Helper()
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".incomplete") {
				t.Errorf("partial data left: %s", p)
			}
			return nil
		})
	}
	for _, u := range []string{s.CDN.URL + "/files/tiny-q8_0.gguf", s.URL() + "/org/tiny/resolve/main/tiny-q8_0.gguf"} {
		c := newClient(t, s)
		c.MaxFileSize = size - 1
		if _, err := c.PullURL(context.Background(), u); !errors.Is(err, hub.ErrTooLarge) {
			t.Errorf("%s over the cap: %v, want ErrTooLarge", u, err)
		} else if !strings.Contains(err.Error(), "--max-file-size") {
			t.Errorf("the error does not say how to raise the cap: %v", err)
		}
		noPartial(t, c.CacheDir)
		c.MaxFileSize = size
		if p, err := c.PullURL(context.Background(), u); err != nil {
			t.Errorf("%s at the cap: %v", u, err)
		} else if got, _ := os.ReadFile(p); !bytes.Equal(got, files["tiny-q8_0.gguf"]) {
			t.Errorf("%s: downloaded file differs", u)
		}
	}
	// A whole repository: config.json is refused past a small cap.
	c := newClient(t, s)
	c.MaxFileSize = int64(len(files["config.json"])) - 1
	if _, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{}); !errors.Is(err, hub.ErrTooLarge) {
		t.Errorf("pull over the cap: %v, want ErrTooLarge", err)
	}
	noPartial(t, c.CacheDir)
	// With sizes announced, the cap does not apply.
	s.HideSizes, s.OmitBlobIDs = false, false
	if _, err := c.Pull(context.Background(), "org/tiny", hub.PullOptions{}); err != nil {
		t.Errorf("pull with sizes announced: %v", err)
	}
}
