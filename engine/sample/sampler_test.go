package sample

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var negInf = float32(math.Inf(-1))

// randomLogits returns vocab logits shaped like a language model's: a
// broad normal background and a few clear favourites.
func randomLogits(rng *rand.Rand, vocab int) []float32 {
	logits := make([]float32, vocab)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 2)
	}
	for range 5 {
		logits[rng.IntN(vocab)] += float32(8 + rng.Float64()*4)
	}
	return logits
}

func mustNew(t testing.TB, p Params, prompt []int) *Sampler {
	t.Helper()
	s, err := New(p, prompt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSample(t testing.TB, s *Sampler, logits []float32) int {
	t.Helper()
	id, err := s.Sample(logits)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func argmax(logits []float32) int {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	return best
}

func TestGreedyTieGoesToLowerID(t *testing.T) {
	for _, tt := range []struct {
		logits []float32
		want   int
	}{
		{[]float32{1, 3, 3, 2}, 1},
		{[]float32{5, 5, 5}, 0},
		{[]float32{negInf, -7, -7}, 1},
		{[]float32{float32(math.NaN()), 0, 0}, 1},
	} {
		s := mustNew(t, Params{}, nil)
		if got := mustSample(t, s, tt.logits); got != tt.want {
			t.Errorf("greedy %v = %d, want %d", tt.logits, got, tt.want)
		}
	}
}

func TestTopKOneIsGreedy(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	topK := mustNew(t, Params{Temperature: 1.5, TopK: 1, Seed: 3}, nil)
	greedy := mustNew(t, Params{}, nil)
	for range 200 {
		logits := randomLogits(rng, 1000)
		// Create ties for the lead now and then.
		if rng.IntN(3) == 0 {
			logits[rng.IntN(1000)] = logits[argmax(logits)]
		}
		a, b := mustSample(t, topK, logits), mustSample(t, greedy, logits)
		if a != b {
			t.Fatalf("top_k=1 chose %d, greedy %d", a, b)
		}
	}
}

// TestSeedDeterminism checks that equal seeds give equal tokens and that
// another seed gives others.
func TestSeedDeterminism(t *testing.T) {
	p := Params{Temperature: 1, TopP: 0.95, TopK: 100, RepetitionPenalty: 1.1, FrequencyPenalty: 0.3, Seed: 12345}
	run := func(p Params) []int {
		rng := rand.New(rand.NewPCG(99, 99)) // the logits, identical for every run
		s := mustNew(t, p, []int{1, 2, 3})
		var out []int
		for range 200 {
			out = append(out, mustSample(t, s, randomLogits(rng, 512)))
		}
		return out
	}
	a, b := run(p), run(p)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different tokens:\n%v\n%v", a, b)
	}
	p.Seed++
	if c := run(p); slices.Equal(a, c) {
		t.Fatalf("seeds %d and %d gave the same 200 tokens", p.Seed-1, p.Seed)
	}
}

// TestSeedGolden pins the tokens of a fixed seed. It fails if the random
// stream, the float derivation or any filter changes behaviour, which
// would change every seeded response users may have stored.
func TestSeedGolden(t *testing.T) {
	logits := make([]float32, 16)
	for i := range logits {
		logits[i] = float32(i%5) * 0.5
	}
	s := mustNew(t, Params{Temperature: 1, Seed: 42}, nil)
	var got []int
	for range 24 {
		got = append(got, mustSample(t, s, logits))
	}
	want := []int{5, 14, 2, 2, 11, 14, 3, 14, 7, 4, 3, 13, 7, 7, 8, 11, 10, 9, 11, 15, 4, 3, 8, 13}
	if !slices.Equal(got, want) {
		t.Errorf("seed 42 gave %v, want %v", got, want)
	}
}

// chiSquare returns the chi-square statistic of observed counts against
// expected probabilities.
func chiSquare(counts []int, probs []float64, draws int) float64 {
	stat := 0.0
	for i, p := range probs {
		if p == 0 {
			continue
		}
		e := p * float64(draws)
		d := float64(counts[i]) - e
		stat += d * d / e
	}
	return stat
}

func softmax(logits []float32, temp float64) []float64 {
	probs := make([]float64, len(logits))
	maxL := math.Inf(-1)
	for _, l := range logits {
		maxL = max(maxL, float64(l))
	}
	sum := 0.0
	for i, l := range logits {
		probs[i] = math.Exp((float64(l) - maxL) / temp)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	return probs
}

// draws samples n tokens with p from fixed logits and counts them.
func draws(t *testing.T, p Params, logits []float32, n int) []int {
	t.Helper()
	s := mustNew(t, p, nil)
	counts := make([]int, len(logits))
	for range n {
		counts[mustSample(t, s, logits)]++
	}
	return counts
}

func TestTemperatureMatchesSoftmax(t *testing.T) {
	logits := []float32{2.0, 1.5, 1.0, 0.3, 0, -0.5, -1, -2}
	const n = 40000
	for _, temp := range []float32{0.5, 1, 2} {
		counts := draws(t, Params{Temperature: temp, Seed: 2024}, logits, n)
		probs := softmax(logits, float64(temp))
		// 7 degrees of freedom: P(chi2 > 24.32) = 0.001. The seed is fixed,
		// so this either always passes or always fails.
		if stat := chiSquare(counts, probs, n); stat > 24.32 {
			t.Errorf("T=%v: chi-square %.2f > 24.32; counts %v, probs %.4f", temp, stat, counts, probs)
		}
	}
}

// TestTopPNucleus uses probabilities 0.4, 0.25, 0.15, 0.1, 0.06, 0.04
// (shuffled, so the nucleus is not a prefix of ids).
func TestTopPNucleus(t *testing.T) {
	probs := map[int]float64{3: 0.4, 0: 0.25, 5: 0.15, 1: 0.1, 4: 0.06, 2: 0.04}
	logits := make([]float32, 6)
	for id, p := range probs {
		logits[id] = float32(math.Log(p))
	}
	tests := []struct {
		topP    float32
		nucleus []int
	}{
		{0.3, []int{3}},
		{0.6, []int{3, 0}},
		{0.66, []int{3, 0, 5}},
		{0.85, []int{3, 0, 5, 1}},
		{0.95, []int{3, 0, 5, 1, 4}},
		{0.97, []int{3, 0, 5, 1, 4, 2}},
		{1, []int{3, 0, 5, 1, 4, 2}},
	}
	const n = 10000
	for _, tt := range tests {
		for _, topK := range []int{0, 5000, 6, 20} { // with and without the top-k path
			counts := draws(t, Params{Temperature: 1, TopP: tt.topP, TopK: topK, Seed: 5}, logits, n)
			want := make([]float64, 6)
			mass := 0.0
			for _, id := range tt.nucleus {
				mass += probs[id]
			}
			for _, id := range tt.nucleus {
				want[id] = probs[id] / mass
			}
			for id, c := range counts {
				if (c > 0) != (want[id] > 0) {
					t.Errorf("top_p=%v top_k=%d: token %d drawn %d times; nucleus %v", tt.topP, topK, id, c, tt.nucleus)
				}
			}
			// len(nucleus)-1 degrees of freedom; 20.52 is the 0.001 point
			// for 4, the most there are.
			if stat := chiSquare(counts, want, n); stat > 20.52 {
				t.Errorf("top_p=%v top_k=%d: chi-square %.2f; counts %v", tt.topP, topK, stat, counts)
			}
		}
	}
}

func TestTopK(t *testing.T) {
	logits := []float32{0.1, 3, 0.2, 2.9, 3, -1, 2.95}
	// Top 3 by logit, ties to the lower id: 1, 4, 6.
	counts := draws(t, Params{Temperature: 1, TopK: 3, Seed: 1}, logits, 5000)
	for id, c := range counts {
		if want := id == 1 || id == 4 || id == 6; (c > 0) != want {
			t.Errorf("token %d drawn %d times", id, c)
		}
	}
}

func TestMinP(t *testing.T) {
	// Probabilities 0.5, 0.3, 0.15, 0.05: min_p 0.2 drops tokens below
	// 0.1, that is only the last one.
	probs := []float64{0.5, 0.3, 0.15, 0.05}
	logits := make([]float32, len(probs))
	for i, p := range probs {
		logits[i] = float32(math.Log(p))
	}
	for _, p := range []Params{
		{Temperature: 1, MinP: 0.2, Seed: 9},
		{Temperature: 1, MinP: 0.2, TopK: 3, Seed: 9},
		{Temperature: 1, MinP: 0.2, TopP: 0.99, Seed: 9},
	} {
		counts := draws(t, p, logits, 20000)
		if counts[3] != 0 {
			t.Errorf("%+v: dropped token drawn %d times", p, counts[3])
		}
		want := []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}
		if stat := chiSquare(counts, want, 20000); stat > 13.82 { // 2 dof, 0.001
			t.Errorf("%+v: chi-square %.2f; counts %v", p, stat, counts)
		}
	}
	// min_p 1 keeps only the best token.
	counts := draws(t, Params{Temperature: 5, MinP: 1, Seed: 9}, logits, 1000)
	if counts[0] != 1000 {
		t.Errorf("min_p=1: counts %v", counts)
	}
}

func TestNaNAndInfLogits(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	logits := []float32{nan, 0, nan, 0.5, negInf}
	for _, p := range []Params{{}, {Temperature: 1}, {Temperature: 1, TopK: 2}, {Temperature: 1, TopP: 0.99}} {
		counts := draws(t, p, logits, 1000)
		if counts[0]+counts[2]+counts[4] != 0 {
			t.Errorf("%+v: NaN or -Inf token drawn: %v", p, counts)
		}
	}
	// +Inf behaves as the largest finite logit.
	counts := draws(t, Params{Temperature: 1}, []float32{inf, 1e30, 0}, 100)
	if counts[0] != 100 {
		t.Errorf("+Inf logit: counts %v", counts)
	}
	for _, p := range []Params{{}, {Temperature: 1}, {Temperature: 0.5, TopK: 3, TopP: 0.5, MinP: 0.1}} {
		for _, logits := range [][]float32{{nan, nan}, {negInf, negInf, negInf}, {nan, negInf}} {
			s := mustNew(t, p, []int{0})
			if _, err := s.Sample(logits); !errors.Is(err, ErrNoCandidates) {
				t.Errorf("%+v, %v: got %v, want ErrNoCandidates", p, logits, err)
			}
			if len(s.history) != 1 {
				t.Errorf("a failed Sample recorded a token")
			}
		}
	}
}

func TestSampleKeepsLogits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	logits := randomLogits(rng, 4096)
	logits[17] = float32(math.NaN())
	orig := slices.Clone(logits)
	s := mustNew(t, Params{Temperature: 0.8, TopK: 50, TopP: 0.9, MinP: 0.01,
		RepetitionPenalty: 1.3, PresencePenalty: 1, FrequencyPenalty: 1,
		LogitBias: map[int]float32{3: 5}}, []int{1, 2, 3, 4, 5})
	for range 10 {
		mustSample(t, s, logits)
	}
	for i := range logits {
		if math.Float32bits(logits[i]) != math.Float32bits(orig[i]) {
			t.Fatalf("logits[%d] changed from %v to %v", i, orig[i], logits[i])
		}
	}
}

func TestVocabErrors(t *testing.T) {
	s := mustNew(t, Params{}, nil)
	if _, err := s.Sample(nil); !errors.Is(err, ErrVocabSize) {
		t.Errorf("empty logits: got %v", err)
	}
	mustSample(t, s, make([]float32, 8))
	if _, err := s.Sample(make([]float32, 9)); !errors.Is(err, ErrVocabSize) {
		t.Errorf("changed vocabulary: got %v", err)
	}
	if err := s.Accept(8); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("Accept(8) with vocabulary 8: got %v", err)
	}
	if err := s.Accept(-1); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("Accept(-1): got %v", err)
	}

	if _, err := New(Params{}, []int{1, -2}); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("negative prompt token: got %v", err)
	}
	s = mustNew(t, Params{}, []int{1, 8})
	if _, err := s.Sample(make([]float32, 8)); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("prompt token 8 with vocabulary 8: got %v", err)
	}
	s = mustNew(t, Params{LogitBias: map[int]float32{8: 1}}, nil)
	if _, err := s.Sample(make([]float32, 8)); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("bias for token 8 with vocabulary 8: got %v", err)
	}
	// Accepting before the first Sample is checked then.
	s = mustNew(t, Params{}, nil)
	if err := s.Accept(100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sample(make([]float32, 8)); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("accepted token 100 with vocabulary 8: got %v", err)
	}
}

