// Package hubtest is a stand-in for the Hugging Face Hub, for tests: one
// model repository served the way huggingface.co serves it, with the model
// info API, resolve URLs that redirect LFS files to a second "CDN" server,
// ETag / X-Linked-Etag / X-Linked-Size / X-Repo-Commit headers, Range
// requests, private repositories and injectable faults. Both servers
// listen on 127.0.0.1 only.
package hubtest

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Request is one request a server received.
type Request struct {
	Server        string // "hub" or "cdn"
	Method, Path  string
	Range         string
	Authorization string
}

type file struct {
	data    []byte
	lfs     bool
	blobID  string // git blob id (of the LFS pointer for LFS files)
	sha256  string
	pointer int
}

// Server is the stand-in. Configure it before the first request.
type Server struct {
	Hub, CDN *httptest.Server
	Repo     string
	Commit   string

	// Private makes the API and resolve URLs answer 401 unless the
	// request carries "Authorization: Bearer " + Token.
	Private bool
	Token   string
	// OmitBlobIDs leaves blobId, size and lfs out of the model info, as
	// the API does without ?blobs=true.
	OmitBlobIDs bool
	// IgnoreRange answers every request with the whole file and 200.
	IgnoreRange bool
	// HideSizes streams files without Content-Length, X-Linked-Size or a
	// Content-Range total, as a server that does not know a file's length;
	// with OmitBlobIDs nothing tells a file's size.
	HideSizes bool
	// ExtraSiblings are listed by the API but not served (for hostile
	// listings such as "../escape").
	ExtraSiblings []string

	mu       sync.Mutex
	files    map[string]*file
	cut      map[string]int64 // path → bytes after which the next transfer is cut
	corrupt  map[string]bool
	failNext map[string]int // path → status of the next response
	log      []Request
}

// IsLFS is the repository's .gitattributes: weights and large files go to
// LFS, as on the Hub.
func IsLFS(name string, size int) bool {
	switch path.Ext(name) {
	case ".safetensors", ".gguf", ".bin", ".pt", ".h5", ".onnx":
		return true
	}
	return size > 10<<20
}

// New starts a Hub and a CDN serving repo (as "org/name") with files.
func New(repo string, files map[string][]byte) *Server {
	s := &Server{Repo: repo, files: map[string]*file{}, cut: map[string]int64{}, corrupt: map[string]bool{}, failNext: map[string]int{}}
	commit := sha1.New()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data := files[n]
		f := &file{data: data, lfs: IsLFS(n, len(data))}
		sum := sha256.Sum256(data)
		f.sha256 = hex.EncodeToString(sum[:])
		stored := data
		if f.lfs {
			p := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", f.sha256, len(data))
			f.pointer = len(p)
			stored = []byte(p)
		}
		f.blobID = gitBlobID(stored)
		s.files[n] = f
		fmt.Fprintf(commit, "%s %s\n", n, f.blobID)
	}
	s.Commit = hex.EncodeToString(commit.Sum(nil))
	// Both servers exist before either serves, so handlers see every field.
	s.Hub = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHub))
	s.CDN = httptest.NewUnstartedServer(http.HandlerFunc(s.serveCDN))
	s.Hub.Start()
	s.CDN.Start()
	return s
}

func gitBlobID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// URL is the Hub's endpoint, for HF_ENDPOINT.
func (s *Server) URL() string { return s.Hub.URL }

// SetCommit changes the commit the repository is at (safe while serving).
func (s *Server) SetCommit(c string) {
	s.mu.Lock()
	s.Commit = c
	s.mu.Unlock()
}

func (s *Server) commit() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Commit
}

// Close stops both servers.
func (s *Server) Close() { s.Hub.Close(); s.CDN.Close() }

// CutOnce makes the next transfer of name close the connection after n
// bytes of the body.
func (s *Server) CutOnce(name string, n int64) { s.mu.Lock(); s.cut[name] = n; s.mu.Unlock() }

// Corrupt makes every transfer of name carry wrong bytes (same length).
func (s *Server) Corrupt(name string) { s.mu.Lock(); s.corrupt[name] = true; s.mu.Unlock() }

// FailOnce answers the next download of name with status.
func (s *Server) FailOnce(name string, status int) {
	s.mu.Lock()
	s.failNext[name] = status
	s.mu.Unlock()
}

// Requests returns the requests both servers received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() { s.mu.Lock(); s.log = nil; s.mu.Unlock() }

// SHA256 is the hex sha256 of a served file.
func (s *Server) SHA256(name string) string { return s.files[name].sha256 }

