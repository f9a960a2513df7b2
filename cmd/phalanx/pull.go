package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/phalanx-llm/phalanx/internal/hub"
)

// runPull downloads a Hugging Face model repository (or one file by URL)
// into the cache and prints the local path as the last line of stdout, so
// that `phalanx generate --model "$(phalanx pull microsoft/phi-2)"` works.
func runPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pull", stderr)
	revision := fs.String("revision", "main", "branch, tag or commit to download")
	cache := fs.String("cache", "", "cache directory (default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)")
	include := fs.String("include", "", "comma-separated globs of repository files to download instead of those needed to run the model (e.g. '*.gguf')")
	token := fs.String("token", "", "Hugging Face access token (default $HF_TOKEN; the flag is visible to other users in ps)")
	quiet := fs.Bool("quiet", false, "print no progress")
	maxSize := fs.String("max-file-size", "64GiB", "cap on a file whose size the server does not announce (bytes, or with KiB, MiB, GiB, TiB); JSON and text files stop at 64MiB")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: phalanx pull [flags] ORG/NAME | URL\n\nflags:")
		fs.PrintDefaults()
	}
	// Flags may come after the repository: `pull microsoft/phi-2 --revision main`.
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want exactly one ORG/NAME or URL argument, got %d", len(positional))
	}
	target := positional[0]
	limit, err := parseBytes(*maxSize)
	if err != nil {
		return usagef("--max-file-size: %v", err)
	}

	c, err := hub.FromEnv(os.Getenv)
	if err != nil && *cache == "" {
		return err
	}
	if c == nil {
		c = &hub.Client{Endpoint: os.Getenv("HF_ENDPOINT"), Token: os.Getenv("HF_TOKEN")}
	}
	if *cache != "" {
		c.CacheDir = *cache
	}
	if *token != "" {
		c.Token = *token
	}
	c.MaxFileSize = limit
	if !*quiet {
		c.Progress = hub.NewTextProgress(stderr, isTerminal(stderr))
	}

	if strings.Contains(target, "://") {
		if *include != "" {
			return usagef("--include applies to a repository, not a URL")
		}
		p, err := c.PullURL(ctx, target)
		if err != nil {
			return offlineHint(err, target)
		}
		fmt.Fprintln(stdout, p)
		return nil
	}
	if err := hub.ValidateRepo(target); err != nil {
		return usageError{err}
	}
	var globs []string
	for _, g := range strings.Split(*include, ",") {
		if g = strings.TrimSpace(g); g != "" {
			globs = append(globs, g)
		}
	}
	snap, err := c.Pull(ctx, target, hub.PullOptions{Revision: *revision, Include: globs})
	if err != nil {
		return offlineHint(err, hubEndpoint(c))
	}
	fmt.Fprintln(stdout, snap.Dir)
	return nil
}

// parseBytes reads a size: a number of bytes with an optional binary unit.
func parseBytes(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), 0
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, ok := strings.CutSuffix(num, u); ok {
			num, shift = strings.TrimSpace(n), 10*(i+1)
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is not a positive size such as 1073741824 or 64GiB", s)
	}
	return n << shift, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
