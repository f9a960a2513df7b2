package sample

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

var (
	// ErrNoCandidates is returned by [Sampler.Sample] when every token has
	// a logit of -Inf or NaN after bias and penalties, so nothing can be
	// drawn. A bias that bans every token is the usual cause.
	ErrNoCandidates = errors.New("sample: every token is banned (all logits are -Inf or NaN)")

	// ErrTokenOutOfRange is returned when a token id in the history or the
	// logit bias is negative or not below the vocabulary size.
	ErrTokenOutOfRange = errors.New("sample: token id out of vocabulary range")

	// ErrVocabSize is returned when the logits are empty or their length
	// differs from the first call's.
	ErrVocabSize = errors.New("sample: logits length does not match vocabulary size")
)

// pcgStream is the second PCG seed word. It is fixed so that Params.Seed
// alone selects the stream; changing it changes every seeded output.
const pcgStream = 0x9e3779b97f4a7c15

// Sampler draws the tokens of one sequence. It holds the random stream and
// the token history, so each sequence needs its own Sampler. A Sampler is
// not safe for concurrent use.
//
// [Sampler.Sample] records the token it returns, so a plain decoding loop
// needs nothing else. Tokens chosen some other way (forced by the server,
// accepted from a draft model) must be recorded with [Sampler.Accept] so
// that the penalties see them.
type Sampler struct {
	params Params
	rng    rand.PCG

	// history is the prompt followed by every recorded token; the
	// repetition penalty reads its tail.
	history []int32
	// promptLen tells prompt tokens, which the presence and frequency
	// penalties ignore, from generated ones.
	promptLen int

	// Everything below is sized on the first Sample call, when the
	// vocabulary size becomes known.
	vocab int
	// bias is LogitBias, copied by New and sorted by id.
	bias []biasEntry
	// generatedCount[id] is how often id was generated; generatedIDs lists
	// each generated id once, in order of first appearance, so that the
	// penalties cost O(distinct tokens), not O(vocab).
	generatedCount []int32
	generatedIDs   []int32
	// seen marks ids already penalised in this step (one bit per id).
	seen []uint64
	// work holds the processed logits, then the unnormalised
	// probabilities, of the current step.
	work []float64
	// candidates holds the ids that survive the filters.
	candidates []int32
}

type biasEntry struct {
	id   int32
	bias float64
}

// New returns a Sampler for a sequence whose prompt is prompt. Prompt tokens
// count for the repetition penalty (as in Hugging Face and llama.cpp) but
// not for the presence and frequency penalties (as in the OpenAI API). New
// validates p.
func New(p Params, prompt []int) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s := &Sampler{
		params:    p,
		history:   make([]int32, 0, len(prompt)+256),
		promptLen: len(prompt),
	}
	s.rng.Seed(p.Seed, pcgStream)
	// Copied, so that the caller may reuse the map.
	for id, b := range p.LogitBias {
		s.bias = append(s.bias, biasEntry{id: int32(min(id, math.MaxInt32)), bias: float64(b)})
	}
	slices.SortFunc(s.bias, func(a, b biasEntry) int { return cmp.Compare(a.id, b.id) })
	for _, id := range prompt {
		if id < 0 || id > math.MaxInt32 {
			return nil, fmt.Errorf("%w: prompt token %d", ErrTokenOutOfRange, id)
		}
		s.history = append(s.history, int32(id))
	}
	return s, nil
}

// Accept records a token that was not returned by [Sampler.Sample], so
// that the penalties take it into account. Do not call it for tokens Sample
// returned: those are already recorded.
func (s *Sampler) Accept(id int) error {
	if id < 0 || id > math.MaxInt32 || (s.vocab > 0 && id >= s.vocab) {
		return fmt.Errorf("%w: accepted token %d", ErrTokenOutOfRange, id)
	}
	s.record(int32(id))
	return nil
}

func (s *Sampler) record(id int32) {
	s.history = append(s.history, id)
	if s.generatedCount == nil {
		return // counted from history when the vocabulary becomes known
	}
	if s.generatedCount[id] == 0 {
		s.generatedIDs = append(s.generatedIDs, id)
	}
	s.generatedCount[id]++
}

// Sample draws the next token from logits, records it in the history and
// returns it. logits is not modified. Errors are [ErrVocabSize],
// [ErrTokenOutOfRange] (a history or bias id that does not fit the
// vocabulary, detected on the first call) and [ErrNoCandidates]; after an
// error nothing is recorded and the random stream has not advanced.
func (s *Sampler) Sample(logits []float32) (int, error) {
	if err := s.prepare(len(logits)); err != nil {
		return 0, err
	}
	maxLogit := s.processLogits(logits)
	if math.IsInf(maxLogit, -1) {
		return 0, ErrNoCandidates
	}
	var id int32
	if s.params.Greedy() {
		id = s.argmax(maxLogit)
	} else {
		id = s.draw(maxLogit)
	}
	if id < 0 {
		// The best token always has weight 1 and survives every filter.
		return 0, errors.New("sample: internal error: no token survived the filters")
	}
	s.record(id)
	return int(id), nil
}

