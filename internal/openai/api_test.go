package openai

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/dataplane"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
)

// request serves one request in process. header holds name, value pairs;
// a JSON Content-Type is set unless header sets one.
func request(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// errorOf decodes an OpenAI error body.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	return e
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

var (
	responseID = regexp.MustCompile(`"id":"(cmpl|chatcmpl)-[0-9a-f]{24}"`)
	created    = regexp.MustCompile(`"created":[0-9]+`)
)

// normalize replaces the response id with "ID" and the creation time with
// 1, checking that every event carried the id the generator was given.
func normalize(t *testing.T, body, requestID string) string {
	t.Helper()
	for _, m := range responseID.FindAllString(body, -1) {
		if m != `"id":"`+requestID+`"` {
			t.Errorf("response %s, but the generator was given id %q", m, requestID)
		}
	}
	return created.ReplaceAllString(responseID.ReplaceAllString(body, `"id":"ID"`), `"created":1`)
}

// events frames JSON objects as server-sent events, ending with [DONE].
func events(objects ...string) string {
	var b strings.Builder
	for _, o := range objects {
		b.WriteString("data: " + o + "\n\n")
	}
	return b.String() + "data: [DONE]\n\n"
}

// Both endpoints answer in OpenAI's shapes, byte for byte once the id and
// time are fixed: one JSON object with usage, or server-sent events whose
// first chat chunk carries the role and whose last carries finish_reason,
// then the usage chunk if asked for, then [DONE]; an error after the
// first event ends the stream with an error event and [DONE].
func TestResponses(t *testing.T) {
	hello := []textgen.Chunk{{Tokens: []int{10}, Text: "Hel"}, {Tokens: []int{11}, Text: "lo"}}
	const (
		usage32 = `{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}`
		chunk   = `{"choices":[{"delta":%s,"finish_reason":%s,"index":0,"logprobs":null}],"created":1,"id":"ID","model":"phi-2@test","object":"chat.completion.chunk"}`
		cmpl    = `{"choices":[{"finish_reason":%s,"index":0,"logprobs":null,"text":%q}],"created":1,"id":"ID","model":"phi-2@test","object":"text_completion"}`
	)
	for _, tc := range []struct {
		name, path, body string
		gen              *fakeGen
		want             string // the body, normalized
	}{
		{"completion", "/v1/completions", `{"prompt":[1,2,3]}`, &fakeGen{chunks: hello},
			`{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"text":"Hello"}],"created":1,"id":"ID","model":"phi-2@test","object":"text_completion","usage":` + usage32 + "}\n"},
		{"completion cut by length", "/v1/completions", `{"prompt":"x","max_tokens":2}`,
			&fakeGen{chunks: hello, finish: sample.FinishLength, promptTokens: []int{1, 2, 3}},
			`{"choices":[{"finish_reason":"length","index":0,"logprobs":null,"text":"Hello"}],"created":1,"id":"ID","model":"phi-2@test","object":"text_completion","usage":` + usage32 + "}\n"},
		{"completion stream", "/v1/completions", `{"prompt":[1,2,3],"stream":true}`, &fakeGen{chunks: hello},
			events(fmt.Sprintf(cmpl, "null", "Hel"), fmt.Sprintf(cmpl, "null", "lo"), fmt.Sprintf(cmpl, `"stop"`, ""))},
		{"completion stream with usage", "/v1/completions", `{"prompt":[1,2,3],"stream":true,"stream_options":{"include_usage":true}}`,
			&fakeGen{chunks: hello, finish: sample.FinishLength},
			events(fmt.Sprintf(cmpl, "null", "Hel"), fmt.Sprintf(cmpl, "null", "lo"), fmt.Sprintf(cmpl, `"length"`, ""),
				`{"choices":[],"created":1,"id":"ID","model":"phi-2@test","object":"text_completion","usage":`+usage32+`}`)},
		{"completion stream without usage asked", "/v1/completions", `{"prompt":[1,2,3],"stream":true,"stream_options":{"include_usage":false}}`,
			&fakeGen{chunks: hello[:1]},
			events(fmt.Sprintf(cmpl, "null", "Hel"), fmt.Sprintf(cmpl, `"stop"`, ""))},
		{"chat", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`,
			&fakeGen{chunks: hello, promptTokens: []int{1, 2, 3}},
			`{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"content":"Hello","role":"assistant"}}],"created":1,"id":"ID","model":"phi-2@test","object":"chat.completion","usage":` + usage32 + "}\n"},
		{"chat stream", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`,
			&fakeGen{chunks: hello},
			events(fmt.Sprintf(chunk, `{"content":"Hel","role":"assistant"}`, "null"), fmt.Sprintf(chunk, `{"content":"lo"}`, "null"),
				fmt.Sprintf(chunk, `{}`, `"stop"`))},
		{"chat stream with usage", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
			&fakeGen{chunks: hello, promptTokens: []int{1, 2, 3}, finish: sample.FinishLength},
			events(fmt.Sprintf(chunk, `{"content":"Hel","role":"assistant"}`, "null"), fmt.Sprintf(chunk, `{"content":"lo"}`, "null"),
				fmt.Sprintf(chunk, `{}`, `"length"`),
				`{"choices":[],"created":1,"id":"ID","model":"phi-2@test","object":"chat.completion.chunk","usage":`+usage32+`}`)},
		{"chat stream: chunks without text send nothing", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`,
			&fakeGen{chunks: []textgen.Chunk{{Tokens: []int{7}}, {Tokens: []int{10}, Text: "Hel"}}},
			events(fmt.Sprintf(chunk, `{"content":"Hel","role":"assistant"}`, "null"), fmt.Sprintf(chunk, `{}`, `"stop"`))},
		{"chat stream of no text: the role comes with finish_reason", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`,
			&fakeGen{},
			events(fmt.Sprintf(chunk, `{"role":"assistant"}`, `"stop"`))},
		{"completion stream of no text", "/v1/completions", `{"prompt":"x","stream":true}`, &fakeGen{},
			events(fmt.Sprintf(cmpl, `"stop"`, ""))},
		{"error after the first event", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`,
			&fakeGen{chunks: hello[:1], err: status.Error(codes.Unavailable, "stage 1 is gone")},
			events(fmt.Sprintf(chunk, `{"content":"Hel","role":"assistant"}`, "null"),
				`{"error":{"message":"stage 1 is gone","type":"server_error","param":null,"code":null}}`)},
		{"domain error after the first event", "/v1/completions", `{"prompt":"x","stream":true}`,
			&fakeGen{chunks: hello[:1], err: fmt.Errorf("decode: %w", stage.ErrDown)},
			events(fmt.Sprintf(cmpl, "null", "Hel"),
				`{"error":{"message":"decode: stage: unavailable","type":"server_error","param":null,"code":null}}`)},
		{"error after an event without text", "/v1/completions", `{"prompt":"x","stream":true}`,
			&fakeGen{chunks: []textgen.Chunk{{Tokens: []int{7}}}, err: status.Error(codes.Internal, "boom")},
			events(`{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := request(New(tc.gen, nil, slog.New(slog.DiscardHandler)), "POST", tc.path, tc.body)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			_, id, _ := tc.gen.last()
			if got := normalize(t, w.Body.String(), id); got != tc.want {
				t.Errorf("body\n%s\nwant\n%s", got, tc.want)
			}
			stream := strings.Contains(tc.body, `"stream":true`)
			wantType := map[bool]string{false: "application/json", true: "text/event-stream"}[stream]
			if ct := w.Header().Get("Content-Type"); ct != wantType {
				t.Errorf("Content-Type %q, want %q", ct, wantType)
			}
			if stream && (w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("X-Accel-Buffering") != "no" || !w.Flushed) {
				t.Errorf("stream headers %v, flushed %v", w.Header(), w.Flushed)
			}
		})
	}
}

