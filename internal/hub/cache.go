package hub

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrUnsafePath is a repository file name, revision or blob id that would
// reach outside its cache directory. The Hub never sends one; a server that
// does is refused.
var ErrUnsafePath = errors.New("hub: unsafe path")

// ErrBadRepo is a repository id that is not "name" or "org/name".
var ErrBadRepo = errors.New("hub: bad repository id")

// The Hub's own rule for repository and organisation names.
var repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)

// Blob ids become file names: ETags are hex digests on the Hub; other
// servers are held to a safe alphabet without dots, so that an id can be
// neither ".." nor collide with an ".incomplete" file.
var blobID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ValidateRepo checks a model repository id ("org/name" or "name").
func ValidateRepo(repo string) error {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("%w %q: want org/name", ErrBadRepo, repo)
	}
	for _, p := range parts {
		if !repoPart.MatchString(p) || strings.Contains(p, "--") || strings.Contains(p, "..") || strings.HasSuffix(p, ".git") {
			return fmt.Errorf("%w %q: want org/name, letters, digits, '.', '_' and '-'", ErrBadRepo, repo)
		}
	}
	return nil
}

// localPath checks that p, a slash-separated name from the server, names a
// file inside the directory it will be joined to: relative, clean, no ".."
// and no empty or dot segments.
func localPath(p string) error {
	if p == "" || path.IsAbs(p) || strings.Contains(p, `\`) || path.Clean(p) != p || !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("%w %q: it would escape the snapshot directory", ErrUnsafePath, p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w %q: it would escape the snapshot directory", ErrUnsafePath, p)
		}
	}
	return nil
}

// repoCache is one repository's directory in the cache:
//
//	models--{org}--{name}/
//	  blobs/{id}                 file contents, named by ETag (sha256 for LFS files)
//	  blobs/{id}.incomplete      a download in progress
//	  refs/{revision}            the commit a branch or tag resolved to
//	  snapshots/{commit}/{path}  relative symlink to ../../blobs/{id}
type repoCache struct{ dir string }

func newRepoCache(root, repo string) repoCache {
	return repoCache{dir: filepath.Join(root, "models--"+strings.ReplaceAll(repo, "/", "--"))}
}

func (c repoCache) blob(id string) string         { return filepath.Join(c.dir, "blobs", id) }
func (c repoCache) snapshot(commit string) string { return filepath.Join(c.dir, "snapshots", commit) }

// link points snapshots/{commit}/{name} at blobs/{id} with a relative
// symlink, as huggingface_hub does, replacing whatever was there.
func (c repoCache) link(commit, name, id string) error {
	dst := filepath.Join(c.snapshot(commit), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(dst), c.blob(id))
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(dst); err == nil && cur == rel {
		return nil
	}
	tmp := dst + ".link-tmp"
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		// Filesystems without symlinks: a hard link shares the blob too.
		if lerr := os.Link(c.blob(id), tmp); lerr != nil {
			return fmt.Errorf("hub: linking %s: %w", dst, err)
		}
	}
	return os.Rename(tmp, dst)
}

// setRef records that revision resolved to commit, unless revision is the
// commit itself.
func (c repoCache) setRef(revision, commit string) error {
	if revision == commit {
		return nil
	}
	p := filepath.Join(c.dir, "refs", filepath.FromSlash(revision))
	if cur, err := os.ReadFile(p); err == nil && string(cur) == commit {
		return nil
	}
	return writeFileAtomic(p, []byte(commit))
}

func writeFileAtomic(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// DefaultCacheDir is the cache root from the environment, looked up in
// order: PHALANX_CACHE, HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
// ~/.cache/huggingface/hub (huggingface_hub's order, after Phalanx's own).
func DefaultCacheDir(getenv func(string) string) (string, error) {
	for _, k := range []string{"PHALANX_CACHE", "HF_HUB_CACHE"} {
		if v := getenv(k); v != "" {
			return v, nil
		}
	}
	if v := getenv("HF_HOME"); v != "" {
		return filepath.Join(v, "hub"), nil
	}
	if v := getenv("XDG_CACHE_HOME"); v != "" {
		return filepath.Join(v, "huggingface", "hub"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("hub: no cache directory: set PHALANX_CACHE or HF_HUB_CACHE: %w", err)
	}
	return filepath.Join(home, ".cache", "huggingface", "hub"), nil
}
