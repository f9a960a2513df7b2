package daemon

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/internal/openai"
	"github.com/phalanx-llm/phalanx/internal/tlsutil"
)

// apiKeyUnary and apiKeyStream require a valid bearer token on the public
// Inference service; health checks and reflection stay open for probes.
func apiKeyUnary(keys *openai.Keys) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := checkKey(ctx, keys, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

func apiKeyStream(keys *openai.Keys) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := checkKey(ss.Context(), keys, info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
}

func checkKey(ctx context.Context, keys *openai.Keys, method string) error {
	if !strings.HasPrefix(method, "/phalanx.v1.Inference/") {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if key, ok := strings.CutPrefix(v, "Bearer "); ok && keys.Valid(strings.TrimSpace(key)) {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "a valid API key is required: send 'authorization: Bearer KEY' metadata")
}

// methodRoles says which certificate roles may call the methods under a
// service prefix ("/phalanx.v1.Weights/"); methods of other services are
// not checked here.
type methodRoles map[string][]tlsutil.Role

func (m methodRoles) check(ctx context.Context, method string) error {
	for prefix, roles := range m {
		if !strings.HasPrefix(method, prefix) {
			continue
		}
		got := tlsutil.PeerRole(ctx)
		for _, r := range roles {
			if got == r {
				return nil
			}
		}
		return status.Errorf(codes.PermissionDenied, "%s needs a client certificate of role %v (got %q)", method, roles, got)
	}
	return nil
}

// roleInterceptors enforce m on unary and streaming calls.
func roleInterceptors(m methodRoles) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := m.check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := m.check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
