package phalanxpb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The generated descriptors must carry both services with the streaming
// shapes the rest of the system is written against.
func TestDescriptors(t *testing.T) {
	fd, err := protoregistry.GlobalFiles.FindFileByPath("phalanx/v1/phalanx.proto")
	if err != nil {
		t.Fatal(err)
	}
	if fd != phalanxpb.File_phalanx_v1_phalanx_proto {
		t.Fatal("registered file is not the generated one")
	}
	if got := fd.Package(); got != "phalanx.v1" {
		t.Fatalf("package %q", got)
	}
	type method struct{ client, server bool }
	want := map[protoreflect.FullName]map[protoreflect.Name]method{
		"phalanx.v1.Inference": {
			"Generate":      {server: true},
			"Tokenize":      {},
			"ClusterStatus": {},
		},
		"phalanx.v1.Stage": {
			"Process": {client: true, server: true},
			"Release": {},
			"Info":    {},
		},
		"phalanx.v1.Weights": {
			"Manifest": {},
			"Read":     {server: true},
		},
	}
	if fd.Services().Len() != len(want) {
		t.Fatalf("%d services, want %d", fd.Services().Len(), len(want))
	}
	for name, methods := range want {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		if sd.Methods().Len() != len(methods) {
			t.Fatalf("%s: %d methods, want %d", name, sd.Methods().Len(), len(methods))
		}
		for m, shape := range methods {
			md := sd.Methods().ByName(m)
			if md == nil {
				t.Fatalf("%s has no method %s", name, m)
			}
			if md.IsStreamingClient() != shape.client || md.IsStreamingServer() != shape.server {
				t.Errorf("%s.%s: streaming client=%v server=%v, want %v %v", name, m,
					md.IsStreamingClient(), md.IsStreamingServer(), shape.client, shape.server)
			}
		}
	}

	// Fields other packages rely on by meaning, not only by name.
	req := (&phalanxpb.GenerateRequest{}).ProtoReflect().Descriptor()
	if oo := req.Oneofs().ByName("input"); oo == nil || oo.Fields().Len() != 2 {
		t.Error("GenerateRequest.input must be a oneof of prompt and tokens")
	}
	seed := (&phalanxpb.SamplingParams{}).ProtoReflect().Descriptor().Fields().ByName("seed")
	if seed == nil || !seed.HasPresence() {
		t.Error("SamplingParams.seed must track presence (optional)")
	}
	data := (&phalanxpb.Tensor{}).ProtoReflect().Descriptor().Fields().ByName("data")
	if data == nil || data.Kind() != protoreflect.BytesKind {
		t.Error("Tensor.data must be bytes")
	}
}

func TestTensorMarshalRoundTrip(t *testing.T) {
	in := &phalanxpb.StageRequest{
		Epoch:      3,
		LayerStart: 8,
		LayerEnd:   16,
		StepId:     42,
		Spans: []*phalanxpb.SessionSpan{
			{SessionId: "a", Position: 0, Tokens: 2},
			{SessionId: "b", Position: 17, Tokens: 1},
		},
		Hidden: &phalanxpb.Tensor{
			Dtype: phalanxpb.DType_DTYPE_F32,
			Shape: []int64{3, 2},
			Data:  []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 255},
		},
		ReplyDtype: phalanxpb.DType_DTYPE_F16,
	}
	raw, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out phalanxpb.StageRequest
	if err := proto.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &out) {
		t.Fatalf("round trip changed the message:\n in: %v\nout: %v", in, &out)
	}
}

// echoStage answers every step with its own hidden states, in order.
type echoStage struct {
	phalanxpb.UnimplementedStageServer
}

var _ phalanxpb.StageServer = (*echoStage)(nil)

func (echoStage) Process(stream grpc.BidiStreamingServer[phalanxpb.StageRequest, phalanxpb.StageResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&phalanxpb.StageResponse{StepId: req.GetStepId(), Hidden: req.GetHidden()}); err != nil {
			return err
		}
	}
}

// The generated stubs carry a bidirectional Stage stream end to end.
func TestStageStreamInProcess(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	phalanxpb.RegisterStageServer(srv, echoStage{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := phalanxpb.NewStageClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for step := uint64(1); step <= 3; step++ {
		h := &phalanxpb.Tensor{Dtype: phalanxpb.DType_DTYPE_F32, Shape: []int64{1, 1}, Data: []byte{byte(step), 0, 0, 0}}
		if err := stream.Send(&phalanxpb.StageRequest{StepId: step, Hidden: h}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for step := uint64(1); step <= 3; step++ {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStepId() != step || resp.GetHidden().GetData()[0] != byte(step) {
			t.Fatalf("response %d: %v", step, resp)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last response: %v, want EOF", err)
	}
}
