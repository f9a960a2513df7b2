package stage

import (
	"context"
	"runtime/debug"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// A session released while its step computes leaves the map at once, and
// its KV blocks go back to the pool when that step ends, not later (nor
// while the step still writes them).
func TestReleaseMidStepReturnsBlocks(t *testing.T) {
	// One layer: a block size no other test of the package uses, so the
	// pool's figures are this test's.
	m, err := engine.Load(fixture("phi-tiny-f32"), engine.Options{Layers: engine.LayerRange{Start: 0, End: 1}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no cleanup may return the blocks instead
	s := NewServer(Config{WorkerID: "w"})
	s.Install(m, 3)
	H := m.Config.HiddenSize
	hidden, _ := wire.EncodeF32(3, H, make([]float32, 3*H), phalanxpb.DType_DTYPE_F32)
	req := &phalanxpb.StageRequest{Epoch: 3, LayerEnd: 1, StepId: 1,
		Spans: []*phalanxpb.SessionSpan{{SessionId: "a", Tokens: 3}}, Hidden: hidden}
	_, base := engine.KVPoolBytes()

	entered, proceed := make(chan struct{}), make(chan struct{})
	s.midStep = func() { close(entered); <-proceed }
	done := make(chan error, 1)
	go func() {
		_, err := s.step(context.Background(), req, &phalanxpb.StageResponse{}, nil)
		done <- err
	}()
	<-entered
	if r, err := s.Release(context.Background(), &phalanxpb.ReleaseRequest{SessionIds: []string{"a"}}); err != nil || r.GetReleased() != 1 {
		t.Fatalf("release mid-step: %v, %v", r, err)
	}
	if n, _ := s.Stats(); n != 0 {
		t.Fatalf("%d sessions after the release", n)
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, after := engine.KVPoolBytes(); after != base {
		t.Fatalf("KV blocks in use: %d bytes before the step, %d after it ended for a released session", base, after)
	}

	// The same step on a session that stays: its blocks stay with it.
	s.midStep = nil
	req.Spans[0].SessionId = "b"
	if _, err := s.step(context.Background(), req, &phalanxpb.StageResponse{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, after := engine.KVPoolBytes(); after <= base {
		t.Fatalf("a live session holds no KV blocks (%d bytes in use, %d before)", after, base)
	}
	s.Unload()
	if _, after := engine.KVPoolBytes(); after != base {
		t.Fatalf("Unload left %d bytes of KV blocks in use (%d before)", after, base)
	}
}
