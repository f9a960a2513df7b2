package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
)

// StatusOf maps a generation error to a gRPC status.
func StatusOf(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, textgen.ErrPromptTooLong), errors.Is(err, textgen.ErrBadRequest), errors.Is(err, sample.ErrInvalidParams),
		errors.Is(err, sample.ErrTokenOutOfRange):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, stage.ErrDown):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
