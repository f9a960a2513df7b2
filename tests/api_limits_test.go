package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// The coordinator's public limits as a client meets them over real
// sockets: the Inference service takes messages of at most 8 MiB and
// prompts of at most 65536 token ids; the keyless HTTP API on 127.0.0.1
// wants JSON and answers only IP, localhost and --allowed-hosts names.
func TestPublicAPILimits(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	httpAddr := freeAddr(t)
	c := startCluster(t, fixture(t, "phi-tiny-f32"), clusterOpts{workers: 1,
		coordArgs: []string{"--http", httpAddr, "--allowed-hosts", "llm.example"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	big := &phalanxpb.GenerateRequest{Input: &phalanxpb.GenerateRequest_Prompt{Prompt: strings.Repeat("a", 9<<20)}}
	if _, _, _, err := c.generate(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 9 MiB request: %v, want RESOURCE_EXHAUSTED", err)
	}
	ids := make([]int, 1<<16+1)
	if _, _, _, err := c.generate(ctx, tokenRequest(ids, 1)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("%d token ids: %v, want INVALID_ARGUMENT", len(ids), err)
	}
	if _, _, _, err := c.generate(ctx, tokenRequest([]int{1, 2, 3}, 2)); err != nil {
		t.Errorf("a small request after the refusals: %v", err)
	}

	post := func(host, contentType string) int {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/completions", strings.NewReader(`{"prompt":[1,2,3],"max_tokens":1}`))
		req.Host = host
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		host, contentType string
		want              int
	}{
		{httpAddr, "application/json", 200},
		{"localhost:8080", "application/json", 200},
		{"llm.example", "application/json", 200},
		{"rebound.evil.example:8080", "application/json", http.StatusMisdirectedRequest},
		{httpAddr, "", http.StatusUnsupportedMediaType},
		{httpAddr, "text/plain", http.StatusUnsupportedMediaType},
	} {
		if got := post(tc.host, tc.contentType); got != tc.want {
			t.Errorf("Host %q, Content-Type %q: %d, want %d", tc.host, tc.contentType, got, tc.want)
		}
	}
}
