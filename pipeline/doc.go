// Package pipeline moves activations through a Phalanx cluster. It holds no
// code of its own: each concern is a package below it, and a request
// travels them in one direction, api → controlplane → dataplane → stage.
//
//   - api: the public Inference gRPC service — request conversion, the one
//     set of request limits, and the mapping of errors to gRPC statuses.
//     (internal/openai is the HTTP edge over the same limits.)
//   - controlplane: the coordinator's leadership, planning, probing of
//     workers, routing, admission limits and status; and the worker agent
//     that registers, follows the plan and loads its layers.
//   - dataplane: the scheduler — sessions, continuous batching into
//     micro-batches, chunked prefill, admission, cancellation and replay
//     after a failure.
//   - stage: the step stream between coordinator and worker, both ends of
//     it (the worker's stage server and the coordinator's client).
package pipeline
