// Package sample turns the logits of one decoding step into the next token,
// and decides when the decoded text must stop.
//
// It owns three things:
//
//   - [Params]: the user's sampling settings (temperature, top-k, top-p,
//     min-p, penalties, logit bias, seed) with [Params.Validate].
//   - [Sampler]: the per-sequence state that applies those settings step by
//     step: the random stream and the token history the penalties need.
//   - [StopMatcher]: stop-string detection on streamed text, holding back
//     text that could still turn into a stop string.
//
// The package is pure computation: it never touches the network, the model
// or the tokenizer, it keeps no global state, and nothing in it panics on
// user input. It uses only the standard library.
//
// # Usage
//
//	p := sample.Params{Temperature: 0.7, TopP: 0.9, Seed: 42}
//	if err := p.Validate(); err != nil {
//		return err // a bad request: report it to the client
//	}
//	s, err := sample.New(p, promptIDs)
//	if err != nil {
//		return err
//	}
//	stop := sample.NewStopMatcher(stops)
//	for n := 0; n < maxTokens; n++ {
//		id, err := s.Sample(logits) // also records id in the history
//		if err != nil {
//			return err
//		}
//		if id == eos {
//			finish = sample.FinishStop
//			break
//		}
//		text, stopped := stop.Push(tokenizer.Piece(id))
//		send(text)
//		if stopped {
//			finish = sample.FinishStop
//			break
//		}
//	}
//	send(stop.Flush()) // held-back text, when generation ended otherwise
//
// # Order of operations
//
// [Sampler.Sample] works on a private copy of the logits and applies, in
// this order (the order of Hugging Face transformers and llama.cpp):
//
//  1. NaN logits become -Inf and +Inf logits become the largest finite
//     float32, so neither can poison the arithmetic below.
//  2. Logit bias: LogitBias[id] is added. A bias of -Inf bans a token; a
//     large positive bias forces it.
//  3. Repetition penalty (CTRL paper, Hugging Face, llama.cpp): every
//     distinct token in the penalty window has its logit divided by the
//     penalty when positive and multiplied by it otherwise. The window is
//     the prompt plus everything generated (RepeatLastN == 0) or the last
//     RepeatLastN tokens of it.
//  4. Presence and frequency penalties as OpenAI defines them:
//     logit -= count*FrequencyPenalty + (count > 0)*PresencePenalty, where
//     count is how often the token was generated so far. Prompt tokens do
//     not count: the OpenAI API documents the penalties in terms of "the
//     text so far" of the completion, and counting a long prompt would make
//     the same setting mean different things for different prompts.
//  5. Temperature 0 means greedy decoding: the highest logit wins, ties go
//     to the lower token id, and steps 6-9 are skipped.
//  6. Temperature: logits are divided by it.
//  7. Top-k: keep the k highest logits (ties to the lower id).
//  8. Top-p (nucleus): among the survivors, keep the smallest set of most
//     probable tokens whose probability adds up to at least TopP (always at
//     least one token).
//  9. Min-p: drop tokens whose probability is below MinP times the highest
//     probability.
//  10. Draw one token from what is left, in proportion to its probability.
//
// Zero values mean "off" for every filter and penalty, so the zero Params is
// valid and means greedy decoding without penalties.
//
// # Determinism
//
// The same Params (including Seed) and the same sequence of logits give the
// same tokens on every platform and every run. The random stream is a PCG
// generator from math/rand/v2 seeded from Seed, and each random float is
// derived from its raw 64-bit output here rather than through rand.Rand, so
// a change in a convenience method cannot change our stream. Every
// non-greedy call consumes exactly one random number. Floating-point work
// uses a portable exp (math.Exp is assembly on some architectures and is
// not bit-identical across them) and explicit conversions that forbid
// fused multiply-add, loops run in token-id order, and ties are broken by
// token id, so neither map iteration order nor scheduling can leak into the
// result.
//
// # Implementation notes
//
// The vocabulary of Phi-2 has 51,200 entries, and sampling runs once per
// generated token, so [Sampler.Sample] allocates its scratch buffers on the
// first call and reuses them; later calls allocate only when the token
// history outgrows its capacity. The vocabulary
// is never fully sorted. Top-k keeps a bounded heap of the k best logits.
// Top-p adds every probability to a bucket named by its binary exponent in
// the same pass that computes it; the buckets before the one where the
// running sum crosses TopP are kept whole and the ones after it dropped,
// the crossing bucket is split again by the top 8 bits of the mantissa, and
// only the tokens of the crossing sub-bucket, whose probabilities lie
// within 0.4% of each other, are sorted. Min-p is a threshold on the
// weights. The draw then walks the surviving tokens in id order.
package sample
