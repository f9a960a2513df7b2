package sample

import (
	"errors"
	"slices"
	"testing"
)

// processed runs the bias and penalty stage on logits and returns the
// result, as float32 for easy comparison with hand-computed values.
func processed(t *testing.T, s *Sampler, logits []float32) []float32 {
	t.Helper()
	if err := s.prepare(len(logits)); err != nil {
		t.Fatal(err)
	}
	s.processLogits(logits)
	out := make([]float32, len(logits))
	for i, v := range s.work {
		out[i] = float32(v)
	}
	return out
}

func TestRepetitionPenalty(t *testing.T) {
	logits := []float32{2, -1, 0.5, 3, 0}
	// Tokens 0, 1 and 4 are in the prompt; 0 twice, which must not matter.
	s := mustNew(t, Params{RepetitionPenalty: 2}, []int{0, 1, 0, 4})
	got := processed(t, s, logits)
	want := []float32{1, -2, 0.5, 3, 0}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Generated tokens count too.
	if err := s.Accept(3); err != nil {
		t.Fatal(err)
	}
	got = processed(t, s, logits)
	want = []float32{1, -2, 0.5, 1.5, 0}
	if !slices.Equal(got, want) {
		t.Errorf("after Accept(3): got %v, want %v", got, want)
	}
}

func TestRepeatLastN(t *testing.T) {
	logits := []float32{2, -1, 0.5, 3}
	s := mustNew(t, Params{RepetitionPenalty: 2, RepeatLastN: 2}, []int{0, 1, 2})
	// The window is the last two tokens: 1 and 2.
	want := []float32{2, -2, 0.25, 3}
	if got := processed(t, s, logits); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// A sampled token enters the window and pushes token 1 out.
	s.Sample([]float32{0, 0, 0, 9})
	want = []float32{2, -1, 0.25, 1.5}
	if got := processed(t, s, logits); !slices.Equal(got, want) {
		t.Errorf("after sampling 3: got %v, want %v", got, want)
	}
}

func TestPresenceAndFrequencyPenalties(t *testing.T) {
	logits := []float32{1, 1, 1, 1}
	// The prompt's tokens do not count.
	s := mustNew(t, Params{PresencePenalty: 0.5, FrequencyPenalty: 0.25}, []int{0, 0, 0, 1})
	for _, id := range []int{1, 2, 2, 2} {
		if err := s.Accept(id); err != nil {
			t.Fatal(err)
		}
	}
	// 0: never generated. 1: once, 1 - (0.25 + 0.5). 2: three times,
	// 1 - (0.75 + 0.5). 3: never.
	want := []float32{1, 0.25, -0.25, 1}
	if got := processed(t, s, logits); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Sample records its own tokens: greedy picks 0, which now counts.
	if id := mustSample(t, s, logits); id != 0 {
		t.Fatalf("sampled %d, want 0", id)
	}
	want = []float32{0.25, 0.25, -0.25, 1}
	if got := processed(t, s, logits); !slices.Equal(got, want) {
		t.Errorf("after sampling 0: got %v, want %v", got, want)
	}
}

func TestPenaltiesCombined(t *testing.T) {
	// Bias first, then repetition, then presence/frequency:
	// token 0: (1 + 1) / 2 - (0.5 + 1) = -0.5
	// token 1: (-1 + 0) * 2 = -2 (prompt only: no presence/frequency)
	// token 2: 3 untouched
	logits := []float32{1, -1, 3}
	s := mustNew(t, Params{
		LogitBias:         map[int]float32{0: 1},
		RepetitionPenalty: 2,
		PresencePenalty:   1,
		FrequencyPenalty:  0.5,
	}, []int{1})
	if err := s.Accept(0); err != nil {
		t.Fatal(err)
	}
	want := []float32{-0.5, -2, 3}
	if got := processed(t, s, logits); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLogitBias(t *testing.T) {
	logits := []float32{5, 1, 0, -3}
	// -Inf bans the favourite, even greedily.
	s := mustNew(t, Params{LogitBias: map[int]float32{0: negInf}}, nil)
	if id := mustSample(t, s, logits); id != 1 {
		t.Errorf("banned token: greedy chose %d, want 1", id)
	}
	counts := draws(t, Params{Temperature: 2, LogitBias: map[int]float32{0: negInf}}, logits, 2000)
	if counts[0] != 0 {
		t.Errorf("banned token drawn %d times", counts[0])
	}
	// A large bias forces a token.
	counts = draws(t, Params{Temperature: 1.5, TopP: 0.9, LogitBias: map[int]float32{3: 100}}, logits, 2000)
	if counts[3] != 2000 {
		t.Errorf("forced token drawn %d of 2000 times", counts[3])
	}
	// Banning everything is an error, not a token.
	s = mustNew(t, Params{Temperature: 1, LogitBias: map[int]float32{0: negInf, 1: negInf, 2: negInf, 3: negInf}}, nil)
	if _, err := s.Sample(logits); !errors.Is(err, ErrNoCandidates) {
		t.Errorf("all banned: got %v, want ErrNoCandidates", err)
	}
}
