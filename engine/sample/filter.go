package sample

import (
	"math"
	"slices"
)

// Buckets of cutNucleus. Bucket b holds the weights in [2^-b, 2^-b+1):
// weights are in (0, 1] and never subnormal, so 1023 buckets cover them all.
// Each bucket splits into 256 sub-buckets by the top 8 bits of the
// mantissa.
const (
	numBuckets    = 1024
	numSubBuckets = 256
)

// draw applies temperature, top-k, top-p and min-p to the processed logits
// in s.work and draws one token. It consumes exactly one random number.
func (s *Sampler) draw(maxLogit float64) int32 {
	p := s.params
	u := s.uniform()
	invTemp := 1 / float64(p.Temperature)
	topP := float64(p.TopP)
	if topP == 0 {
		topP = 1
	}
	// After temperature, the best token has weight exactly e^0 = 1 and
	// every other weight is its probability relative to the best one, so
	// min-p compares weights with MinP directly.
	minP := float64(p.MinP)

	if p.TopK > 0 && p.TopK < s.vocab {
		kept := s.selectTopK(p.TopK)
		total := 0.0
		for _, id := range kept {
			w := expNonPositive(float64(s.work[id]-maxLogit) * invTemp)
			s.work[id] = w
			total += w
		}
		if topP < 1 {
			kept, total = nucleusPrefix(s.work, kept, topP*total)
		}
		if minP > 0 {
			kept, total = minPPrefix(s.work, kept, minP, total)
		}
		return pickFrom(s.work, kept, u*total)
	}

	work := s.work
	total := 0.0
	if topP < 1 {
		var mass [numBuckets]float64
		for i, v := range work {
			w := expNonPositive(float64(v-maxLogit) * invTemp)
			work[i] = w
			total += w
			mass[bucketOf(w)] += w
		}
		s.cutNucleus(&mass, topP*total)
	} else {
		for i, v := range work {
			w := expNonPositive(float64(v-maxLogit) * invTemp)
			work[i] = w
			total += w
		}
		if minP == 0 {
			return pickAbove(work, 0, u*total)
		}
	}
	// Sum what is left in the order pickAbove walks, so that u*kept
	// lands inside its running sum.
	kept := 0.0
	for _, w := range work {
		if w != 0 && w >= minP {
			kept += w
		}
	}
	return pickAbove(work, minP, u*kept)
}

// better orders tokens by descending value, ties to the lower id. It is a
// total order, so any sort built on it gives the same result everywhere.
func better(values []float64, a, b int32) bool {
	va, vb := values[a], values[b]
	return va > vb || (va == vb && a < b)
}

// selectTopK returns the k best tokens by processed logit, best first,
// skipping banned (-Inf) ones. It keeps a min-heap of the k best seen so
// far, so a token that cannot enter costs one comparison: O(n log k) at
// worst and close to O(n) on real logits.
func (s *Sampler) selectTopK(k int) []int32 {
	work := s.work
	heap := s.candidates[:0]
	for i, v := range work {
		id := int32(i)
		if len(heap) < k {
			if math.IsInf(v, -1) {
				continue
			}
			heap = append(heap, id)
			siftUp(work, heap, len(heap)-1)
			continue
		}
		if better(work, id, heap[0]) {
			heap[0] = id
			siftDown(work, heap, 0)
		}
	}
	// Popping the worst to the back leaves the heap sorted best first.
	for n := len(heap) - 1; n > 0; n-- {
		heap[0], heap[n] = heap[n], heap[0]
		siftDown(work, heap[:n], 0)
	}
	return heap
}

// siftUp and siftDown maintain a heap whose root is the worst token.
func siftUp(values []float64, heap []int32, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !better(values, heap[parent], heap[i]) {
			return
		}
		heap[parent], heap[i] = heap[i], heap[parent]
		i = parent
	}
}

func siftDown(values []float64, heap []int32, i int) {
	n := len(heap)
	for {
		worst := i
		if l := 2*i + 1; l < n && better(values, heap[worst], heap[l]) {
			worst = l
		}
		if r := 2*i + 2; r < n && better(values, heap[worst], heap[r]) {
			worst = r
		}
		if worst == i {
			return
		}
		heap[i], heap[worst] = heap[worst], heap[i]
		i = worst
	}
}

