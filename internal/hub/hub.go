package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub huggingface_hub talks to when HF_ENDPOINT is
// unset.
const DefaultEndpoint = "https://huggingface.co"

// MaxMetadataBytes bounds every JSON document read from the server (the
// model info and a safetensors index). Phi-2's are a few KiB.
const MaxMetadataBytes = 16 << 20

var (
	// ErrUnauthorized is a 401 or 403: a private or gated repository, or a
	// token the Hub refused.
	ErrUnauthorized = errors.New("hub: unauthorized")
	// ErrNotFound is a 404: no such repository, revision or file.
	ErrNotFound = errors.New("hub: not found")
	// ErrNoWeights is a repository without the files Pull needs.
	ErrNoWeights = errors.New("hub: no weights")
	// ErrMetadata is a model info or index document that is malformed or
	// larger than MaxMetadataBytes.
	ErrMetadata = errors.New("hub: bad metadata")
)

// Client downloads from a Hugging Face Hub into a local cache. Its zero
// value is usable once CacheDir is set; FromEnv fills it as huggingface_hub
// would.
type Client struct {
	// Endpoint is the Hub's base URL; empty means DefaultEndpoint.
	Endpoint string
	// Token is sent as "Authorization: Bearer" to Endpoint's host only,
	// never to the CDN hosts it redirects to.
	Token string
	// CacheDir is the cache root (see DefaultCacheDir).
	CacheDir string
	// HTTP sends the requests; nil means a client with connection and
	// response-header timeouts. The Client follows redirects itself.
	HTTP *http.Client
	// Progress is told about each download; nil is silent.
	Progress Progress
	// Attempts per request for transient failures (connection errors,
	// 429, 5xx, a stalled or cut transfer); 0 means 3.
	Attempts int
	// Backoff is the wait before the second attempt, doubled for each
	// further one; 0 means one second.
	Backoff time.Duration
	// StallTimeout aborts (and retries) a transfer that receives nothing
	// for this long; 0 means one minute.
	StallTimeout time.Duration
	// MaxFileSize caps a download whose size neither the listing nor the
	// response announces: past it the download fails with ErrTooLarge
	// and its partial data is deleted. 0 means DefaultMaxFileSize; JSON
	// and text files are capped at MaxMetadataFileSize at most.
	MaxFileSize int64
}

// FromEnv returns a Client configured from the environment: HF_ENDPOINT,
// HF_TOKEN and DefaultCacheDir.
func FromEnv(getenv func(string) string) (*Client, error) {
	dir, err := DefaultCacheDir(getenv)
	if err != nil {
		return nil, err
	}
	return &Client{Endpoint: getenv("HF_ENDPOINT"), Token: getenv("HF_TOKEN"), CacheDir: dir}, nil
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

// RepoInfo is the Hub's model info at one revision
// (GET /api/models/{repo}/revision/{revision}?blobs=true), the fields Pull uses.
type RepoInfo struct {
	ID       string    `json:"id"`
	SHA      string    `json:"sha"` // the commit the revision resolved to
	Private  bool      `json:"private"`
	Siblings []Sibling `json:"siblings"`
}

// Sibling is one file of a repository.
type Sibling struct {
	RFilename string   `json:"rfilename"`
	BlobID    string   `json:"blobId,omitempty"` // git blob id; the ETag of a non-LFS file
	Size      *int64   `json:"size,omitempty"`
	LFS       *LFSInfo `json:"lfs,omitempty"`
}

// LFSInfo is a large file's Git LFS pointer: its content's sha256 (also its
// ETag) and size.
type LFSInfo struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize,omitempty"`
}