// A stream reaches a client over a real connection as events it can read
// one at a time.
func TestStreamOverHTTP(t *testing.T) {
	gen := &fakeGen{chunks: []textgen.Chunk{{Text: "a"}, {Text: "b"}, {Text: "c"}}}
	srv := httptest.NewServer(New(gen, nil, nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %v", resp.Status, resp.Header)
	}
	var text []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line", line)
		}
		if data == "[DONE]" {
			break
		}
		var c struct {
			Choices []struct {
				Delta        struct{ Content string }
				FinishReason *string `json:"finish_reason"`
			}
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		text = append(text, c.Choices[0].Delta.Content)
	}
	if got := strings.Join(text, "|"); got != "a|b|c|" {
		t.Errorf("stream texts %q, want a|b|c| (the last, empty, with finish_reason)", got)
	}
}

// Request bodies become the textgen.Request the generator runs: OpenAI's
// defaults, the sampling fields, stop sequences, templates and their stops.
func TestRequestConversion(t *testing.T) {
	t1 := sample.Params{Temperature: 1} // OpenAI's default
	const chatStops = "\nAlice:|\nBob:"
	for _, tc := range []struct {
		name, path, body string
		want             textgen.Request
		stops            string // want.Stop joined by "|"
	}{
		{"completion defaults", "/v1/completions", `{"prompt":"hi"}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, ""},
		{"max_tokens 0 is the context's", "/v1/completions", `{"prompt":"hi","max_tokens":0}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: math.MaxInt32, Sampling: t1}, ""},
		{"max_tokens", "/v1/completions", `{"prompt":"hi","max_tokens":100}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 100, Sampling: t1}, ""},
		{"max_completion_tokens wins", "/v1/completions", `{"prompt":"hi","max_tokens":5,"max_completion_tokens":7}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 7, Sampling: t1}, ""},
		{"one prompt in an array", "/v1/completions", `{"prompt":["hi"]}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, ""},
		{"token ids", "/v1/completions", `{"prompt":[5,6,7]}`,
			textgen.Request{Tokens: []int{5, 6, 7}, Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, ""},
		{"token ids in an array", "/v1/completions", `{"prompt":[[5,6]]}`,
			textgen.Request{Tokens: []int{5, 6}, Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, ""},
		{"stop string", "/v1/completions", `{"prompt":"hi","stop":"\n"}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, "\n"},
		{"stop array, empty strings dropped", "/v1/completions", `{"prompt":"hi","stop":["a","","b"]}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, "a|b"},
		{"stop null", "/v1/completions", `{"prompt":"hi","stop":null}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, Sampling: t1}, ""},
		{"sampling fields", "/v1/completions",
			`{"prompt":"hi","temperature":0,"top_p":0.5,"seed":42,"frequency_penalty":0.5,"presence_penalty":-1,` +
				`"logit_bias":{"50256":-100,"7":2.5},"top_k":40,"min_p":0.05,"repetition_penalty":1.1,"ignore_eos":true,` +
				`"n":1,"logprobs":false}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, IgnoreEOS: true, Sampling: sample.Params{
				Temperature: 0, TopP: 0.5, Seed: 42, FrequencyPenalty: 0.5, PresencePenalty: -1,
				LogitBias: map[int]float32{50256: -100, 7: 2.5}, TopK: 40, MinP: 0.05, RepetitionPenalty: 1.1}}, ""},
		{"temperature 2, a negative seed", "/v1/completions", `{"prompt":"hi","temperature":2,"seed":-1,"logprobs":null}`,
			textgen.Request{Prompt: "hi", Template: prompt.Raw, MaxTokens: 16, Sampling: sample.Params{Temperature: 2, Seed: math.MaxUint64}}, ""},
		{"completion template is the generator's to render", "/v1/completions", `{"prompt":"hi","template":"Instruct"}`,
			textgen.Request{Prompt: "hi", Template: prompt.Instruct, MaxTokens: 16, Sampling: t1}, ""},
		{"completion template code", "/v1/completions", `{"prompt":"def f(","template":"code"}`,
			textgen.Request{Prompt: "def f(", Template: prompt.Code, MaxTokens: 16, Sampling: t1}, ""},
		{"chat defaults", "/v1/chat/completions", `{"model":"microsoft/phi-2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}`,
			textgen.Request{Prompt: "Be brief.\nAlice: hi\nBob:", Template: prompt.Raw, MaxTokens: math.MaxInt32, Sampling: t1}, chatStops},
		{"chat conversation", "/v1/chat/completions",
			`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"how?"}],"max_tokens":9}`,
			textgen.Request{Prompt: "Alice: hi\nBob: hello\nAlice: how?\nBob:", Template: prompt.Raw, MaxTokens: 9, Sampling: t1}, chatStops},
		{"chat stop before the template's", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stop":"END","max_completion_tokens":3}`,
			textgen.Request{Prompt: "Alice: hi\nBob:", Template: prompt.Raw, MaxTokens: 3, Sampling: t1}, "END|" + chatStops},
		{"chat instruct", "/v1/chat/completions", `{"messages":[{"role":"developer","content":"Sys"},{"role":"user","content":"hi"}],"template":"instruct"}`,
			textgen.Request{Prompt: "Sys\nInstruct: hi\nOutput:", Template: prompt.Raw, MaxTokens: math.MaxInt32, Sampling: t1}, "\nInstruct:"},
		{"chat raw has no stops", "/v1/chat/completions", `{"messages":[{"role":"user","content":"a "},{"role":"user","content":"b"}],"template":"raw"}`,
			textgen.Request{Prompt: "a b", Template: prompt.Raw, MaxTokens: math.MaxInt32, Sampling: t1}, ""},
		{"chat content parts", "/v1/chat/completions",
			`{"messages":[{"role":"user","content":[{"type":"text","text":"one "},{"type":"text","text":"two"}]}],"ignore_eos":true}`,
			textgen.Request{Prompt: "Alice: one two\nBob:", Template: prompt.Raw, MaxTokens: math.MaxInt32, Sampling: t1, IgnoreEOS: true}, chatStops},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := &fakeGen{}
			if w := request(New(gen, nil, nil), "POST", tc.path, tc.body); w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			got, _, _ := gen.last()
			if !strings.Contains(tc.body, `"seed"`) {
				got.Sampling.Seed = 0 // random
			}
			want := tc.want
			if tc.stops != "" {
				want.Stop = strings.Split(tc.stops, "|")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// Bad requests are refused before any generation, with OpenAI's error
// shape and a message that names the problem.
func TestBadRequests(t *testing.T) {
	chat := func(extra string) string { return `{"messages":[{"role":"user","content":"hi"}]` + extra + `}` }
	for _, tc := range []struct {
		name, path, body string
		status           int
		message          string // a part of the message
	}{
		{"invalid JSON", "/v1/completions", `{"prompt":`, 400, "invalid JSON body"},
		{"wrong field type", "/v1/completions", `{"prompt":"x","max_tokens":"5"}`, 400, "invalid JSON body"},
		{"unknown model", "/v1/completions", `{"model":"gpt-4","prompt":"x"}`, 404, "The model 'gpt-4' does not exist"},
		{"unknown model, chat", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 404, "does not exist"},
		{"n", "/v1/completions", `{"prompt":"x","n":2}`, 400, "n must be 1"},
		{"logprobs", "/v1/chat/completions", chat(`,"logprobs":true`), 400, "logprobs are not supported"},
		{"echo", "/v1/completions", `{"prompt":"x","echo":true}`, 400, "echo and suffix"},
		{"suffix", "/v1/completions", `{"prompt":"x","suffix":"y"}`, 400, "echo and suffix"},
		{"negative max_tokens", "/v1/completions", `{"prompt":"x","max_tokens":-1}`, 400, "max_tokens must be ≥ 0"},
		{"temperature", "/v1/completions", `{"prompt":"x","temperature":2.5}`, 400, "temperature must be in [0, 2]"},
		{"top_p", "/v1/completions", `{"prompt":"x","top_p":1.5}`, 400, "top_p must be in [0, 1]"},
		{"frequency_penalty", "/v1/completions", `{"prompt":"x","frequency_penalty":3}`, 400, "frequency_penalty"},
		{"presence_penalty", "/v1/chat/completions", chat(`,"presence_penalty":-2.5`), 400, "presence_penalty"},
		{"min_p", "/v1/completions", `{"prompt":"x","min_p":-0.1}`, 400, "min_p"},
		{"repetition_penalty", "/v1/completions", `{"prompt":"x","repetition_penalty":11}`, 400, "repetition_penalty"},
		{"top_k", "/v1/completions", `{"prompt":"x","top_k":-1}`, 400, "top_k"},
		{"logit_bias key", "/v1/completions", `{"prompt":"x","logit_bias":{"abc":1}}`, 400, `logit_bias key "abc" is not a token id`},
		{"logit_bias negative id", "/v1/completions", `{"prompt":"x","logit_bias":{"-1":1}}`, 400, "not a token id"},
		{"logit_bias value", "/v1/completions", `{"prompt":"x","logit_bias":{"5":101}}`, 400, "logit_bias for 5 must be in [-100, 100]"},
		{"stop type", "/v1/completions", `{"prompt":"x","stop":5}`, 400, "stop must be a string or an array of strings"},
		{"prompt type", "/v1/completions", `{"prompt":{"a":1}}`, 400, "prompt must be a string"},
		{"no prompt", "/v1/completions", `{}`, 400, "prompt must be a string"},
		{"two prompts", "/v1/completions", `{"prompt":["a","b"]}`, 400, "exactly one prompt (got 2)"},
		{"completion template", "/v1/completions", `{"prompt":"x","template":"llama"}`, 400, "unknown template"},
		{"chat template", "/v1/chat/completions", chat(`,"template":"llama"`), 400, "unknown template"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "messages must hold 1 to 256 messages"},
		{"unknown role", "/v1/chat/completions", `{"messages":[{"role":"tool","content":"x"}]}`, 400, `unknown role "tool"`},
		{"last message not the user's", "/v1/chat/completions",
			`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x"}]}`, 400, "the last message must have role"},
		{"image part", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400,
			`messages[0]: content parts of type "image_url" are not supported`},
		{"content type", "/v1/chat/completions", `{"messages":[{"role":"user","content":5}]}`, 400, "messages[0]: message content must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := &fakeGen{}
			w := request(New(gen, nil, nil), "POST", tc.path, tc.body)
			e := errorOf(t, w)
			if w.Code != tc.status || !strings.Contains(e.Error.Message, tc.message) || e.Error.Type != "invalid_request_error" {
				t.Errorf("%d %+v, want %d with %q", w.Code, e.Error, tc.status, tc.message)
			}
			if w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			if gen.calls() != 0 {
				t.Errorf("refused but generated")
			}
		})
	}
}

// retryIn is RESOURCE_EXHAUSTED with a RetryInfo detail of d.
func retryIn(t *testing.T, d time.Duration) error {
	t.Helper()
	st, err := status.New(codes.ResourceExhausted, "full").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// Errors reach clients as OpenAI's error objects with the HTTP status the
// gRPC code (or the domain error) means, streaming or not, as long as no
// event was sent; RESOURCE_EXHAUSTED says when to retry.
func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serving    error // from CheckServing
		err        error // from Generate
		canceled   bool  // the client went away first
		status     int
		typ, code  string
		message    string
		retryAfter string
	}{
		{"invalid argument", nil, status.Error(codes.InvalidArgument, "prompt too long"), false, 400, "invalid_request_error", "<nil>", "prompt too long", ""},
		{"out of range", nil, status.Error(codes.OutOfRange, "token 99999"), false, 400, "invalid_request_error", "<nil>", "token 99999", ""},
		{"busy", nil, dataplane.BusyError("at the session limit"), false, 429, "rate_limit_error", "overloaded", "at the session limit", "2"},
		{"retry info rounded up", nil, retryIn(t, 1500*time.Millisecond), false, 429, "rate_limit_error", "overloaded", "full", "2"},
		{"retry info", nil, retryIn(t, 7*time.Second), false, 429, "rate_limit_error", "overloaded", "full", "7"},
		{"exhausted without retry info", nil, status.Error(codes.ResourceExhausted, "out of KV cache"), false, 429, "rate_limit_error", "overloaded", "out of KV cache", "2"},
		{"unavailable", nil, status.Error(codes.Unavailable, "stage down"), false, 503, "server_error", "unavailable", "stage down", ""},
		{"canceled", nil, status.Error(codes.Canceled, "context canceled"), false, 499, "server_error", "canceled", "context canceled", ""},
		{"deadline", nil, status.Error(codes.DeadlineExceeded, "too slow"), false, 499, "server_error", "canceled", "too slow", ""},
		{"internal", nil, status.Error(codes.Internal, "boom"), false, 500, "server_error", "<nil>", "boom", ""},
		{"failed precondition", nil, status.Error(codes.FailedPrecondition, "plan mismatch"), false, 500, "server_error", "<nil>", "plan mismatch", ""},
		{"plain error", nil, errors.New("oops"), false, 500, "server_error", "<nil>", "oops", ""},
		{"bad request", nil, fmt.Errorf("%w: no tokens", textgen.ErrBadRequest), false, 400, "invalid_request_error", "<nil>", "textgen: invalid request: no tokens", ""},
		{"invalid params", nil, fmt.Errorf("%w: top_p", sample.ErrInvalidParams), false, 400, "invalid_request_error", "<nil>", "sample: invalid parameters: top_p", ""},
		{"stage down", nil, fmt.Errorf("stage 2: %w", stage.ErrDown), false, 503, "server_error", "unavailable", "stage 2: stage: unavailable", ""},
		{"client gone", nil, errors.New("send: broken"), true, 499, "server_error", "canceled", "context canceled", ""},
		{"standing by", status.Error(codes.Unavailable, "standing by"), nil, false, 503, "server_error", "unavailable", "standing by", ""},
		{"not serving, busy", dataplane.BusyError("queue full"), nil, false, 429, "rate_limit_error", "overloaded", "queue full", "2"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				gen := &fakeGen{serving: tc.serving, err: tc.err}
				body := fmt.Sprintf(`{"prompt":"x","stream":%v}`, stream)
				r := httptest.NewRequest("POST", "/v1/completions", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				if tc.canceled {
					ctx, cancel := context.WithCancel(r.Context())
					cancel()
					r = r.WithContext(ctx)
				}
				w := httptest.NewRecorder()
				New(gen, nil, nil).ServeHTTP(w, r)
				e := errorOf(t, w)
				if w.Code != tc.status || e.Error.Type != tc.typ || deref(e.Error.Code) != tc.code || e.Error.Message != tc.message {
					t.Errorf("%d %s, want %d %s %s %q", w.Code, w.Body, tc.status, tc.typ, tc.code, tc.message)
				}
				if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
					t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if tc.serving != nil && gen.calls() != 0 {
					t.Errorf("generated while not serving")
				}
			})
		}
	}
}