// cutNucleus sets to zero the weight of every token in s.work outside the
// top-p nucleus: the shortest run of most likely tokens whose weight
// reaches threshold. mass[b] is the weight of bucket b.
//
// It never sorts the vocabulary. The buckets before the one where the
// running weight crosses threshold are in the nucleus and the buckets
// after it are out; only the crossing bucket needs a closer look. It is
// split into sub-buckets the same way, and only the crossing sub-bucket,
// whose weights are within 0.4% of each other and are usually few, is
// sorted. The nucleus is then the same set a full sort would give, up to
// rounding in the running sums.
func (s *Sampler) cutNucleus(mass *[numBuckets]float64, threshold float64) {
	work := s.work
	last, before, found := crossing(mass[:], 0, threshold)
	if !found {
		return // rounding: the whole distribution is the nucleus
	}
	boundary := s.candidates[:0]
	for i, w := range work {
		if w == 0 {
			continue
		}
		switch b := bucketOf(w); {
		case b > last:
			work[i] = 0
		case b == last:
			boundary = append(boundary, int32(i))
		}
	}

	var subMass [numSubBuckets]float64
	for _, id := range boundary {
		subMass[subBucketOf(work[id])] += work[id]
	}
	lastSub, before, found := crossing(subMass[:], before, threshold)
	if !found {
		return
	}
	// Compact the crossing sub-bucket in place (writes never overtake
	// reads) and drop the sub-buckets after it.
	cross := boundary[:0]
	for _, id := range boundary {
		switch b := subBucketOf(work[id]); {
		case b > lastSub:
			work[id] = 0
		case b == lastSub:
			cross = append(cross, id)
		}
	}
	sortBest(work, cross)
	cum := before
	for n, id := range cross {
		cum += work[id]
		if cum >= threshold {
			for _, dropped := range cross[n+1:] {
				work[dropped] = 0
			}
			return
		}
	}
}

// crossing returns the first index at which start plus the running sum of
// mass reaches threshold, and the running sum before that index. found is
// false when rounding keeps the sum below threshold.
func crossing(mass []float64, start, threshold float64) (index int, before float64, found bool) {
	cum := start
	for i, m := range mass {
		if cum+m >= threshold {
			return i, cum, true
		}
		cum += m
	}
	return len(mass), cum, false
}

// bucketOf returns the bucket of a weight w in (0, 1]: b such that
// 2^-b <= w < 2^-b+1. Zero goes to the last bucket, which is otherwise
// empty.
func bucketOf(w float64) int {
	return 1023 - int(math.Float64bits(w)>>52)&0x7ff
}

// subBucketOf returns the sub-bucket of w within its bucket, 0 for the
// largest weights.
func subBucketOf(w float64) int {
	return numSubBuckets - 1 - int(math.Float64bits(w)>>44)&0xff
}

// nucleusPrefix returns the shortest prefix of sorted (best first) whose
// weight reaches threshold, and that weight. Rounding can leave the sum of
// all of sorted a hair below threshold; then all of it is kept.
func nucleusPrefix(weights []float64, sorted []int32, threshold float64) ([]int32, float64) {
	cum := 0.0
	for n, id := range sorted {
		cum += weights[id]
		if cum >= threshold {
			return sorted[:n+1], cum
		}
	}
	return sorted, cum
}

// minPPrefix drops the tail of sorted (best first) whose weight is below
// minP, the best token's weight being 1. It returns the kept prefix and its
// weight; total is the weight of all of sorted.
func minPPrefix(weights []float64, sorted []int32, minP, total float64) ([]int32, float64) {
	for n, id := range sorted {
		if weights[id] < minP {
			kept := sorted[:n]
			total = 0
			for _, id := range kept {
				total += weights[id]
			}
			return kept, total
		}
	}
	return sorted, total
}

// sortBest sorts ids best first.
func sortBest(weights []float64, ids []int32) {
	slices.SortFunc(ids, func(a, b int32) int {
		switch {
		case better(weights, a, b):
			return -1
		case better(weights, b, a):
			return 1
		}
		return 0
	})
}

// pickFrom returns the first token of ids at which the running weight
// exceeds target. target is u times the weight of ids with u in [0, 1);
// when rounding lets it reach the end, the last token with weight wins.
// It returns -1 only if no token has weight, which the callers rule out.
func pickFrom(weights []float64, ids []int32, target float64) int32 {
	cum := 0.0
	last := int32(-1)
	for _, id := range ids {
		w := weights[id]
		if w == 0 {
			continue
		}
		cum += w
		last = id
		if target < cum {
			return id
		}
	}
	return last
}

// pickAbove is pickFrom over every token, in id order, whose weight is
// positive and at least floor.
func pickAbove(weights []float64, floor, target float64) int32 {
	cum := 0.0
	last := int32(-1)
	for i, w := range weights {
		if w == 0 || w < floor {
			continue
		}
		cum += w
		last = int32(i)
		if target < cum {
			return last
		}
	}
	return last
}
