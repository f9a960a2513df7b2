// Package openai serves the OpenAI-compatible HTTP API on the coordinator:
// GET /v1/models, POST /v1/completions and POST /v1/chat/completions, with
// server-sent events for streaming exactly as OpenAI sends them (`data:
// {json}` events, then `data: [DONE]`), usage, OpenAI's error shape, and
// bearer-token API keys. Official OpenAI client libraries work against it
// unchanged.
//
// Chat messages are rendered with Phi-2's templates: "chat" (Alice/Bob, the
// default) or "instruct", chosen with the extension field "template"; the
// template's next-turn markers are added to the stop sequences, because
// Phi-2 has no chat tuning and would otherwise write both sides.
package openai

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline"
)

// Limits on a request body and its parts; the prompt and stop limits are
// the gRPC API's (pipeline.MaxPromptBytes and the others).
const (
	// maxBodyBytes leaves room for JSON's escapes and the other fields
	// around a prompt of pipeline.MaxPromptBytes.
	maxBodyBytes = 2 * pipeline.MaxPromptBytes
	maxMessages  = 256
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

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, httpStatus int, typ, code, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	if code != "" {
		e.Error.Code = &code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	json.NewEncoder(w).Encode(e)
}

func badRequest(w http.ResponseWriter, format string, a ...any) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf(format, a...))
}

// writeStatus maps a generation error to an HTTP status in OpenAI's shape.
func writeStatus(w http.ResponseWriter, err error) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", st.Message())
	case codes.ResourceExhausted:
		// Full: at the session limit with the queue full, or a worker out
		// of KV cache budget. Worth retrying later, as Retry-After says.
		retry := pipeline.RetryDelay(err)
		if retry <= 0 {
			retry = pipeline.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "overloaded", st.Message())
	case codes.Unavailable:
		writeError(w, http.StatusServiceUnavailable, "server_error", "unavailable", st.Message())
	case codes.Canceled, codes.DeadlineExceeded:
		writeError(w, 499, "server_error", "canceled", st.Message())
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "", st.Message())
	}
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