func (s *Server) record(server string, r *http.Request) {
	s.mu.Lock()
	s.log = append(s.log, Request{Server: server, Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization")})
	s.mu.Unlock()
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) authorized(r *http.Request) bool {
	return !s.Private || r.Header.Get("Authorization") == "Bearer "+s.Token
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	s.record("hub", r)
	p := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(p, "/api/models/"); ok {
		s.serveInfo(w, r, rest)
		return
	}
	// /{org}/{name}/resolve/{revision}/{path...}
	segs := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 5)
	if len(segs) < 5 || segs[2] != "resolve" {
		hubError(w, http.StatusNotFound, "", "Not Found")
		return
	}
	if segs[0]+"/"+segs[1] != s.Repo {
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
		return
	}
	if !s.authorized(r) {
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Invalid credentials in Authorization header")
		return
	}
	if rev := unescape(segs[3]); rev != "main" && rev != s.commit() {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	name := unescape(segs[4])
	f, ok := s.files[name]
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", name+" does not exist on \"main\"")
		return
	}
	w.Header().Set("X-Repo-Commit", s.commit())
	if f.lfs {
		w.Header().Set("ETag", `"`+f.blobID+`"`)
		w.Header().Set("X-Linked-Etag", `"`+f.sha256+`"`)
		if !s.HideSizes {
			w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.data)))
		}
		w.Header().Set("Location", s.CDN.URL+"/repos/"+f.sha256+"?X-Amz-Signature=deadbeef&name="+path.Base(name))
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+f.blobID+`"`)
	s.serveBytes(w, r, name, f)
}

func unescape(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request, rest string) {
	// {org}/{name}/revision/{revision}
	segs := strings.Split(rest, "/")
	if len(segs) != 4 || segs[2] != "revision" {
		hubError(w, http.StatusNotFound, "", "Not Found")
		return
	}
	if segs[0]+"/"+segs[1] != s.Repo {
		if r.Header.Get("Authorization") == "" {
			hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
		} else {
			hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		}
		return
	}
	if !s.authorized(r) {
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Invalid credentials in Authorization header")
		return
	}
	if rev := unescape(segs[3]); rev != "main" && rev != s.commit() {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int    `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
		BlobID    string `json:"blobId,omitempty"`
		Size      *int   `json:"size,omitempty"`
		LFS       *lfs   `json:"lfs,omitempty"`
	}
	blobs := r.URL.Query().Get("blobs") == "true" && !s.OmitBlobIDs
	var sib []sibling
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := s.files[n]
		e := sibling{RFilename: n}
		if blobs {
			size := len(f.data)
			e.BlobID, e.Size = f.blobID, &size
			if f.lfs {
				e.LFS = &lfs{SHA256: f.sha256, Size: size, PointerSize: f.pointer}
			}
		}
		sib = append(sib, e)
	}
	for _, n := range s.ExtraSiblings {
		sib = append(sib, sibling{RFilename: n})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"_id": "0123456789abcdef01234567", "id": s.Repo, "modelId": s.Repo, "author": strings.Split(s.Repo, "/")[0],
		"sha": s.commit(), "private": s.Private, "gated": false, "disabled": false, "downloads": 0, "likes": 0,
		"library_name": "transformers", "tags": []string{"transformers", "safetensors", "phi"},
		"pipeline_tag": "text-generation", "siblings": sib,
	})
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.record("cdn", r)
	if id, ok := strings.CutPrefix(r.URL.Path, "/repos/"); ok {
		if r.URL.Query().Get("X-Amz-Signature") != "deadbeef" {
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		for n, f := range s.files {
			if f.sha256 == id {
				w.Header().Set("ETag", `"`+f.sha256+`"`)
				s.serveBytes(w, r, n, f)
				return
			}
		}
	}
	// Any other host's plain file URL: /files/{path}.
	if n, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok {
		if f, ok := s.files[n]; ok {
			s.serveBytes(w, r, n, f)
			return
		}
	}
	http.NotFound(w, r)
}

// serveBytes answers GET and HEAD with the file, honouring "Range: bytes=N-"
// and "bytes=N-M", with the faults configured for name.
func (s *Server) serveBytes(w http.ResponseWriter, r *http.Request, name string, f *file) {
	s.mu.Lock()
	cut, cutting := s.cut[name]
	corrupt := s.corrupt[name]
	fail := s.failNext[name]
	if r.Method == http.MethodGet {
		delete(s.cut, name)
		delete(s.failNext, name)
	}
	s.mu.Unlock()
	if fail != 0 && r.Method == http.MethodGet {
		http.Error(w, http.StatusText(fail), fail)
		return
	}
	data := f.data
	if corrupt {
		data = append([]byte(nil), data...)
		for i := range data {
			data[i] ^= 0x5a
		}
	}
	start, end := 0, len(data)
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && !s.IgnoreRange {
		a, b, ok := parseRange(rg, len(data))
		if !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			http.Error(w, "Requested Range Not Satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, end, status = a, b, http.StatusPartialContent
		total := strconv.Itoa(len(data))
		if s.HideSizes {
			total = "*"
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%s", a, b-1, total))
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Type", "application/octet-stream")
	if !s.HideSizes {
		w.Header().Set("Content-Length", strconv.Itoa(end-start))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if s.HideSizes {
		w.(http.Flusher).Flush() // chunked: no length, even for a small body
	}
	body := data[start:end]
	if cutting && int(cut) < len(body) {
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err == nil {
			flushAndClose(buf, conn)
		}
		return
	}
	w.Write(body)
}

func flushAndClose(buf *bufio.ReadWriter, conn interface{ Close() error }) {
	buf.Flush()
	conn.Close()
}

// parseRange reads "bytes=N-" or "bytes=N-M" into [start, end).
func parseRange(h string, size int) (int, int, bool) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	start, err := strconv.Atoi(a)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end := size
	if b != "" {
		e, err := strconv.Atoi(b)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e+1, size)
	}
	return start, end, true
}