// ModelInfo fetches a model repository's commit and file list at revision.
func (c *Client) ModelInfo(ctx context.Context, repo, revision string) (*RepoInfo, error) {
	if err := ValidateRepo(repo); err != nil {
		return nil, err
	}
	u := c.endpoint() + "/api/models/" + repo + "/revision/" + url.PathEscape(revision) + "?blobs=true"
	var info RepoInfo
	err := c.retry(ctx, func(ctx context.Context) error {
		resp, _, err := c.send(ctx, http.MethodGet, u, http.Header{"Accept": {"application/json"}})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return c.statusError(resp, repo, revision, "")
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetadataBytes+1))
		if err != nil {
			return transient{fmt.Errorf("hub: reading %s: %w", u, err)}
		}
		if len(b) > MaxMetadataBytes {
			return fmt.Errorf("%w: model info of %s is larger than %d bytes", ErrMetadata, repo, MaxMetadataBytes)
		}
		if err := json.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("%w: model info of %s: %v", ErrMetadata, repo, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !commitHash.MatchString(info.SHA) {
		return nil, fmt.Errorf("%w: model info of %s: commit %q is not a 40-digit hex hash", ErrMetadata, repo, info.SHA)
	}
	for _, s := range info.Siblings {
		if err := localPath(s.RFilename); err != nil {
			return nil, fmt.Errorf("%s: %w", repo, err)
		}
	}
	return &info, nil
}

// PullOptions selects what Pull downloads.
type PullOptions struct {
	// Revision is a branch, tag or commit; empty means "main".
	Revision string
	// Include, when set, replaces the default selection with the files
	// whose repository path matches one of these path.Match patterns (a
	// safetensors index among them brings its shards along).
	Include []string
}

// Snapshot is a pulled revision.
type Snapshot struct {
	Dir    string   // snapshots/{commit}: a model directory engine.Load reads
	Commit string   // the commit the revision resolved to
	Files  []string // repository paths present in Dir
}

// The files beside the weights that running a model uses; config.json is
// required, the others are taken when the repository has them.
var runFiles = []string{"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}

const (
	singleWeights = "model.safetensors"
	indexFile     = "model.safetensors.index.json"
)

// Pull downloads a model repository's files into the cache and returns
// the snapshot directory. By default it takes what Phalanx needs to run
// the model: config.json, the tokenizer files, and model.safetensors or
// model.safetensors.index.json with every shard it names. Files already
// in the cache are not downloaded again; interrupted ones are resumed.
func (c *Client) Pull(ctx context.Context, repo string, opts PullOptions) (*Snapshot, error) {
	if c.CacheDir == "" {
		return nil, errors.New("hub: no cache directory")
	}
	rev := opts.Revision
	if rev == "" {
		rev = "main"
	}
	if err := localPath(rev); err != nil {
		return nil, fmt.Errorf("revision: %w", err)
	}
	for _, p := range opts.Include {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("hub: include pattern %q: %w", p, err)
		}
	}
	info, err := c.ModelInfo(ctx, repo, rev)
	if err != nil {
		return nil, err
	}
	byName := map[string]Sibling{}
	for _, s := range info.Siblings {
		byName[s.RFilename] = s
	}
	var names []string
	if len(opts.Include) > 0 {
		for _, s := range info.Siblings {
			for _, p := range opts.Include {
				if ok, _ := path.Match(p, s.RFilename); ok {
					names = append(names, s.RFilename)
					break
				}
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: no file of %s at %s matches %s", ErrNotFound, repo, rev, strings.Join(opts.Include, ","))
		}
	} else {
		if _, ok := byName["config.json"]; !ok {
			return nil, fmt.Errorf("%w: %s has no config.json at %s", ErrNoWeights, repo, rev)
		}
		for _, f := range runFiles {
			if _, ok := byName[f]; ok {
				names = append(names, f)
			}
		}
		switch {
		case has(byName, singleWeights):
			names = append(names, singleWeights)
		case has(byName, indexFile):
			names = append(names, indexFile)
		default:
			return nil, fmt.Errorf("%w: %s has neither %s nor %s at %s; choose files with --include (for example '*.gguf')",
				ErrNoWeights, repo, singleWeights, indexFile, rev)
		}
	}

	rc := newRepoCache(c.CacheDir, repo)
	snap := &Snapshot{Dir: rc.snapshot(info.SHA), Commit: info.SHA}
	seen := map[string]bool{}
	for i := 0; i < len(names); i++ {
		name := names[i]
		if seen[name] {
			continue
		}
		seen[name] = true
		blob, err := c.fetchRepoFile(ctx, rc, repo, info.SHA, byName[name])
		if err != nil {
			return nil, err
		}
		snap.Files = append(snap.Files, name)
		if path.Base(name) == indexFile {
			shards, err := indexShards(blob, name, byName)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", repo, err)
			}
			names = append(names, shards...)
		}
	}
	if err := rc.setRef(rev, info.SHA); err != nil {
		return nil, err
	}
	return snap, nil
}

func has(m map[string]Sibling, k string) bool { _, ok := m[k]; return ok }

// indexShards reads a safetensors index (already in the cache) and returns
// the repository paths of the shards it names, sorted.
func indexShards(blob, name string, byName map[string]Sibling) ([]string, error) {
	b, err := readCapped(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMetadata, name, err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMetadata, name, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%w: %s has an empty weight_map", ErrMetadata, name)
	}
	set := map[string]bool{}
	for _, f := range idx.WeightMap {
		if err := localPath(f); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p := path.Join(path.Dir(name), f)
		if !has(byName, p) {
			return nil, fmt.Errorf("%w: %s names shard %s, which the repository does not have", ErrMetadata, name, p)
		}
		set[p] = true
	}
	shards := make([]string, 0, len(set))
	for p := range set {
		shards = append(shards, p)
	}
	sort.Strings(shards)
	return shards, nil
}

func readCapped(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMetadataBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxMetadataBytes)
	}
	return b, nil
}

