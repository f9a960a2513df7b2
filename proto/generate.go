// Package proto holds the Phalanx wire contract: the .proto files under
// phalanx/v1 and, in phalanxpb, the Go code generated from them (committed).
// Package wire converts activations between []float32 and the wire's Tensor.
//
// Regenerate after editing a .proto file with
//
//	go generate ./proto/...
//
// which needs protoc on PATH (Debian: protobuf-compiler). check.sh fails
// when the committed code differs from a fresh generation; CI runs it.
package proto

//go:generate ./gen.sh
