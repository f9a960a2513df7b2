package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrChecksum is a download whose sha256 differs from the Hub's LFS
	// metadata. The partial file is deleted.
	ErrChecksum = errors.New("hub: checksum mismatch")
	// ErrSize is a download whose length differs from the Hub's metadata.
	// The partial file is deleted.
	ErrSize = errors.New("hub: size mismatch")
	// ErrTooLarge is a download of unannounced size that outgrew the
	// Client's cap (MaxFileSize, or MaxMetadataFileSize for metadata).
	ErrTooLarge = errors.New("hub: file too large")
)

// transient marks a failure worth another attempt: the next one resumes
// from the bytes already on disk.
type transient struct{ error }

func (t transient) Unwrap() error { return t.error }

var errStalled = errors.New("no data received within the stall timeout")

// expect is what a download must turn out to be; size -1 and sha256 ""
// are unknown.
type expect struct {
	size   int64
	sha256 string
}

func (c *Client) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return 3
}

func (c *Client) stallTimeout() time.Duration {
	if c.StallTimeout > 0 {
		return c.StallTimeout
	}
	return time.Minute
}

// defaultHTTP bounds connecting and waiting for headers, never the body:
// a model shard takes as long as it takes (StallTimeout catches a dead one).
var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: time.Minute,
	IdleConnTimeout:       90 * time.Second,
	MaxIdleConnsPerHost:   4,
	ForceAttemptHTTP2:     true,
}}

// retry runs op up to Attempts times while it fails transiently, waiting
// Backoff, 2×Backoff, … in between.
func (c *Client) retry(ctx context.Context, op func(context.Context) error) error {
	wait := c.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		var t transient
		if err == nil || !errors.As(err, &t) || attempt >= c.attempts() {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// sendOnce sends one request without following redirects, with the token
// when the URL is on the endpoint's origin (scheme, host and port).
func (c *Client) sendOnce(ctx context.Context, method, rawURL string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "phalanx; go")
	if ep, err := url.Parse(c.endpoint()); err == nil && c.Token != "" && sameOrigin(ep, req.URL) {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := defaultHTTP
	if c.HTTP != nil {
		hc = c.HTTP
	}
	nc := *hc
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, transient{fmt.Errorf("hub: %s %s: %w", method, redact(req.URL), err)}
	}
	return resp, nil
}

// send follows up to ten redirects itself: net/http would forward the
// Authorization header to subdomains (huggingface.co → cdn-lfs.huggingface.co),
// and the token must reach the Hub only. It returns the final response and
// the first one's headers, which carry the Hub's X-Linked-Etag,
// X-Linked-Size and X-Repo-Commit when the file lives on a CDN.
func (c *Client) send(ctx context.Context, method, rawURL string, hdr http.Header) (*http.Response, http.Header, error) {
	var first http.Header
	for hops := 0; ; hops++ {
		resp, err := c.sendOnce(ctx, method, rawURL, hdr)
		if err != nil {
			return nil, nil, err
		}
		if first == nil {
			first = resp.Header
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, first, nil
		}
		loc, err := resp.Location()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("hub: redirect from %s: %w", redact(resp.Request.URL), err)
		}
		if hops >= 10 {
			return nil, nil, fmt.Errorf("hub: %s: too many redirects", redact(resp.Request.URL))
		}
		if loc.Scheme != "https" && loc.Scheme != "http" {
			return nil, nil, fmt.Errorf("hub: redirect to unsupported URL %s", redact(loc))
		}
		rawURL = loc.String()
	}
}

// redact drops the query: CDN URLs carry signatures.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery, v.User = "", nil
	return v.String()
}

