package stage

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// FuzzStageStep feeds arbitrary StageRequests to a worker's step handler:
// negative or huge shapes, wrong dtypes, byte lengths that do not match,
// unknown sessions, positions out of order or past the window. Every one
// must end in a status or a result, never a panic, and a rejected step must
// leave no session behind.
func FuzzStageStep(f *testing.F) {
	m, err := engine.Load(fixture("phi-tiny-f32"), engine.Options{Layers: engine.LayerRange{Start: 0, End: 2}, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	s := NewServer(Config{WorkerID: "fuzz", CacheBudget: 1 << 20, MaxStepRows: 512})
	s.Install(m, 3)
	H := m.Config.HiddenSize
	hidden := func(rows int, dt phalanxpb.DType) *phalanxpb.Tensor {
		t, _ := wire.EncodeF32(rows, H, make([]float32, rows*H), dt)
		return t
	}
	for _, req := range []*phalanxpb.StageRequest{
		{Epoch: 3, LayerStart: 0, LayerEnd: 2, StepId: 1, Spans: []*phalanxpb.SessionSpan{{SessionId: "a", Tokens: 2}}, Hidden: hidden(2, phalanxpb.DType_DTYPE_F32)},
		{Epoch: 3, LayerEnd: 2, Spans: []*phalanxpb.SessionSpan{{SessionId: "b", Position: 0, Tokens: 1}, {SessionId: "c", Tokens: 1}}, Hidden: hidden(2, phalanxpb.DType_DTYPE_F16), ReplyDtype: phalanxpb.DType_DTYPE_F32},
		{Epoch: 3, LayerEnd: 2, Spans: []*phalanxpb.SessionSpan{{SessionId: "a", Position: 5, Tokens: 1}}, Hidden: hidden(1, phalanxpb.DType_DTYPE_F32)},
		{Epoch: 3, LayerEnd: 2, Spans: []*phalanxpb.SessionSpan{{SessionId: "a", Tokens: 1}}, Hidden: &phalanxpb.Tensor{Dtype: 1, Shape: []int64{-1, int64(H)}}},
	} {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req phalanxpb.StageRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		before, _ := s.Stats()
		resp := &phalanxpb.StageResponse{}
		_, err := s.step(context.Background(), &req, resp, nil)
		after, bytes := s.Stats()
		if err != nil && after != before {
			t.Fatalf("a rejected step changed the sessions: %d → %d (%v)", before, after, err)
		}
		if bytes > 2<<20 {
			t.Fatalf("KV caches grew to %d bytes past the 1 MiB budget", bytes)
		}
		if after > 64 { // keep the fuzzer's state small
			s.mu.Lock()
			clear(s.sessions)
			s.mu.Unlock()
		}
	})
}
