package weights

import (
	"cmp"
	"context"
	"errors"

	"golang.org/x/time/rate"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// ChunkBytes is the most one ReadResponse carries.
const ChunkBytes = 1 << 20

// Blobs gives tensors' bytes by digest; release is called when the bytes
// are no longer used.
type Blobs interface {
	Blob(d Digest) (data []byte, release func(), err error)
}

// Manifests describes layer ranges of one model.
type Manifests interface {
	ModelID() string
	Manifest(r engine.LayerRange) (*Manifest, error)
}

// Server is the Weights gRPC service over blobs and, when it has them,
// manifests (a worker serves only blobs: manifests come from the
// coordinator, which vouches for the model).
type Server struct {
	phalanxpb.UnimplementedWeightsServer
	blobs     Blobs
	manifests Manifests // nil: Manifest is FAILED_PRECONDITION
	// Sent counts the bytes streamed, for metrics and tests.
	sent func(n int)
	// limit caps the bytes sent per second over every stream (nil: none).
	limit *rate.Limiter
}

var _ phalanxpb.WeightsServer = (*Server)(nil)

// NewServer serves blobs, and manifests when m is not nil.
func NewServer(b Blobs, m Manifests) *Server { return &Server{blobs: b, manifests: m} }

// LimitRate caps the bytes the server sends per second, all streams
// together (0: no limit), so a node serving weights keeps bandwidth for
// its steps. Call it before serving.
func (s *Server) LimitRate(bytesPerSecond float64) { s.limit = NewLimiter(bytesPerSecond) }

// OnSent registers a function told every chunk's size as it is sent.
func (s *Server) OnSent(fn func(n int)) { s.sent = fn }

// Manifest implements phalanxpb.WeightsServer.
func (s *Server) Manifest(ctx context.Context, req *phalanxpb.ManifestRequest) (*phalanxpb.ManifestResponse, error) {
	if s.manifests == nil {
		return nil, status.Error(codes.FailedPrecondition, "this node serves tensors it holds, not manifests: ask the coordinator")
	}
	if id := req.GetModelId(); id != "" && id != s.manifests.ModelID() {
		return nil, status.Errorf(codes.FailedPrecondition, "this node serves model %q, not %q", s.manifests.ModelID(), id)
	}
	m, err := s.manifests.Manifest(engine.LayerRange{Start: int(req.GetLayerStart()), End: int(req.GetLayerEnd())})
	if errors.Is(err, engine.ErrInput) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp, err := m.toProto()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return resp, nil
}

// Read implements phalanxpb.WeightsServer.
func (s *Server) Read(req *phalanxpb.ReadRequest, stream phalanxpb.Weights_ReadServer) error {
	var d Digest
	if len(req.GetSha256()) != len(d) {
		return status.Errorf(codes.InvalidArgument, "sha256 of %d bytes, want %d", len(req.GetSha256()), len(d))
	}
	copy(d[:], req.GetSha256())
	data, release, err := s.blobs.Blob(d)
	if errors.Is(err, ErrNotFound) {
		return status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	defer release()
	off := req.GetOffset()
	if off > uint64(len(data)) {
		return status.Errorf(codes.OutOfRange, "offset %d past the tensor's %d bytes", off, len(data))
	}
	for off < uint64(len(data)) {
		end := min(off+ChunkBytes, uint64(len(data)))
		if err := waitBytes(stream.Context(), s.limit, int(end-off)); err != nil {
			// The stream ended, or its deadline comes before the limit
			// lets the chunk go.
			return status.FromContextError(cmp.Or(stream.Context().Err(), context.DeadlineExceeded)).Err()
		}
		if err := stream.Send(&phalanxpb.ReadResponse{Offset: off, Data: data[off:end]}); err != nil {
			return err
		}
		if s.sent != nil {
			s.sent(int(end - off))
		}
		off = end
	}
	return nil
}
