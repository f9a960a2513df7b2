// Package wire converts activations between []float32 and the wire's
// [phalanxpb.Tensor]: raw little-endian bytes with a dtype and a shape beside
// them, never repeated floats.
//
// # Usage
//
// Sending hidden states of rows tokens (hidden = 2560 for Phi-2):
//
//	t, err := wire.EncodeF32(rows, hidden, h, phalanxpb.DType_DTYPE_F16)
//
// Receiving them from a peer, reusing a scratch buffer:
//
//	buf, rows, err := wire.DecodeF32(req.GetHidden(), hidden, maxRows, buf)
//	if err != nil {
//		return status.Error(codes.InvalidArgument, err.Error())
//	}
//
// A hot loop can keep one Tensor per link and refill it with
// [EncodeF32Into], which reuses its byte buffer.
//
// # Untrusted input
//
// [DecodeF32] treats the Tensor as hostile: the dtype must be known, the shape
// must have exactly two dimensions with 0 ≤ rows ≤ maxRows and cols equal to
// what the caller expects, and the data must be exactly rows·cols·size bytes,
// with every product checked for overflow before anything is allocated. Every
// error wraps [ErrShape] or [ErrDType], so a gRPC server maps all of them to
// InvalidArgument with one errors.Is. Values are not inspected: NaN and
// infinities pass through, as they would inside a single process.
//
// # Implementation notes
//
// F32 in either direction is a single memmove on little-endian machines
// (the float32 slice is viewed as bytes, never the other way round, so a
// misaligned byte buffer from the decoder is harmless); big-endian machines
// and builds with -tags purego use encoding/binary, which f32_generic.go
// always builds and the tests compare with the fast path. F16 narrows with
// round-to-nearest-even in its own loop (f16.go), which matches
// engine/kernels.F32ToF16 bit for bit, and widens through the kernels' lookup
// table, so the wire and the weight loader agree on every value.
// Nothing allocates per element; decoding into a large enough buffer does not
// allocate at all.
//
// This package never touches the network.
package wire
