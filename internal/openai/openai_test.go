package openai

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/api"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs the API on a real socket; configure may restrict it.
func serve(t *testing.T, keys *Keys, configure func(s *Server, addr string)) (string, *fakeGen) {
	t.Helper()
	gen := &fakeGen{chunks: []textgen.Chunk{{Tokens: []int{1}, Text: "ok"}}}
	api := New(gen, keys, nil)
	srv := httptest.NewUnstartedServer(api)
	if configure != nil {
		configure(api, srv.Listener.Addr().String())
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, gen
}

// post sends body with the headers and returns the status and error code.
func post(t *testing.T, url, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiError
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Message
}

var jsonType = map[string]string{"Content-Type": "application/json"}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// The documented limits hold over HTTP: a 1 MiB prompt (text, or chat
// messages once rendered), MaxPromptTokens ids, 16 stop sequences of at
// most 256 bytes — a single stop string included —, 256 chat messages and
// 1024 logit_bias entries.
func TestRequestLimits(t *testing.T) {
	url, gen := serve(t, nil, nil)
	big := strings.Repeat("a", api.MaxPromptBytes)
	ids := strings.TrimSuffix(strings.Repeat("1,", api.MaxPromptTokens+1), ",")
	messages := func(n int) string {
		return `{"messages":[` + strings.Repeat(`{"role":"user","content":"hi"},`, n-1) + `{"role":"user","content":"hi"}]}`
	}
	logitBias := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `"%d":1,`, i)
		}
		return `{"prompt":"x","logit_bias":{` + strings.TrimSuffix(b.String(), ",") + `}}`
	}
	for _, tc := range []struct {
		name, path, body string
		want             int
	}{
		{"prompt at the limit", "/v1/completions", `{"prompt":` + quote(big) + `}`, 200},
		{"prompt over", "/v1/completions", `{"prompt":` + quote(big+"a") + `}`, 413},
		{"prompt in an array over", "/v1/completions", `{"prompt":[` + quote(big+"a") + `]}`, 413},
		{"token ids over", "/v1/completions", `{"prompt":[` + ids + `]}`, 413},
		{"token ids at the limit", "/v1/completions", `{"prompt":[` + strings.TrimPrefix(ids, "1,") + `]}`, 200},
		{"chat over", "/v1/chat/completions", `{"messages":[{"role":"user","content":` + quote(big[:600<<10]) +
			`},{"role":"user","content":` + quote(big[:600<<10]) + `}]}`, 413},
		{"body over", "/v1/completions", `{"prompt":` + quote(strings.Repeat("\n", api.MaxPromptBytes)) + `}`, 413},
		{"one stop string at the limit", "/v1/completions", `{"prompt":"x","stop":` + quote(big[:256]) + `}`, 200},
		{"one stop string over", "/v1/completions", `{"prompt":"x","stop":` + quote(big[:257]) + `}`, 400},
		{"a stop in an array over", "/v1/completions", `{"prompt":"x","stop":["a",` + quote(big[:257]) + `]}`, 400},
		{"17 stops", "/v1/completions", `{"prompt":"x","stop":[` + strings.Repeat(`"s",`, 16) + `"s"]}`, 400},
		{"16 stops", "/v1/completions", `{"prompt":"x","stop":[` + strings.Repeat(`"s",`, 15) + `"s"]}`, 200},
		{"256 messages", "/v1/chat/completions", messages(256), 200},
		{"257 messages", "/v1/chat/completions", messages(257), 400},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400},
		{"1024 logit_bias entries", "/v1/completions", logitBias(1024), 200},
		{"1025 logit_bias entries", "/v1/completions", logitBias(1025), 400},
	} {
		before := gen.calls()
		code, msg := post(t, url, tc.path, tc.body, jsonType)
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, msg, tc.want)
		}
		if tc.want != 200 && gen.calls() != before {
			t.Errorf("%s: refused but generated", tc.name)
		}
	}
}

