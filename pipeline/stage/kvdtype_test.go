package stage

import (
	"context"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A step's kv_dtype decides how a new session's cache keeps keys and
// values; continuing a session in the other dtype is refused and changes
// nothing, starting it again at position 0 switches it, and any dtype but
// F32 or F16 is refused.
func TestStepKVDType(t *testing.T) {
	m, err := engine.Load(fixture("phi-tiny-f32"), engine.Options{Layers: engine.LayerRange{Start: 0, End: 2}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := NewServer(Config{WorkerID: "w"})
	s.Install(m, 3)
	defer s.Unload()
	H := m.Config.HiddenSize
	step := func(session string, pos, tokens int, kv phalanxpb.DType) error {
		hidden, _ := wire.EncodeF32(tokens, H, make([]float32, tokens*H), phalanxpb.DType_DTYPE_F32)
		_, err := s.step(context.Background(), &phalanxpb.StageRequest{Epoch: 3, LayerEnd: 2, StepId: 1,
			Spans: []*phalanxpb.SessionSpan{{SessionId: session, Position: int32(pos), Tokens: int32(tokens)}}, Hidden: hidden, KvDtype: kv},
			&phalanxpb.StageResponse{}, nil)
		return err
	}
	dtype := func(session string) kernels.DType {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sessions[session].cache.DType()
	}
	for _, c := range []struct {
		session string
		kv      phalanxpb.DType
		want    kernels.DType
	}{{"a", phalanxpb.DType_DTYPE_UNSPECIFIED, kernels.F32}, {"b", phalanxpb.DType_DTYPE_F32, kernels.F32}, {"c", phalanxpb.DType_DTYPE_F16, kernels.F16}} {
		if err := step(c.session, 0, 32, c.kv); err != nil {
			t.Fatal(err)
		}
		if got := dtype(c.session); got != c.want {
			t.Fatalf("kv_dtype %v: the cache keeps %v, want %v", c.kv, got, c.want)
		}
	}
	// F16 takes half the memory: 32 positions are one block, not two.
	s.mu.Lock()
	f32Bytes, f16Bytes := s.sessions["b"].cache.Bytes(), s.sessions["c"].cache.Bytes()
	s.mu.Unlock()
	if 2*f16Bytes != f32Bytes {
		t.Fatalf("32 positions: %d bytes in F16, %d in float32", f16Bytes, f32Bytes)
	}

	err = step("c", 32, 1, phalanxpb.DType_DTYPE_F32)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("continuing an F16 session in F32: %v, want INVALID_ARGUMENT", err)
	}
	s.mu.Lock()
	n := s.sessions["c"].cache.Len()
	s.mu.Unlock()
	if dtype("c") != kernels.F16 || n != 32 {
		t.Fatalf("the refused step changed the session: %v, %d positions", dtype("c"), n)
	}
	if err := step("c", 0, 5, phalanxpb.DType_DTYPE_F32); err != nil {
		t.Fatalf("starting an F16 session again in F32: %v", err)
	}
	s.mu.Lock()
	n = s.sessions["c"].cache.Len()
	s.mu.Unlock()
	if dtype("c") != kernels.F32 || n != 5 {
		t.Fatalf("restarted session: %v, %d positions, want F32 and 5", dtype("c"), n)
	}
	for _, kv := range []phalanxpb.DType{phalanxpb.DType_DTYPE_Q8, phalanxpb.DType(42)} {
		if err := step("d", 0, 1, kv); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("kv_dtype %v: %v, want INVALID_ARGUMENT", kv, err)
		}
	}
	s.mu.Lock()
	_, ok := s.sessions["d"]
	s.mu.Unlock()
	if ok {
		t.Fatal("a refused step left a session behind")
	}
}
