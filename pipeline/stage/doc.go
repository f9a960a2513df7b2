// Package stage is the transport between the coordinator and a worker's
// layers: both ends of the step stream. Server runs on a worker over the
// layers it holds and the KV caches of the sessions that crossed it; Client
// is the coordinator's end of one worker's stream.
//
// # The step protocol
//
// A coordinator keeps one bidirectional Stage.Process stream per worker. A
// step is one micro-batch: the hidden states of several sessions'
// consecutive tokens, each session named with its first position, as raw
// little-endian f32 or f16 rows. The worker runs its layers over the whole
// batch at once, so every weight is read once for all sessions, appends to
// each session's KV cache, and answers with the output rows in the same
// order. Steps on a stream are answered in order.
//
// A step either applies completely or not at all: a worker that rejects a
// step (wrong epoch or layer range, a malformed tensor, a session it cannot
// hold) answers it with an error code and leaves every cache unchanged, and
// the stream stays open for the next step.
//
// Positions make the protocol idempotent: a span whose position is below
// what the worker holds truncates the cache first, so the coordinator can
// replay a session from any earlier position (after a failure, or into a
// new stage) without a separate reset message.
//
// # Memory
//
// A worker's KV caches live under a byte budget. A step that would exceed
// it is answered RESOURCE_EXHAUSTED; sessions are freed by Release and, when
// forgotten, after an idle timeout.
package stage
