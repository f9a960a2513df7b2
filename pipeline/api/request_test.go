package api

import (
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// A huge token-id prompt is refused before anything is allocated for it,
// and the text limits hold at their documented values.
func TestToTextgenLimits(t *testing.T) {
	ids := make([]int32, 16<<20) // what fits a 64 MiB message at 4 bytes an id
	huge := &phalanxpb.GenerateRequest{Input: &phalanxpb.GenerateRequest_Tokens{Tokens: &phalanxpb.TokenIds{Ids: ids}}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ToTextgen(huge)
	runtime.ReadMemStats(&after)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "token") {
		t.Fatalf("%d ids: %v, want InvalidArgument", len(ids), err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("refusing %d ids allocated %d bytes", len(ids), got)
	}
	ok := &phalanxpb.GenerateRequest{Input: &phalanxpb.GenerateRequest_Tokens{Tokens: &phalanxpb.TokenIds{Ids: ids[:MaxPromptTokens]}}}
	if _, err := ToTextgen(ok); err != nil {
		t.Errorf("%d ids: %v", MaxPromptTokens, err)
	}

	prompt := func(s string) *phalanxpb.GenerateRequest {
		return &phalanxpb.GenerateRequest{Input: &phalanxpb.GenerateRequest_Prompt{Prompt: s}}
	}
	for _, tc := range []struct {
		name string
		req  *phalanxpb.GenerateRequest
		ok   bool
	}{
		{"prompt at the limit", prompt(strings.Repeat("a", MaxPromptBytes)), true},
		{"prompt over", prompt(strings.Repeat("a", MaxPromptBytes+1)), false},
		{"stop at the limit", &phalanxpb.GenerateRequest{Input: prompt("a").Input, Stop: []string{strings.Repeat("s", MaxStopBytes)}}, true},
		{"stop over", &phalanxpb.GenerateRequest{Input: prompt("a").Input, Stop: []string{strings.Repeat("s", MaxStopBytes+1)}}, false},
		{"too many stops", &phalanxpb.GenerateRequest{Input: prompt("a").Input, Stop: make([]string, MaxStops+1)}, false},
	} {
		_, err := ToTextgen(tc.req)
		if tc.ok != (err == nil) || err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
