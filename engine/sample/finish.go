package sample

// FinishReason says why a sequence ended, spelled as in the OpenAI API's
// finish_reason field.
type FinishReason string

const (
	// FinishStop: the model produced its end-of-sequence token or the text
	// reached a stop string.
	FinishStop FinishReason = "stop"
	// FinishLength: the sequence reached its token limit (max_tokens or the
	// context size).
	FinishLength FinishReason = "length"
)

// String returns the wire spelling of r.
func (r FinishReason) String() string { return string(r) }
