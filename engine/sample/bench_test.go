package sample

import (
	"math/rand/v2"
	"testing"
)

// phi2Vocab is Phi-2's vocabulary size, the size that matters.
const phi2Vocab = 51200

func BenchmarkSample(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	peaked := randomLogits(rng, phi2Vocab)
	// A flat distribution is the worst case for top-p: its nucleus holds
	// most of the vocabulary.
	flat := make([]float32, phi2Vocab)
	for i := range flat {
		flat[i] = float32(rng.NormFloat64() * 0.5)
	}
	cases := []struct {
		name   string
		p      Params
		logits []float32
	}{
		{"greedy", Params{}, peaked},
		{"temperature", Params{Temperature: 0.8}, peaked},
		{"top_k=40+top_p=0.95+T=0.8", Params{Temperature: 0.8, TopK: 40, TopP: 0.95}, peaked},
		{"top_p=0.95+T=0.8", Params{Temperature: 0.8, TopP: 0.95}, peaked},
		{"top_p=0.95+T=0.8/flat", Params{Temperature: 0.8, TopP: 0.95}, flat},
		{"min_p=0.05+T=0.8", Params{Temperature: 0.8, MinP: 0.05}, peaked},
		{"penalties+top_p=0.9", Params{Temperature: 0.8, TopP: 0.9, RepetitionPenalty: 1.1,
			PresencePenalty: 0.5, FrequencyPenalty: 0.5}, peaked},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			prompt := make([]int, 512)
			for i := range prompt {
				prompt[i] = rng.IntN(phi2Vocab)
			}
			s, err := New(c.p, prompt)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sample(c.logits); err != nil {
					b.Fatal(err)
				}
				// Keep the history at prompt + 1024 tokens, a realistic
				// window, however long the benchmark runs.
				if len(s.history) > len(prompt)+1024 {
					s.history = s.history[:len(prompt)]
					for _, id := range s.generatedIDs {
						s.generatedCount[id] = 0
					}
					s.generatedIDs = s.generatedIDs[:0]
				}
			}
		})
	}
}

func BenchmarkStopMatcher(b *testing.B) {
	pieces := []string{"The", " answer", " is", " simple", ":", " use", " a", " map", ".", "\n"}
	b.ReportAllocs()
	for b.Loop() {
		m := NewStopMatcher([]string{"\nInstruct:", "\nOutput:"})
		for _, p := range pieces {
			m.Push(p)
		}
		m.Flush()
	}
}