// statusError turns an unexpected status into an error that says what to
// do. The Hub names the problem in X-Error-Code (RepoNotFound,
// RevisionNotFound, EntryNotFound, GatedRepo) and X-Error-Message.
func (c *Client) statusError(resp *http.Response, repo, revision, file string) error {
	code := resp.Header.Get("X-Error-Code")
	msg := resp.Header.Get("X-Error-Message")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	detail := resp.Status
	if msg != "" {
		detail += ": " + msg
	}
	what := repo
	switch {
	case repo == "":
		what = file
	case file != "":
		what = repo + ": " + file
	}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		switch {
		case code == "GatedRepo":
			return fmt.Errorf("%w: %s is gated: accept its conditions on the Hub's model page, then set HF_TOKEN to a token of that account (%s)", ErrUnauthorized, repo, detail)
		case c.Token == "":
			return fmt.Errorf("%w: %s requires a token: set HF_TOKEN (a private repository, or one that does not exist) (%s)", ErrUnauthorized, what, detail)
		default:
			return fmt.Errorf("%w: %s: the Hub refused the token: check HF_TOKEN has read access (%s)", ErrUnauthorized, what, detail)
		}
	case s == http.StatusNotFound:
		if repo == "" {
			return fmt.Errorf("%w: %s (%s from %s)", ErrNotFound, file, detail, redact(resp.Request.URL))
		}
		switch code {
		case "EntryNotFound":
			return fmt.Errorf("%w: %s has no file %s at %s (%s)", ErrNotFound, repo, file, revision, detail)
		case "RevisionNotFound":
			return fmt.Errorf("%w: revision %q of %s not found (%s)", ErrNotFound, revision, repo, detail)
		}
		if file != "" {
			return fmt.Errorf("%w: %s at %s (%s)", ErrNotFound, what, revision, detail)
		}
		return fmt.Errorf("%w: repository %s or revision %q not found (%s)", ErrNotFound, repo, revision, detail)
	case s == http.StatusTooManyRequests || s >= 500:
		return transient{fmt.Errorf("hub: %s: %s from %s", what, detail, redact(resp.Request.URL))}
	}
	return fmt.Errorf("hub: %s: unexpected %s from %s", what, detail, redact(resp.Request.URL))
}

func normalizeETag(e string) string {
	e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
	return strings.Trim(e, `"`)
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func isSHA256(s string) bool { return sha256Hex.MatchString(s) }

func parseSize(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil && n >= 0
}

// download fetches rawURL into dst through dst.incomplete, resuming that
// file if it exists, retrying transient failures, and verifying size and
// sha256 before the rename makes dst appear. On cancellation the
// .incomplete file stays for the next attempt; on a mismatch it is deleted.
func (c *Client) download(ctx context.Context, name, rawURL, dst string, want expect) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	part := dst + ".incomplete"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	// The hash covers the resumed prefix too: the whole file is verified.
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("hub: reading %s: %w", part, err)
	}
	if want.size >= 0 && have > want.size {
		if have, err = restart(f, h); err != nil {
			return err
		}
	}
	if c.Progress != nil {
		c.Progress.Start(name)
		c.Progress.Update(have, want.size)
		defer func() { c.Progress.Finish(err) }()
	}
	if want.size < 0 || have < want.size {
		err = c.retry(ctx, func(ctx context.Context) error {
			return c.fetchInto(ctx, name, rawURL, f, h, &have, &want)
		})
	}
	if err != nil {
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrSize) || errors.Is(err, ErrTooLarge) {
			f.Close()
			f = nil
			os.Remove(part)
		} else if ctx.Err() != nil {
			return fmt.Errorf("hub: %s: interrupted after %d bytes, kept in %s; pull again to resume: %w", name, have, part, err)
		}
		return err
	}
	fail := func(e error) error {
		f.Close()
		f = nil
		os.Remove(part)
		return e
	}
	if want.size >= 0 && have != want.size {
		return fail(fmt.Errorf("%w: %s: got %d bytes, the Hub says %d; the partial download was deleted", ErrSize, name, have, want.size))
	}
	if got := hex.EncodeToString(h.Sum(nil)); want.sha256 != "" && got != want.sha256 {
		return fail(fmt.Errorf("%w: %s: sha256 %s, the Hub says %s; the partial download was deleted", ErrChecksum, name, got, want.sha256))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		f = nil
		return err
	}
	f = nil
	return os.Rename(part, dst)
}

func restart(f *os.File, h hash.Hash) (int64, error) {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	_, err := f.Seek(0, io.SeekStart)
	return 0, err
}

var contentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// fetchInto makes one request for the bytes after *have and appends them
// to f and h.
func (c *Client) fetchInto(ctx context.Context, name, rawURL string, f *os.File, h hash.Hash, have *int64, want *expect) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(c.stallTimeout(), func() { cancel(errStalled) })
	defer stall.Stop()

	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if *have > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", *have))
	}
	resp, first, err := c.send(actx, http.MethodGet, rawURL, hdr)
	if err != nil {
		return stallOr(ctx, actx, name, err)
	}
	defer resp.Body.Close()
	if want.sha256 == "" {
		if e := normalizeETag(first.Get("X-Linked-Etag")); isSHA256(e) {
			want.sha256 = e
		}
	}
	if want.size < 0 {
		if n, ok := parseSize(first.Get("X-Linked-Size")); ok {
			want.size = n
		}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if *have > 0 { // the server ignored Range: start over
			if *have, err = restart(f, h); err != nil {
				return err
			}
		}
		if want.size < 0 {
			want.size = resp.ContentLength
		} else if resp.ContentLength >= 0 && resp.ContentLength != want.size {
			return fmt.Errorf("%w: %s: the server sends %d bytes, the Hub says %d", ErrSize, name, resp.ContentLength, want.size)
		}
	case http.StatusPartialContent:
		m := contentRange.FindStringSubmatch(resp.Header.Get("Content-Range"))
		if m == nil {
			return transient{fmt.Errorf("hub: %s: bad Content-Range %q", name, resp.Header.Get("Content-Range"))}
		}
		if start, _ := strconv.ParseInt(m[1], 10, 64); start != *have {
			asked := *have
			if *have, err = restart(f, h); err != nil {
				return err
			}
			return transient{fmt.Errorf("hub: %s: asked for bytes from %d, got them from %d; starting over", name, asked, start)}
		}
		if total, ok := parseSize(m[3]); ok {
			if want.size < 0 {
				want.size = total
			} else if total != want.size {
				return fmt.Errorf("%w: %s: the server's file has %d bytes, the Hub says %d", ErrSize, name, total, want.size)
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if *have, err = restart(f, h); err != nil {
			return err
		}
		return transient{fmt.Errorf("hub: %s: the server refused to resume; starting over", name)}
	default:
		return c.statusError(resp, "", "", name)
	}
	if c.Progress != nil {
		c.Progress.Update(*have, want.size)
	}
	limit := c.maxFileSize(name)
	if want.size < 0 && *have > limit {
		return fmt.Errorf("%w: %s: %d bytes kept from before exceed the %d-byte cap for a file of unknown size; deleted", ErrTooLarge, name, *have, limit)
	}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(c.stallTimeout())
			if want.size >= 0 && *have+int64(n) > want.size {
				return fmt.Errorf("%w: %s: the server sent more than the %d bytes the Hub says", ErrSize, name, want.size)
			}
			if want.size < 0 && *have+int64(n) > limit {
				return fmt.Errorf("%w: %s: more than %d bytes and the server announced no size; the partial download was deleted "+
					"(phalanx pull --max-file-size raises the cap)", ErrTooLarge, name, limit)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return fmt.Errorf("hub: writing %s: %w", f.Name(), err)
			}
			h.Write(buf[:n])
			*have += int64(n)
			if c.Progress != nil {
				c.Progress.Update(*have, want.size)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return stallOr(ctx, actx, name, rerr)
		}
	}
	if want.size >= 0 && *have < want.size {
		return transient{fmt.Errorf("hub: %s: the transfer ended at %d of %d bytes", name, *have, want.size)}
	}
	return nil
}

// Caps on a download whose size nothing announces.
const (
	DefaultMaxFileSize  = 64 << 30
	MaxMetadataFileSize = 64 << 20
)

// maxFileSize is the cap for a file of unknown size: metadata (JSON, text)
// is small, weights are not.
func (c *Client) maxFileSize(name string) int64 {
	limit := c.MaxFileSize
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".json", ".txt", ".md":
		limit = min(limit, MaxMetadataFileSize)
	}
	return limit
}

// stallOr classifies a transfer error: the caller's cancellation is
// final, anything else (a stall, a reset, a cut connection) is transient.
func stallOr(ctx, actx context.Context, name string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(context.Cause(actx), errStalled) {
		return transient{fmt.Errorf("hub: %s: %w", name, errStalled)}
	}
	var t transient
	if errors.As(err, &t) {
		return err
	}
	return transient{fmt.Errorf("hub: %s: %w", name, err)}
}