// A POST must say its body is JSON: a form or text body, or none said,
// is what a cross-site page can send without a preflight.
func TestContentTypeRequired(t *testing.T) {
	url, gen := serve(t, nil, nil)
	for ct, want := range map[string]int{
		"":                                  415,
		"text/plain":                        415,
		"application/x-www-form-urlencoded": 415,
		"application/jsonx":                 415,
		"application/json":                  200,
		"application/json; charset=utf-8":   200,
	} {
		h := map[string]string{}
		if ct != "" {
			h["Content-Type"] = ct
		}
		before := gen.calls()
		if code, msg := post(t, url, "/v1/completions", `{"prompt":"x"}`, h); code != want {
			t.Errorf("Content-Type %q: %d %q, want %d", ct, code, msg, want)
		} else if want != 200 && gen.calls() != before {
			t.Errorf("Content-Type %q: refused but generated", ct)
		}
	}
}

// A keyless or loopback API answers IP addresses, localhost and the
// allowed names in Host, and refuses other names with 421 (DNS
// rebinding); with keys on a routable address, or "*", any Host goes.
func TestHostCheck(t *testing.T) {
	keys, _ := LoadKeys("k", func(string) ([]byte, error) { return []byte("sk-1\n"), nil })
	h := func(host string) map[string]string {
		return map[string]string{"Host": host, "Content-Type": "application/json", "Authorization": "Bearer sk-1"}
	}
	restrict := func(listen string, allowed ...string) func(*Server, string) {
		return func(s *Server, addr string) {
			if listen == "" {
				listen = addr
			}
			s.RestrictHosts(listen, allowed)
		}
	}
	for _, tc := range []struct {
		name      string
		keys      *Keys
		configure func(*Server, string)
		ok, bad   []string
	}{
		{"loopback, no key", nil, restrict(""),
			[]string{"localhost:8080", "LOCALHOST.", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3", "[fe80::1]"},
			[]string{"evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io"}},
		{"loopback with keys", keys, restrict(""), []string{"localhost"}, []string{"evil.example"}},
		{"routable, no key", nil, restrict("0.0.0.0:8080", "phalanx.example", "*.svc.local"),
			[]string{"phalanx.example:443", "Phalanx.Example", "a.svc.local", "b.a.svc.local"},
			[]string{"phalanx.example.evil", "svc.local", "evil.example"}},
		{"routable with keys", keys, restrict("0.0.0.0:8080"), []string{"evil.example"}, nil},
		{"any", nil, restrict("", "*"), []string{"evil.example"}, nil},
	} {
		url, _ := serve(t, tc.keys, tc.configure)
		for _, host := range tc.ok {
			if code, msg := post(t, url, "/v1/completions", `{"prompt":"x"}`, h(host)); code != 200 {
				t.Errorf("%s: Host %q: %d %q", tc.name, host, code, msg)
			}
		}
		for _, host := range tc.bad {
			if code, msg := post(t, url, "/v1/completions", `{"prompt":"x"}`, h(host)); code != http.StatusMisdirectedRequest {
				t.Errorf("%s: Host %q: %d %q, want 421", tc.name, host, code, msg)
			}
			req, _ := http.NewRequest("GET", url+"/healthz", nil)
			req.Host = host
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
				t.Errorf("%s: /healthz with Host %q: %v %v", tc.name, host, err, resp)
			} else {
				resp.Body.Close()
			}
		}
	}
}

// Keys are held and compared as fixed-size digests, so a guess's length
// says nothing about a key's.
func TestKeysCompareDigests(t *testing.T) {
	keys, err := LoadKeys("k", func(string) ([]byte, error) { return []byte("# c\nsk-short\n\nsk-a-much-longer-key-0123456789\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"sk-short": true, "sk-a-much-longer-key-0123456789": true,
		"": false, "sk-shor": false, "sk-short ": false, "sk-a-much-longer-key-012345678": false, "# c": false,
	} {
		if keys.Valid(key) != want {
			t.Errorf("Valid(%q) = %v", key, !want)
		}
	}
	for _, k := range keys.keys {
		if len(k) != 32 {
			t.Fatalf("a key is held as %d bytes", len(k))
		}
	}
}