// Chat errors go through the same mapping.
func TestChatErrorMapping(t *testing.T) {
	gen := &fakeGen{err: dataplane.BusyError("full")}
	w := request(New(gen, nil, nil), "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if e := errorOf(t, w); w.Code != 429 || w.Header().Get("Retry-After") != "2" || e.Error.Message != "full" {
		t.Errorf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

// The model routes, unknown URLs, and the probes.
func TestRoutes(t *testing.T) {
	notServing := status.Error(codes.Unavailable, "standing by")
	for _, tc := range []struct {
		name         string
		gen          Generator
		method, path string
		status       int
		body         string // the body, a part of it when it starts with '"', or the error message
	}{
		{"models", &fakeGen{}, "GET", "/v1/models", 200,
			`{"data":[{"created":1,"id":"phi-2@test","object":"model","owned_by":"phalanx"}],"object":"list"}` + "\n"},
		{"model by id", &fakeGen{}, "GET", "/v1/models/phi-2@test", 200,
			`{"created":1,"id":"phi-2@test","object":"model","owned_by":"phalanx"}` + "\n"},
		{"model by name", &fakeGen{}, "GET", "/v1/models/phi-2", 200, `"id":"phi-2@test"`},
		{"model by a client's label", &fakeGen{}, "GET", "/v1/models/microsoft/phi-2", 200, `"id":"phi-2@test"`},
		{"unknown model", &fakeGen{}, "GET", "/v1/models/gpt-4", 404, "The model 'gpt-4' does not exist"},
		{"unknown route", &fakeGen{}, "POST", "/v1/embeddings", 404, "Unknown request URL: POST /v1/embeddings"},
		{"wrong method", &fakeGen{}, "GET", "/v1/chat/completions", 404, "Unknown request URL: GET /v1/chat/completions"},
		{"v1 itself", &fakeGen{}, "GET", "/v1/", 404, "Unknown request URL: GET /v1/"},
		{"outside the API", &fakeGen{}, "GET", "/v2/models", 404, "404 page not found\n"},
		{"healthz", &fakeGen{serving: notServing}, "GET", "/healthz", 200, "ok\n"},
		{"readyz", &fakeGen{}, "GET", "/readyz", 200, "ready\n"},
		{"readyz not serving", &fakeGen{serving: notServing}, "GET", "/readyz", 503, "rpc error: code = Unavailable desc = standing by\n"},
		{"readyz with readiness", readyGen{&fakeGen{}, nil}, "GET", "/readyz", 200, "ready\n"},
		{"readyz not routing yet", readyGen{&fakeGen{}, errors.New("no route to the plan yet")}, "GET", "/readyz", 503, "no route to the plan yet\n"},
		{"readyz: CheckServing first", readyGen{&fakeGen{serving: notServing}, errors.New("no route")}, "GET", "/readyz", 503,
			"rpc error: code = Unavailable desc = standing by\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := request(New(tc.gen, nil, nil), tc.method, tc.path, "")
			got := created.ReplaceAllString(w.Body.String(), `"created":1`)
			if w.Code != tc.status {
				t.Fatalf("%d %s, want %d", w.Code, got, tc.status)
			}
			if w.Code == 404 && strings.HasPrefix(tc.path, "/v1/") {
				e := errorOf(t, w)
				if e.Error.Message != tc.body || e.Error.Type != "invalid_request_error" {
					t.Errorf("%+v, want %q", e.Error, tc.body)
				}
				return
			}
			if got != tc.body && !(strings.HasPrefix(tc.body, `"`) && strings.Contains(got, tc.body)) {
				t.Errorf("body %q, want %q", got, tc.body)
			}
		})
	}
}

// With keys, every /v1 route wants one as a bearer token (401 otherwise)
// and the probes and added routes do not; without keys nothing is asked.
func TestAuth(t *testing.T) {
	keys, err := LoadKeys("k", func(string) ([]byte, error) { return []byte("sk-1\nsk-2\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/models", ""},
		{"GET", "/v1/models/phi-2", ""},
		{"POST", "/v1/completions", `{"prompt":"x"}`},
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`},
	}
	for _, tc := range []struct {
		name          string
		keys          *Keys
		authorization string // "" sends none
		want          int
	}{
		{"no key sent", keys, "", 401},
		{"wrong key", keys, "Bearer sk-3", 401},
		{"no Bearer", keys, "sk-1", 401},
		{"basic", keys, "Basic c2stMTo=", 401},
		{"lower-case bearer", keys, "bearer sk-1", 401},
		{"empty bearer", keys, "Bearer ", 401},
		{"first key", keys, "Bearer sk-1", 200},
		{"second key, spaces around", keys, "Bearer  sk-2 ", 200},
		{"no keys configured", nil, "", 200},
		{"no keys configured, any key", nil, "Bearer whatever", 200},
	} {
		for _, rt := range routes {
			t.Run(tc.name+rt.path, func(t *testing.T) {
				gen := &fakeGen{}
				var header []string
				if tc.authorization != "" {
					header = []string{"Authorization", tc.authorization}
				}
				w := request(New(gen, tc.keys, nil), rt.method, rt.path, rt.body, header...)
				if w.Code != tc.want {
					t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.want)
				}
				if tc.want == 401 {
					if e := errorOf(t, w); deref(e.Error.Code) != "invalid_api_key" || e.Error.Type != "invalid_request_error" {
						t.Errorf("%+v", e.Error)
					}
					if gen.calls() != 0 {
						t.Errorf("refused but generated")
					}
				}
			})
		}
	}
	api := New(&fakeGen{}, keys, nil)
	api.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "m 1\n") }))
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if w := request(api, "GET", path, ""); w.Code != 200 {
			t.Errorf("%s without a key: %d %s", path, w.Code, w.Body)
		}
	}
	if w := request(api, "POST", "/v1/embeddings", "{}"); w.Code != 404 {
		t.Errorf("unknown route with keys: %d, want 404 (nothing to authenticate)", w.Code)
	}
}