// prepare sizes the scratch buffers on the first call and checks the ids
// that could not be checked before the vocabulary size was known.
func (s *Sampler) prepare(vocab int) error {
	if s.vocab != 0 {
		if vocab != s.vocab {
			return fmt.Errorf("%w: got %d logits, want %d", ErrVocabSize, vocab, s.vocab)
		}
		return nil
	}
	if vocab == 0 || vocab > math.MaxInt32 {
		return fmt.Errorf("%w: got %d logits", ErrVocabSize, vocab)
	}
	for _, id := range s.history {
		if int(id) >= vocab {
			return fmt.Errorf("%w: history token %d, vocabulary size %d", ErrTokenOutOfRange, id, vocab)
		}
	}
	if n := len(s.bias); n > 0 && int(s.bias[n-1].id) >= vocab {
		return fmt.Errorf("%w: logit_bias token %d, vocabulary size %d", ErrTokenOutOfRange, s.bias[n-1].id, vocab)
	}

	s.vocab = vocab
	s.work = make([]float64, vocab)
	s.candidates = make([]int32, 0, vocab)
	if s.params.RepetitionPenalty != 0 && s.params.RepetitionPenalty != 1 {
		s.seen = make([]uint64, (vocab+63)/64)
	}
	s.generatedCount = make([]int32, vocab)
	for _, id := range s.history[s.promptLen:] {
		if s.generatedCount[id] == 0 {
			s.generatedIDs = append(s.generatedIDs, id)
		}
		s.generatedCount[id]++
	}
	return nil
}

// processLogits copies logits into s.work, applies bias and penalties, and
// returns the largest result (-Inf when every token is banned).
func (s *Sampler) processLogits(logits []float32) float64 {
	work := s.work
	maxLogit := math.Inf(-1)
	for i, l := range logits {
		v := float64(l)
		switch {
		case v != v: // NaN
			v = math.Inf(-1)
		case v > math.MaxFloat32:
			v = math.MaxFloat32
		}
		work[i] = v
		if v > maxLogit {
			maxLogit = v
		}
	}
	touched := len(s.bias) > 0
	for _, b := range s.bias {
		work[b.id] += b.bias
	}
	if s.seen != nil && len(s.history) > 0 {
		s.applyRepetitionPenalty()
		touched = true
	}
	if len(s.generatedIDs) > 0 && (s.params.PresencePenalty != 0 || s.params.FrequencyPenalty != 0) {
		presence := float64(s.params.PresencePenalty)
		frequency := float64(s.params.FrequencyPenalty)
		for _, id := range s.generatedIDs {
			work[id] -= float64(float64(s.generatedCount[id])*frequency) + presence
		}
		touched = true
	}
	if touched {
		// A penalty may have lowered the best token: look again.
		maxLogit = math.Inf(-1)
		for _, v := range work {
			if v > maxLogit {
				maxLogit = v
			}
		}
	}
	return maxLogit
}

// applyRepetitionPenalty penalises each distinct token of the window once.
func (s *Sampler) applyRepetitionPenalty() {
	window := s.history
	if n := s.params.RepeatLastN; n > 0 && n < len(window) {
		window = window[len(window)-n:]
	}
	penalty := float64(s.params.RepetitionPenalty)
	for _, id := range window {
		word, bit := id/64, uint64(1)<<(id%64)
		if s.seen[word]&bit != 0 {
			continue
		}
		s.seen[word] |= bit
		if v := s.work[id]; v > 0 {
			s.work[id] = v / penalty
		} else {
			s.work[id] = v * penalty
		}
	}
	for _, id := range window {
		s.seen[id/64] = 0
	}
}

// argmax returns the lowest id whose processed logit equals maxLogit.
func (s *Sampler) argmax(maxLogit float64) int32 {
	for i, v := range s.work {
		if v == maxLogit {
			return int32(i)
		}
	}
	return 0 // unreachable: maxLogit came from s.work
}

// uniform returns the next random number in [0, 1), built from the top 53
// bits of the raw PCG output so that it depends on nothing but the PCG
// algorithm.
func (s *Sampler) uniform() float64 {
	return float64(s.rng.Uint64()>>11) * 0x1p-53
}