// TestSelectTopK compares the heap selection with sorting everything.
func TestSelectTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		vocab := 1 + rng.IntN(300)
		k := 1 + rng.IntN(vocab)
		logits := make([]float32, vocab)
		for i := range logits {
			logits[i] = float32(rng.IntN(20)) // many ties
			if rng.IntN(10) == 0 {
				logits[i] = negInf
			}
		}
		s := mustNew(t, Params{Temperature: 1}, nil)
		if err := s.prepare(vocab); err != nil {
			t.Fatal(err)
		}
		s.processLogits(logits)
		got := slices.Clone(s.selectTopK(k))

		var want []int32
		for i, l := range logits {
			if !math.IsInf(float64(l), -1) {
				want = append(want, int32(i))
			}
		}
		slices.SortStableFunc(want, func(a, b int32) int {
			return -cmpFloat(logits[a], logits[b])
		})
		want = want[:min(k, len(want))]
		if !slices.Equal(got, want) {
			t.Fatalf("vocab %d k %d: got %v, want %v", vocab, k, got, want)
		}
	}
}

func cmpFloat(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestCutNucleus compares the bucketed nucleus with a full sort.
func TestCutNucleus(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		vocab := 1 + rng.IntN(2000)
		logits := make([]float32, vocab)
		scale := []float64{0.001, 0.1, 1, 3, 10, 50}[rng.IntN(6)]
		for i := range logits {
			logits[i] = float32(rng.NormFloat64() * scale)
			if rng.IntN(50) == 0 {
				logits[i] = logits[rng.IntN(i+1)] // ties
			}
			if rng.IntN(100) == 0 {
				logits[i] = negInf
			}
		}
		logits[0] = 1 // at least one candidate
		topP := []float64{0.01, 0.5, 0.9, 0.95, 0.999}[rng.IntN(5)]
		s := mustNew(t, Params{Temperature: 1}, nil)
		if err := s.prepare(vocab); err != nil {
			t.Fatal(err)
		}
		maxLogit := s.processLogits(logits)
		total := 0.0
		var mass [numBuckets]float64
		for i, v := range s.work {
			w := expNonPositive(v - maxLogit)
			s.work[i] = w
			total += w
			mass[bucketOf(w)] += w
		}
		weights := slices.Clone(s.work)
		s.cutNucleus(&mass, topP*total)
		var got []int32
		for i, w := range s.work {
			if w != 0 {
				got = append(got, int32(i))
				if w != weights[i] {
					t.Fatalf("weight of %d changed from %v to %v", i, weights[i], w)
				}
			}
		}

		all := make([]int32, vocab)
		for i := range all {
			all[i] = int32(i)
		}
		slices.SortStableFunc(all, func(a, b int32) int { return -cmpFloat(logits[a], logits[b]) })
		var want []int32
		cum := 0.0
		for _, id := range all {
			if cum >= topP*total || weights[id] == 0 {
				break
			}
			cum += weights[id]
			want = append(want, id)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("vocab %d scale %v top_p %v:\ngot  %v\nwant %v", vocab, scale, topP, got, want)
		}
	}
}

func TestSampleAllocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := randomLogits(rng, 51200)
	for _, p := range []Params{
		{},
		{Temperature: 0.8},
		{Temperature: 0.8, TopP: 0.95},
		{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05},
		{Temperature: 0.8, TopP: 0.9, RepetitionPenalty: 1.1, FrequencyPenalty: 0.5, PresencePenalty: 0.5,
			LogitBias: map[int]float32{1: 2}},
	} {
		s := mustNew(t, p, []int{1, 2, 3})
		s.history = make([]int32, 3, 1000) // so that recording does not grow it
		mustSample(t, s, logits)
		allocs := testing.AllocsPerRun(100, func() { mustSample(t, s, logits) })
		if allocs != 0 {
			t.Errorf("%+v: %v allocations per Sample after the first", p, allocs)
		}
	}
}