// common are the request fields completions and chat share.
type common struct {
	Model         string   `json:"model"`
	MaxTokens     *int     `json:"max_tokens"`
	MaxCompletion *int     `json:"max_completion_tokens"`
	Temperature   *float64 `json:"temperature"`
	TopP          *float64 `json:"top_p"`
	N             *int     `json:"n"`
	Stream        bool     `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Stop             json.RawMessage    `json:"stop"`
	Seed             *int64             `json:"seed"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
	Logprobs         json.RawMessage    `json:"logprobs"`
	// Extensions (ignored by OpenAI's servers, accepted by clients as extra body).
	TopK              *int     `json:"top_k"`
	MinP              *float64 `json:"min_p"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	Template          string   `json:"template"`
	IgnoreEOS         bool     `json:"ignore_eos"`
}

func finite(p *float64, name string, lo, hi float64) (float32, error) {
	if p == nil {
		return 0, nil
	}
	if math.IsNaN(*p) || *p < lo || *p > hi {
		return 0, fmt.Errorf("%s must be in [%g, %g], got %g", name, lo, hi, *p)
	}
	return float32(*p), nil
}

// toRequest converts the shared fields; maxDefault is OpenAI's default
// max_tokens for the endpoint (0: as many as the context allows).
func (c *common) toRequest(maxDefault int) (textgen.Request, error) {
	var r textgen.Request
	if c.N != nil && *c.N != 1 {
		return r, fmt.Errorf("n must be 1 (Phalanx returns one choice per request), got %d", *c.N)
	}
	if len(c.Logprobs) > 0 && string(c.Logprobs) != "null" && string(c.Logprobs) != "false" {
		return r, errors.New("logprobs are not supported")
	}
	r.MaxTokens = maxDefault
	if c.MaxTokens != nil {
		r.MaxTokens = *c.MaxTokens
	}
	if c.MaxCompletion != nil {
		r.MaxTokens = *c.MaxCompletion
	}
	if r.MaxTokens < 0 {
		return r, fmt.Errorf("max_tokens must be ≥ 0, got %d", r.MaxTokens)
	}
	if r.MaxTokens == 0 {
		r.MaxTokens = math.MaxInt32 // cut to the context window by the generator
	}
	p := sample.Params{Temperature: 1}
	var err error
	if c.Temperature != nil {
		if p.Temperature, err = finite(c.Temperature, "temperature", 0, 2); err != nil {
			return r, err
		}
	}
	if p.TopP, err = finite(c.TopP, "top_p", 0, 1); err != nil {
		return r, err
	}
	if p.FrequencyPenalty, err = finite(c.FrequencyPenalty, "frequency_penalty", -2, 2); err != nil {
		return r, err
	}
	if p.PresencePenalty, err = finite(c.PresencePenalty, "presence_penalty", -2, 2); err != nil {
		return r, err
	}
	if p.MinP, err = finite(c.MinP, "min_p", 0, 1); err != nil {
		return r, err
	}
	if p.RepetitionPenalty, err = finite(c.RepetitionPenalty, "repetition_penalty", 0, 10); err != nil {
		return r, err
	}
	if c.TopK != nil {
		p.TopK = *c.TopK
	}
	if len(c.LogitBias) > 1024 {
		return r, errors.New("at most 1024 logit_bias entries")
	}
	for k, v := range c.LogitBias {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			return r, fmt.Errorf("logit_bias key %q is not a token id", k)
		}
		if v < -100 || v > 100 || math.IsNaN(v) {
			return r, fmt.Errorf("logit_bias for %d must be in [-100, 100]", id)
		}
		if p.LogitBias == nil {
			p.LogitBias = map[int]float32{}
		}
		p.LogitBias[id] = float32(v)
	}
	if c.Seed != nil {
		p.Seed = uint64(*c.Seed)
	} else {
		p.Seed = sample.RandomSeed()
	}
	if err := p.Validate(); err != nil {
		return r, err
	}
	r.Sampling = p
	if r.Stop, err = parseStop(c.Stop); err != nil {
		return r, err
	}
	r.IgnoreEOS = c.IgnoreEOS
	return r, nil
}

// parseStop reads OpenAI's stop: a string, an array of up to 4 strings, or null.
func parseStop(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var many []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		many = []string{one}
	} else if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("stop must be a string or an array of strings")
	}
	if len(many) > pipeline.MaxStops {
		return nil, fmt.Errorf("%d stop sequences, at most %d", len(many), pipeline.MaxStops)
	}
	var out []string
	for _, s := range many {
		if len(s) > pipeline.MaxStopBytes {
			return nil, fmt.Errorf("a stop sequence of %d bytes exceeds %d", len(s), pipeline.MaxStopBytes)
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
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

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(res *textgen.Result) *usage {
	return &usage{len(res.PromptTokens), len(res.Tokens), len(res.PromptTokens) + len(res.Tokens)}
}

// sse writes server-sent events.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

func (s *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	if s.f != nil {
		s.f.Flush()
	}
	return nil
}

func (s *sse) done() {
	io.WriteString(s.w, "data: [DONE]\n\n")
	if s.f != nil {
		s.f.Flush()
	}
}

// streamError reports an error after streaming began, as OpenAI does: an
// event carrying an error object.
func (s *sse) error(err error) {
	st, _ := status.FromError(err)
	var e apiError
	e.Error.Message, e.Error.Type = st.Message(), "server_error"
	s.send(e)
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	common
	Prompt json.RawMessage `json:"prompt"`
	Echo   bool            `json:"echo"`
	Suffix *string         `json:"suffix"`
}

func parsePrompt(raw json.RawMessage) (string, []int, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil, nil
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		if len(ss) != 1 {
			return "", nil, fmt.Errorf("prompt arrays must hold exactly one prompt (got %d)", len(ss))
		}
		return ss[0], nil, nil
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return "", ids, nil
	}
	var idss [][]int
	if json.Unmarshal(raw, &idss) == nil && len(idss) == 1 && len(idss[0]) > 0 {
		return "", idss[0], nil
	}
	return "", nil, errors.New("prompt must be a string, an array with one string, or an array of token ids")
}

// promptFits refuses (413) a prompt over the API's limits: the text of
// pipeline.MaxPromptBytes (for chat, the rendered messages) or
// pipeline.MaxPromptTokens token ids.
func promptFits(w http.ResponseWriter, req textgen.Request) bool {
	msg := ""
	switch {
	case len(req.Prompt) > pipeline.MaxPromptBytes:
		msg = fmt.Sprintf("prompt of %d bytes exceeds the %d-byte limit", len(req.Prompt), pipeline.MaxPromptBytes)
	case len(req.Tokens) > pipeline.MaxPromptTokens:
		msg = fmt.Sprintf("prompt of %d token ids exceeds the %d-token limit", len(req.Tokens), pipeline.MaxPromptTokens)
	default:
		return true
	}
	writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "prompt_too_large", msg)
	return false
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if !decode(w, r, &req) {
		return
	}
	if !s.knownModel(req.Model) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("The model '%s' does not exist", req.Model))
		return
	}
	if req.Echo || req.Suffix != nil && *req.Suffix != "" {
		badRequest(w, "echo and suffix are not supported")
		return
	}
	treq, err := req.toRequest(16) // OpenAI's default for completions
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if treq.Prompt, treq.Tokens, err = parsePrompt(req.Prompt); err != nil {
		badRequest(w, "%v", err)
		return
	}
	if !promptFits(w, treq) {
		return
	}
	if req.Template != "" {
		t, err := prompt.Parse(req.Template)
		if err != nil {
			badRequest(w, "%v", err)
			return
		}
		treq.Template = t
	} else {
		treq.Template = prompt.Raw
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	choice := func(text string, finish any) map[string]any {
		return map[string]any{"text": text, "index": 0, "logprobs": nil, "finish_reason": finish}
	}
	model := s.gen.ModelID()
	s.run(w, r, id, treq, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		func(text string, finish any, u *usage) any {
			m := map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []any{choice(text, finish)}}
			if !req.Stream {
				m["usage"] = u
			}
			return m
		}, func(u *usage) any {
			return map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []any{}, "usage": u}
		})
}

// chatRequest is POST /v1/chat/completions.
type chatRequest struct {
	common
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// messageText reads a message's content: a string or an array of parts of
// which the text ones are joined.
func messageText(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("message content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content parts of type %q are not supported (text only)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decode(w, r, &req) {
		return
	}
	if !s.knownModel(req.Model) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("The model '%s' does not exist", req.Model))
		return
	}
	treq, err := req.toRequest(0)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if len(req.Messages) == 0 || len(req.Messages) > maxMessages {
		badRequest(w, "messages must hold 1 to %d messages", maxMessages)
		return
	}
	tmpl := prompt.Chat
	if req.Template != "" {
		if tmpl, err = prompt.Parse(req.Template); err != nil {
			badRequest(w, "%v", err)
			return
		}
	}
	msgs := make([]prompt.Message, len(req.Messages))
	for i, m := range req.Messages {
		role := m.Role
		if role == "developer" {
			role = prompt.RoleSystem
		}
		text, err := messageText(m.Content)
		if err != nil {
			badRequest(w, "messages[%d]: %v", i, err)
			return
		}
		msgs[i] = prompt.Message{Role: role, Content: text}
	}
	rendered, err := prompt.RenderMessages(tmpl, msgs)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	treq.Prompt, treq.Template = rendered, prompt.Raw
	if !promptFits(w, treq) {
		return
	}
	treq.Stop = append(treq.Stop, prompt.DefaultStops(tmpl)...)
	id, created := newID("chatcmpl-"), time.Now().Unix()
	model := s.gen.ModelID()
	first := true
	s.run(w, r, id, treq, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		func(text string, finish any, u *usage) any {
			if !req.Stream {
				return map[string]any{"id": id, "object": "chat.completion", "created": created, "model": model,
					"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text},
						"logprobs": nil, "finish_reason": finish}},
					"usage": u}
			}
			delta := map[string]any{}
			if first {
				delta["role"] = "assistant"
				first = false
			}
			if text != "" || finish == nil {
				delta["content"] = text
			}
			m := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
			return m
		}, func(u *usage) any {
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"choices": []any{}, "usage": u}
		})
}

// run executes a request, streaming (SSE) or not. object builds a response
// (or chunk) from text, finish reason and usage; usageChunk, if set, builds
// the final usage-only chunk of stream_options.include_usage.
func (s *Server) run(w http.ResponseWriter, r *http.Request, id string, req textgen.Request, stream, includeUsage bool,
	object func(text string, finish any, u *usage) any, usageChunk func(*usage) any) {
	if err := s.gen.CheckServing(); err != nil {
		writeStatus(w, err)
		return
	}
	log := s.log.With("request_id", id)
	if !stream {
		res, err := s.gen.Generate(r.Context(), id, req, func(textgen.Chunk) error { return nil })
		if err != nil {
			writeStatus(w, pipeline.StatusOf(r.Context(), err))
			return
		}
		writeJSON(w, object(res.Text, string(res.FinishReason), usageOf(res)))
		return
	}
	var ev *sse
	started := false
	start := func() {
		if !started {
			ev = startSSE(w)
			started = true
		}
	}
	res, err := s.gen.Generate(r.Context(), id, req, func(c textgen.Chunk) error {
		start()
		if c.Text == "" {
			return nil
		}
		return ev.send(object(c.Text, nil, nil))
	})
	if err != nil {
		err = pipeline.StatusOf(r.Context(), err)
		if !started {
			writeStatus(w, err)
			return
		}
		log.Warn("stream ended by an error", "err", err)
		ev.error(err)
		ev.done()
		return
	}
	start()
	ev.send(object("", string(res.FinishReason), nil))
	if includeUsage {
		ev.send(usageChunk(usageOf(res)))
	}
	ev.done()
}

// Keys holds the accepted API keys as SHA-256 digests, so comparing takes
// the same time whatever a key's length.
type Keys struct{ keys [][sha256.Size]byte }

// LoadKeys reads one key per line; blank lines and lines starting with #
// are skipped.
func LoadKeys(path string, read func(string) ([]byte, error)) (*Keys, error) {
	b, err := read(path)
	if err != nil {
		return nil, err
	}
	k := &Keys{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k.keys = append(k.keys, sha256.Sum256([]byte(line)))
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("%s holds no API key", path)
	}
	return k, nil
}

// Valid compares key's digest in constant time against every key's: the
// time depends on neither the keys' lengths nor which one matches.
func (k *Keys) Valid(key string) bool {
	got := sha256.Sum256([]byte(key))
	ok := 0
	for _, want := range k.keys {
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}