// resolveURL is where the Hub serves a file of a repository at a revision.
func (c *Client) resolveURL(repo, revision, name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.endpoint() + "/" + repo + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

// fetchRepoFile makes sure the cache holds one file of the snapshot and
// returns its blob's path.
func (c *Client) fetchRepoFile(ctx context.Context, rc repoCache, repo, commit string, s Sibling) (string, error) {
	// Resolving by commit, not by branch, keeps every file of one pull
	// from the same commit even if the branch moves meanwhile.
	u := c.resolveURL(repo, commit, s.RFilename)
	want := expect{size: -1}
	id := s.BlobID
	switch {
	case s.LFS != nil:
		id, want.sha256, want.size = s.LFS.SHA256, strings.ToLower(s.LFS.SHA256), s.LFS.Size
	case s.Size != nil:
		want.size = *s.Size
	}
	if id == "" {
		// An info without blob ids: ask the resolve endpoint, as
		// huggingface_hub does, for the ETag without following the CDN
		// redirect.
		var err error
		if id, err = c.headETag(ctx, u, repo, commit, s.RFilename, &want); err != nil {
			return "", err
		}
	}
	if !blobID.MatchString(id) {
		return "", fmt.Errorf("%w: blob id %q of %s", ErrUnsafePath, id, s.RFilename)
	}
	blob := rc.blob(id)
	fi, err := os.Stat(blob)
	if err == nil && (want.size < 0 || fi.Size() == want.size) {
		return blob, rc.link(commit, s.RFilename, id)
	}
	if err == nil { // a blob of the wrong size cannot be this file's
		os.Remove(blob)
	}
	if err := c.download(ctx, s.RFilename, u, blob, want); err != nil {
		return "", err
	}
	return blob, rc.link(commit, s.RFilename, id)
}

// headETag learns a file's blob id (X-Linked-Etag for LFS files, else
// ETag) and size from a HEAD of its resolve URL.
func (c *Client) headETag(ctx context.Context, u, repo, commit, name string, want *expect) (string, error) {
	var id string
	err := c.retry(ctx, func(ctx context.Context) error {
		resp, err := c.sendOnce(ctx, http.MethodHead, u, http.Header{"Accept-Encoding": {"identity"}})
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return c.statusError(resp, repo, commit, name)
		}
		linked := normalizeETag(resp.Header.Get("X-Linked-Etag"))
		id = linked
		if id == "" {
			id = normalizeETag(resp.Header.Get("ETag"))
		}
		if id == "" {
			return fmt.Errorf("%w: %s: the server sent no ETag", ErrMetadata, name)
		}
		if isSHA256(linked) {
			want.sha256 = linked
		}
		if n, ok := parseSize(resp.Header.Get("X-Linked-Size")); ok && want.size < 0 {
			want.size = n
		} else if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 && want.size < 0 {
			want.size = resp.ContentLength
		}
		return nil
	})
	return id, err
}

// PullURL downloads one file from a URL into the cache and returns its
// path. A Hub file URL (Endpoint/{repo}/resolve/{revision}/{path}, or the
// .../blob/... page URL) goes through Pull into the repository's snapshot;
// any other URL is stored under urls/{host}/{path}. The token is sent only
// to Endpoint's host.
func (c *Client) PullURL(ctx context.Context, rawURL string) (string, error) {
	if c.CacheDir == "" {
		return "", errors.New("hub: no cache directory")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("hub: %q is not an http(s) URL", rawURL)
	}
	if repo, rev, name, ok := c.hubFileURL(u); ok {
		snap, err := c.Pull(ctx, repo, PullOptions{Revision: rev, Include: []string{escapeGlob(name)}})
		if err != nil {
			return "", err
		}
		return filepath.Join(snap.Dir, filepath.FromSlash(name)), nil
	}
	rel := strings.TrimPrefix(path.Clean("/"+u.Path), "/")
	if err := localPath(rel); err != nil {
		return "", fmt.Errorf("hub: %s: %w", rawURL, err)
	}
	host := strings.NewReplacer(":", "_", "/", "_", `\`, "_").Replace(u.Host)
	if err := localPath(host); err != nil {
		return "", fmt.Errorf("hub: %s: %w", rawURL, err)
	}
	dst := filepath.Join(c.CacheDir, "urls", host, filepath.FromSlash(rel))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil // only a verified, complete download gets this name
	}
	if err := c.download(ctx, path.Base(rel), u.String(), dst, expect{size: -1}); err != nil {
		return "", err
	}
	return dst, nil
}

// hubFileURL recognises Endpoint/{org}/{name}/(resolve|blob)/{revision}/{path}.
func (c *Client) hubFileURL(u *url.URL) (repo, rev, name string, ok bool) {
	ep, err := url.Parse(c.endpoint())
	if err != nil || !sameOrigin(ep, u) {
		return "", "", "", false
	}
	rest, found := strings.CutPrefix(u.EscapedPath(), strings.TrimRight(ep.EscapedPath(), "/")+"/")
	if !found {
		return "", "", "", false
	}
	segs := strings.Split(rest, "/")
	if len(segs) < 5 || (segs[2] != "resolve" && segs[2] != "blob") {
		return "", "", "", false
	}
	for i, s := range segs {
		if segs[i], err = url.PathUnescape(s); err != nil {
			return "", "", "", false
		}
	}
	repo, rev, name = segs[0]+"/"+segs[1], segs[3], strings.Join(segs[4:], "/")
	if ValidateRepo(repo) != nil || localPath(name) != nil {
		return "", "", "", false
	}
	return repo, rev, name, true
}

func escapeGlob(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`).Replace(s)
}
