// Package phalanxpb is the Go code generated from proto/phalanx/v1/phalanx.proto:
// the messages and gRPC stubs of the public Inference service (client →
// coordinator) and the internal Stage service (coordinator → worker).
//
// Everything here except this file and the tests is generated; edit the
// .proto file and run
//
//	go generate ./proto/...
//
// The meaning of every field is documented in the .proto file (and copied into
// the generated comments). To turn activations into a [Tensor] and back, use
// package github.com/phalanx-llm/phalanx/proto/wire, which validates untrusted
// shapes and sizes.
//
// Conventions: layer ranges are half-open [layer_start, layer_end); zero values
// mean "unset / server default"; activations are raw little-endian bytes, never
// repeated floats.
package phalanxpb
