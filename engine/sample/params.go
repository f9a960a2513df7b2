package sample

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// ErrInvalidParams is wrapped by every error [Params.Validate] returns, so a
// server can map all of them to one "bad request" status.
var ErrInvalidParams = errors.New("sample: invalid parameters")

// Limits for the penalties. OpenAI accepts presence and frequency penalties
// in [-2, 2]; a repetition penalty above 10 only ever produces gibberish.
const (
	MaxRepetitionPenalty = 10
	MaxPresencePenalty   = 2
	MaxFrequencyPenalty  = 2
)

// Params are the sampling settings of one sequence. The zero value is valid
// and means greedy decoding with no penalties: every zero field switches its
// step off. See the package documentation for the order in which they apply.
type Params struct {
	// Temperature divides the logits before the softmax. 0 means greedy:
	// the highest logit wins, ties going to the lower token id.
	Temperature float32

	// TopK keeps only the TopK most likely tokens. 0 turns it off.
	TopK int

	// TopP keeps the smallest set of most likely tokens whose probabilities
	// add up to at least TopP, in (0, 1]. 0 turns it off (same as 1): the
	// zero value of a Go struct must not mean "keep nothing".
	TopP float32

	// MinP drops tokens whose probability is below MinP times that of the
	// most likely token, in [0, 1]. 0 turns it off.
	MinP float32

	// RepetitionPenalty divides positive logits and multiplies negative
	// ones of tokens in the penalty window (prompt and generated tokens).
	// 1 or 0 turns it off; values below 1 encourage repetition.
	RepetitionPenalty float32

	// RepeatLastN limits the repetition penalty window to the last
	// RepeatLastN tokens. 0 means the whole history, prompt included.
	RepeatLastN int

	// PresencePenalty is subtracted once from the logit of every token
	// generated so far, in [-2, 2].
	PresencePenalty float32

	// FrequencyPenalty is subtracted from a token's logit once per time it
	// was generated so far, in [-2, 2].
	FrequencyPenalty float32

	// LogitBias is added to the logits of the given token ids before
	// anything else. -Inf bans a token; a large positive value forces it.
	// Ids at or above the vocabulary size are rejected by the first call to
	// [Sampler.Sample], the first time the vocabulary size is known.
	LogitBias map[int]float32

	// Seed selects the random stream. Equal seeds and equal logits give
	// equal tokens. Choosing a seed for requests that do not carry one is
	// the caller's job.
	Seed uint64
}

// Greedy reports whether p decodes greedily (temperature 0), so that no
// randomness is involved.
func (p Params) Greedy() bool { return p.Temperature == 0 }

// Validate reports the first setting that is out of range, wrapped around
// [ErrInvalidParams]. Bias ids are only checked against the vocabulary size
// by [Sampler.Sample].
func (p Params) Validate() error {
	if err := checkFloat("temperature", p.Temperature); err != nil {
		return err
	}
	if p.Temperature < 0 {
		return invalid("temperature must be >= 0 (0 means greedy), got %v", p.Temperature)
	}
	if p.TopK < 0 {
		return invalid("top_k must be >= 0 (0 means off), got %d", p.TopK)
	}
	if err := checkFloat("top_p", p.TopP); err != nil {
		return err
	}
	if p.TopP < 0 || p.TopP > 1 {
		return invalid("top_p must be in (0, 1] (0 means off), got %v", p.TopP)
	}
	if err := checkFloat("min_p", p.MinP); err != nil {
		return err
	}
	if p.MinP < 0 || p.MinP > 1 {
		return invalid("min_p must be in [0, 1], got %v", p.MinP)
	}
	if err := checkFloat("repetition_penalty", p.RepetitionPenalty); err != nil {
		return err
	}
	if p.RepetitionPenalty < 0 || p.RepetitionPenalty > MaxRepetitionPenalty {
		return invalid("repetition_penalty must be in (0, %d] (0 or 1 means off), got %v",
			MaxRepetitionPenalty, p.RepetitionPenalty)
	}
	if p.RepeatLastN < 0 {
		return invalid("repeat_last_n must be >= 0 (0 means the whole history), got %d", p.RepeatLastN)
	}
	if err := checkFloat("presence_penalty", p.PresencePenalty); err != nil {
		return err
	}
	if math.Abs(float64(p.PresencePenalty)) > MaxPresencePenalty {
		return invalid("presence_penalty must be in [-%d, %d], got %v",
			MaxPresencePenalty, MaxPresencePenalty, p.PresencePenalty)
	}
	if err := checkFloat("frequency_penalty", p.FrequencyPenalty); err != nil {
		return err
	}
	if math.Abs(float64(p.FrequencyPenalty)) > MaxFrequencyPenalty {
		return invalid("frequency_penalty must be in [-%d, %d], got %v",
			MaxFrequencyPenalty, MaxFrequencyPenalty, p.FrequencyPenalty)
	}
	// Sorted so that the error names the same id on every run.
	for _, id := range slices.Sorted(maps.Keys(p.LogitBias)) {
		b := p.LogitBias[id]
		if id < 0 {
			return invalid("logit_bias token id %d is negative", id)
		}
		if math.IsNaN(float64(b)) || math.IsInf(float64(b), 1) {
			return invalid("logit_bias for token %d must be finite or -Inf, got %v", id, b)
		}
	}
	return nil
}

func checkFloat(name string, v float32) error {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return invalid("%s must be a finite number, got %v", name, v)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
}

// RandomSeed draws a seed for a request that names none (from the
// operating system's random source, so concurrent requests differ).
func RandomSeed() uint64 {
	var b [8]byte
	cryptorand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
