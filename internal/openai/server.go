package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/phalanx-llm/phalanx/engine/textgen"
)

// Generator is what the API needs from the coordinator.
type Generator interface {
	CheckServing() error
	Generate(ctx context.Context, requestID string, req textgen.Request, emit func(textgen.Chunk) error) (*textgen.Result, error)
	ModelID() string
}

// readiness is implemented by a Generator that can say more than
// CheckServing (which accepts requests that may wait for a route): whether
// it routes to its plan now. /readyz uses it when present.
type readiness interface{ Readiness() error }

// Server is the HTTP API.
type Server struct {
	gen     Generator
	keys    *Keys
	log     *slog.Logger
	created int64
	mux     *http.ServeMux
	hosts   *hostPolicy // nil: any Host header
}

// New builds the API over gen; keys may be nil (no authentication).
// extra routes (health, metrics, the console) are served without a key.
func New(gen Generator, keys *Keys, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{gen: gen, keys: keys, log: log, created: time.Now().Unix(), mux: http.NewServeMux()}
	s.mux.Handle("GET /v1/models", s.auth(http.HandlerFunc(s.models)))
	s.mux.Handle("GET /v1/models/{id...}", s.auth(http.HandlerFunc(s.model)))
	s.mux.Handle("POST /v1/completions", s.auth(http.HandlerFunc(s.completions)))
	s.mux.Handle("POST /v1/chat/completions", s.auth(http.HandlerFunc(s.chat)))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		err := gen.CheckServing()
		if r, ok := gen.(readiness); ok && err == nil {
			err = r.Readiness()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", fmt.Sprintf("Unknown request URL: %s %s", r.Method, r.URL.Path))
	})
	return s
}

// Handle adds a route served without an API key (health, metrics, console).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.hosts != nil && !s.hosts.allows(r.Host) && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
		writeError(w, http.StatusMisdirectedRequest, "invalid_request_error", "host_not_allowed",
			fmt.Sprintf("Host %q is not served here: add it to the coordinator's --allowed-hosts (PHALANX_ALLOWED_HOSTS)", r.Host))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hostPolicy is the set of Host header names a server answers besides IP
// addresses and localhost. A DNS-rebinding page reaches the server under
// its own domain name, never under an IP address or localhost, so
// checking names is enough.
type hostPolicy struct {
	names    map[string]bool
	suffixes []string // from "*.example.com": ".example.com"
}

// RestrictHosts makes the server refuse requests (421) whose Host header
// names a host other than an IP address, localhost or one of allowed
// ("name" or "*.domain"; "*" turns the check off). The check applies when
// listen is a loopback address or when no API key is configured: a keyless
// or local API must not be reachable by a web page through DNS rebinding.
// Health probes (/healthz, /readyz) are exempt.
func (s *Server) RestrictHosts(listen string, allowed []string) {
	p := &hostPolicy{names: map[string]bool{}}
	for _, a := range allowed {
		a = normalHost(a)
		switch {
		case a == "":
		case a == "*":
			s.hosts = nil
			return
		case strings.HasPrefix(a, "*."):
			p.suffixes = append(p.suffixes, a[1:])
		default:
			p.names[a] = true
		}
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	ip := net.ParseIP(host)
	if s.keys != nil && !(host == "localhost" || ip != nil && ip.IsLoopback()) {
		s.hosts = nil
		return
	}
	s.hosts = p
}

// normalHost is a Host header's or a flag's host name: no port, no
// brackets, lower case, no trailing dot.
func normalHost(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func (p *hostPolicy) allows(header string) bool {
	h := normalHost(header)
	if h == "localhost" || net.ParseIP(h) != nil || p.names[h] {
		return true
	}
	for _, suf := range p.suffixes {
		if strings.HasSuffix(h, suf) && len(h) > len(suf) {
			return true
		}
	}
	return false
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.keys != nil {
			key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !s.keys.Valid(strings.TrimSpace(key)) {
				writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
					"Incorrect API key provided. Pass a valid key as 'Authorization: Bearer KEY'.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) modelObject() map[string]any {
	return map[string]any{"id": s.gen.ModelID(), "object": "model", "created": s.created, "owned_by": "phalanx"}
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"object": "list", "data": []any{s.modelObject()}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); !s.knownModel(id) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("The model '%s' does not exist", id))
		return
	}
	writeJSON(w, s.modelObject())
}

// knownModel accepts the served model's id, its name before '@', or any
// name ending in that name (e.g. "microsoft/phi-2" for a directory
// "phi-2"); a cluster serves one model, so clients that send their own
// label for it are served rather than refused.
func (s *Server) knownModel(name string) bool {
	id := s.gen.ModelID()
	short, _, _ := strings.Cut(id, "@")
	return name == "" || name == id || name == short || strings.HasSuffix(name, "/"+short) || strings.Contains(strings.ToLower(name), "phi")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body. Content-Type must say JSON: a browser sends
// a cross-site POST without a preflight only with a form or text type, so
// requiring JSON keeps other sites' pages from posting to the API.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request_error", "",
			fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", fmt.Sprintf("request body exceeds %d bytes", maxBodyBytes))
			return false
		}
		badRequest(w, "invalid JSON body: %v", err)
		return false
	}
	return true
}
