package weights

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/ggufconv"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// models are the fixture in every format the transfer must carry: F32 and
// BF16 safetensors, GGUF with a fused attn_qkv in Q4_0, split q/k/v in Q8_0.
func models(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{
		"f32":          filepath.Join("..", "..", "testdata", "phi-tiny-f32"),
		"bf16-sharded": filepath.Join("..", "..", "testdata", "phi-tiny-bf16-sharded"),
	}
	for name, o := range map[string]ggufconv.Options{
		"q4_0-fused": {Type: ggufconv.MostlyQ4_0},
		"q8_0-split": {Type: ggufconv.MostlyQ8_0, SplitQKV: true},
		"f16-fused":  {Type: ggufconv.MostlyF16},
	} {
		var buf bytes.Buffer
		if _, err := ggufconv.Write(context.Background(), out["f32"], &buf, o); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".gguf")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out[name] = path
	}
	return out
}

// serve runs a Weights server over bufconn.
func serve(t *testing.T, b Blobs, m Manifests) (phalanxpb.WeightsClient, *int) {
	t.Helper()
	return serveWith(t, NewServer(b, m))
}

// serveWith runs ws over bufconn.
func serveWith(t *testing.T, ws *Server) (phalanxpb.WeightsClient, *int) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	sent := new(int)
	var mu sync.Mutex // streams run at once
	ws.OnSent(func(n int) { mu.Lock(); *sent += n; mu.Unlock() })
	phalanxpb.RegisterWeightsServer(srv, ws)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	return phalanxpb.NewWeightsClient(conn), sent
}

// forward runs a few decode steps through m and returns the hidden states.
func forward(t *testing.T, m *engine.Model) []float32 {
	t.Helper()
	H := m.Config.HiddenSize
	r := rand.New(rand.NewPCG(3, 4))
	cache := m.NewCache()
	var out []float32
	for range 3 {
		x := make([]float32, H)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		if err := m.Forward(x, []engine.Span{{Cache: cache, Tokens: 1}}); err != nil {
			t.Fatal(err)
		}
		out = append(out, x...)
	}
	return out
}

