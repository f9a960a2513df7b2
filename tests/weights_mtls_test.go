package tests

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// With mutual TLS, workers without model files fetch their layers over
// authenticated connections and serve; the Weights service refuses callers
// without a cluster certificate, and a worker's Stage service still takes
// steps from coordinators only.
func TestMutualTLSWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	binaries(t)
	good, evil := t.TempDir(), t.TempDir()
	certsFor(t, good, "coordinator", "w1", "w2")
	certsFor(t, evil, "coordinator", "w3")
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	c := &cluster{t: t, dir: t.TempDir(), model: fx, workers: map[string]*proc{}, name: "tlsweights"}
	c.addr, c.etcd = freeAddr(t), freeAddr(t)
	c.coord = startProc(t, c.dir, "coordinator", bin.coordinator, append([]string{"--model", fx, "--listen", c.addr,
		"--etcd", c.etcd, "--embedded-etcd", filepath.Join(c.dir, "etcd"), "--cluster", c.name, "--min-workers", "2", "--threads", "1"},
		append(tlsArgs(good, "coordinator"), etcdTLSArgs(good)...)...)...)
	c.conn = tlsConn(t, c.addr, good, "")
	c.client = phalanxpb.NewInferenceClient(c.conn)
	c.waitHealth("", 60*time.Second)
	workerAddr := map[string]string{}
	for _, w := range []string{"w1", "w2"} {
		p := c.addCacheWorker(w, t.TempDir(), append(append([]string{"--speed", "100"}, tlsArgs(good, w)...), etcdTLSArgs(good)...)...)
		workerAddr[w] = p.cmd.Args[4] // --listen's value
	}
	c.waitReady(90 * time.Second)
	checkTokens(t, c, local)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &phalanxpb.ManifestRequest{LayerStart: 0, LayerEnd: 1}
	if _, err := phalanxpb.NewWeightsClient(tlsConn(t, c.addr, good, "")).Manifest(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Manifest without a client certificate: %v, want PermissionDenied", err)
	}
	if _, err := phalanxpb.NewWeightsClient(tlsConn(t, c.addr, evil, "w3")).Manifest(ctx, req); err == nil {
		t.Error("Manifest with a certificate of another CA succeeded")
	}
	man, err := weights.GetManifest(ctx, phalanxpb.NewWeightsClient(tlsConn(t, c.addr, good, "w2")), "", engine.LayerRange{Start: 0, End: 1})
	if err != nil {
		t.Fatalf("Manifest with a worker certificate: %v", err)
	}
	// On a worker: a peer may read weights, not send steps.
	peer := tlsConn(t, workerAddr["w1"], good, "w2")
	stream, err := phalanxpb.NewWeightsClient(peer).Read(ctx, &phalanxpb.ReadRequest{Sha256: man.Tensors[0].Digest[:]})
	if err == nil {
		_, err = stream.Recv()
	}
	if code := status.Code(err); code == codes.PermissionDenied || code == codes.Unavailable {
		t.Errorf("a peer's Read on w1: %v", err)
	}
	if _, err := phalanxpb.NewStageClient(peer).Info(ctx, &phalanxpb.InfoRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a worker certificate calling Stage.Info on a worker: %v, want PermissionDenied", err)
	}
}
