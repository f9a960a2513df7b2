// Package openai serves the OpenAI-compatible HTTP API on the coordinator:
// GET /v1/models, POST /v1/completions and POST /v1/chat/completions, with
// server-sent events for streaming exactly as OpenAI sends them (`data:
// {json}` events, then `data: [DONE]`), usage, OpenAI's error shape, and
// bearer-token API keys. Official OpenAI client libraries work against it
// unchanged.
//
// Chat messages are rendered with Phi-2's templates: "chat" (Alice/Bob, the
// default) or "instruct", chosen with the extension field "template"; the
// template's next-turn markers are added to the stop sequences, because
// Phi-2 has no chat tuning and would otherwise write both sides.
//
// # Implementation
//
// server.go routes requests and applies the checks every request passes
// (Host, API key, Content-Type, body size); request.go turns the JSON
// bodies into a [textgen.Request], within the gRPC API's limits;
// completions.go runs the two generation endpoints over the [Generator];
// stream.go frames server-sent events; errors.go is the one mapping from
// gRPC statuses to OpenAI's error shape (429 with Retry-After for
// RESOURCE_EXHAUSTED, 499 for a canceled request); keys.go holds the API
// keys.
package openai