// A range fetched into an empty cache loads into the same model as the
// files, in every format; the cache holds exactly the range's bytes, and a
// second Ensure fetches nothing.
func TestFetchLoadsTheSameLayers(t *testing.T) {
	for name, path := range models(t) {
		t.Run(name, func(t *testing.T) {
			mf, err := engine.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			cat, err := NewCatalog(mf)
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			client, sent := serve(t, cat, cat)
			r := engine.LayerRange{Start: 1, End: 3}
			man, err := GetManifest(context.Background(), client, mf.ID, r)
			if err != nil {
				t.Fatal(err)
			}
			if man.Bytes() < mf.RangeBytes(r)*9/10 {
				t.Errorf("manifest of %d bytes for a range of %d stored bytes", man.Bytes(), mf.RangeBytes(r))
			}
			cache, err := OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			f := &Fetcher{Cache: cache, Sources: func(Tensor) []Source { return []Source{{Name: "coordinator", Client: client}} }}
			if err := f.Ensure(context.Background(), man); err != nil {
				t.Fatal(err)
			}
			if p := f.Progress(); p.Done != man.Bytes() || p.Received != man.Bytes() || uint64(*sent) != man.Bytes() {
				t.Errorf("progress %+v, sent %d, range %d bytes", p, *sent, man.Bytes())
			}
			if u, _ := cache.Usage(); u != man.Bytes() {
				t.Errorf("cache holds %d bytes, the range %d", u, man.Bytes())
			}
			got, err := engine.LoadFrom(man.Config, cache.Source(man), engine.Options{Layers: r, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			want, err := mf.Load(engine.Options{Layers: r, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			if a, b := forward(t, got), forward(t, want); !equalFloats(a, b) {
				t.Errorf("layers from the cache compute differently from the files")
			}
			*sent = 0
			if err := f.Ensure(context.Background(), man); err != nil {
				t.Fatal(err)
			}
			if *sent != 0 || f.Progress().Received != 0 {
				t.Errorf("a second Ensure sent %d bytes", *sent)
			}
		})
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A corrupted tensor is found, deleted and fetched again; a partial one
// resumes from its bytes; a peer that lacks a tensor is skipped for the
// next source; the wrong model is refused.
func TestCorruptionResumeAndSources(t *testing.T) {
	mf, err := engine.Open(models(t)["q4_0-fused"])
	if err != nil {
		t.Fatal(err)
	}
	cat, err := NewCatalog(mf)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	client, sent := serve(t, cat, cat)
	if _, err := GetManifest(context.Background(), client, "other@123", engine.LayerRange{Start: 0, End: 1}); err == nil {
		t.Error("a manifest for another model was accepted")
	}
	r := engine.LayerRange{Start: 0, End: 2}
	man, err := GetManifest(context.Background(), client, "", r)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	emptyPeer, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	peer, peerSent := serve(t, emptyPeer, nil)
	f := &Fetcher{Cache: cache, Sources: func(Tensor) []Source {
		return []Source{{Name: "peer", Client: peer}, {Name: "coordinator", Client: client}}
	}}
	if err := f.Ensure(context.Background(), man); err != nil {
		t.Fatal(err)
	}
	if *peerSent != 0 || uint64(*sent) != man.Bytes() {
		t.Fatalf("peer sent %d, coordinator %d of %d", *peerSent, *sent, man.Bytes())
	}

	// Corrupt one tensor, truncate another to half as a .part.
	big := man.Tensors[0]
	for _, tt := range man.Tensors {
		if tt.Size > big.Size {
			big = tt
		}
	}
	corrupt := man.Tensors[len(man.Tensors)-1]
	if corrupt.Digest == big.Digest {
		corrupt = man.Tensors[0]
	}
	b, err := os.ReadFile(cache.path(corrupt.Digest))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(cache.path(corrupt.Digest), b, 0o644)
	whole, _ := os.ReadFile(cache.path(big.Digest))
	os.Remove(cache.path(big.Digest))
	os.WriteFile(cache.part(big.Digest), whole[:len(whole)/2], 0o644)

	*sent = 0
	if err := f.Ensure(context.Background(), man); err != nil {
		t.Fatal(err)
	}
	want := corrupt.Size + big.Size - uint64(len(whole)/2)
	if uint64(*sent) != want {
		t.Errorf("sent %d bytes after corruption and truncation, want %d", *sent, want)
	}
	if p := f.Progress(); p.Done != man.Bytes() || p.Received != want {
		t.Errorf("progress %+v, want done %d received %d", p, man.Bytes(), want)
	}
	if ok, err := cache.Verify(corrupt); !ok || err != nil {
		t.Errorf("the corrupted tensor was not restored: %v %v", ok, err)
	}

	// Now the peer holds the range: it serves it, the coordinator nothing.
	pf := &Fetcher{Cache: emptyPeer, Sources: func(Tensor) []Source { return []Source{{Name: "coordinator", Client: client}} }}
	if err := pf.Ensure(context.Background(), man); err != nil {
		t.Fatal(err)
	}
	third, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	*sent, *peerSent = 0, 0
	f.Cache = third
	if err := f.Ensure(context.Background(), man); err != nil {
		t.Fatal(err)
	}
	if *sent != 0 || uint64(*peerSent) != man.Bytes() {
		t.Errorf("peer sent %d, coordinator %d: want all from the peer", *peerSent, *sent)
	}

	// Pruning to a smaller range leaves only its bytes.
	small, err := GetManifest(context.Background(), client, "", engine.LayerRange{Start: 1, End: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Prune(small); err != nil {
		t.Fatal(err)
	}
	if u, _ := third.Usage(); u != small.Bytes() {
		t.Errorf("after pruning the cache holds %d bytes, want %d", u, small.Bytes())
	}
	if _, _, err := third.Blob(man.Tensors[0].Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("a pruned tensor is still served: %v", err)
	}
}

// bytesBlobs serves one blob under every digest.
type bytesBlobs []byte

func (b bytesBlobs) Blob(Digest) ([]byte, func(), error) { return b, func() {}, nil }

// A rate-limited server sends no faster than its limit, over all streams
// together, and a client that gives up ends its stream's wait.
func TestServerRateLimit(t *testing.T) {
	blob := make(bytesBlobs, 3*ChunkBytes/2)
	ws := NewServer(blob, nil)
	const rate = 4 << 20 // bytes per second
	ws.LimitRate(rate)
	c, _ := serveWith(t, ws)
	read := func(ctx context.Context) (int, error) {
		stream, err := c.Read(ctx, &phalanxpb.ReadRequest{Sha256: make([]byte, 32)})
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			msg, err := stream.Recv()
			if err != nil {
				return n, err
			}
			n += len(msg.GetData())
		}
	}
	// Two streams at once: 3 MiB at 4 MiB/s takes 0.75 s at least (the
	// limiter starts empty).
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := read(context.Background()); err != io.EOF || n != len(blob) {
				t.Errorf("read %d of %d bytes: %v", n, len(blob), err)
			}
		}()
	}
	wg.Wait()
	if took, floor := time.Since(start), time.Duration(float64(2*len(blob))/rate*float64(time.Second)); took < floor*9/10 {
		t.Errorf("sent %d bytes in %v, faster than the limit allows (%v)", 2*len(blob), took, floor)
	}
	// A client that gives up while the server waits on the limiter.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := read(ctx); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a read given up: %v", err)
	}
}
