package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// Span is one sequence's share of a batch: Tokens consecutive rows of the
// hidden states, at the positions that follow what Cache already holds.
type Span struct {
	Cache  *KVCache
	Tokens int
}

// Tracer receives intermediate values of a forward pass, for tests and
// debugging: the layer index, a name ("ln", "q_rot", "k_rot", "v",
// "attn_ctx", "attn_out", "mlp_act", "mlp_out", "out") and the rows of every
// token in the batch. rows is only valid during the call.
type Tracer func(layer int, name string, rows []float32)

// workspace is scratch memory for a batch, grown on demand and reused.
type workspace struct {
	h, q, k, v, ctx, attn, f1, mlp []float32
	cos, sin                       []float32 // rows × rotary/2
	scores                         [][]float32
	wide                           [][]float32 // per thread: a block of one head's F16 keys or values, widened
}

func growTo(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// Embed writes the embedding rows of ids into dst (len(ids) × hidden).
func (m *Model) Embed(ids []int, dst []float32) error {
	if !m.hasEmb {
		return fmt.Errorf("%w: embedding", ErrNotHeld)
	}
	H := m.Config.HiddenSize
	if len(dst) != len(ids)*H {
		return fmt.Errorf("%w: %d ids need %d floats, got %d", ErrInput, len(ids), len(ids)*H, len(dst))
	}
	for _, id := range ids {
		if id < 0 || id >= m.Config.VocabSize {
			return fmt.Errorf("%w: token id %d outside the vocabulary [0, %d)", ErrInput, id, m.Config.VocabSize)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pool == nil { // the weights are unmapped
		return fmt.Errorf("%w: model is closed", ErrNotHeld)
	}
	for i, id := range ids {
		m.embed.Row(id, dst[i*H:(i+1)*H])
	}
	return nil
}

// Logits applies the final LayerNorm and lm_head to rows of hidden states
// (k × hidden) and writes k × vocab logits into dst.
func (m *Model) Logits(hidden, dst []float32) error {
	if !m.hasHead {
		return fmt.Errorf("%w: head", ErrNotHeld)
	}
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	if len(hidden)%H != 0 || len(dst) != len(hidden)/H*V {
		return fmt.Errorf("%w: %d hidden floats and %d logits do not fit hidden %d, vocab %d", ErrInput, len(hidden), len(dst), H, V)
	}
	rows := len(hidden) / H
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pool == nil {
		return fmt.Errorf("%w: model is closed", ErrNotHeld)
	}
	m.ws.h = growTo(m.ws.h, len(hidden))
	kernels.LayerNorm(m.ws.h, hidden, m.finalW, m.finalB, float32(m.Config.LayerNormEps))
	kernels.MatMul(m.pool, dst, m.head, m.ws.h, m.headB, rows)
	return nil
}

// FinalNorm applies the final LayerNorm only (for tests and tracing).
func (m *Model) FinalNorm(hidden, dst []float32) error {
	if !m.hasHead {
		return fmt.Errorf("%w: head", ErrNotHeld)
	}
	kernels.LayerNorm(dst, hidden, m.finalW, m.finalB, float32(m.Config.LayerNormEps))
	return nil
}

// Forward runs the model's layers over a batch in place: hidden holds the
// rows of every span, in span order, and on return holds their outputs.
// Each span's cache grows by its token count. On error nothing changes.
func (m *Model) Forward(hidden []float32, spans []Span) error {
	return m.ForwardTrace(hidden, spans, nil)
}

// ForwardContext is Forward that stops between layers once ctx is done:
// then it returns ctx's error, every cache is as it was before the call and
// hidden holds partial results.
func (m *Model) ForwardContext(ctx context.Context, hidden []float32, spans []Span) error {
	return m.forward(ctx, hidden, spans, nil)
}

// ForwardTrace is Forward with a Tracer.
func (m *Model) ForwardTrace(hidden []float32, spans []Span, trace Tracer) error {
	return m.forward(context.Background(), hidden, spans, trace)
}

func (m *Model) forward(ctx context.Context, hidden []float32, spans []Span, trace Tracer) error {
	cfg := m.Config
	H := cfg.HiddenSize
	rows := 0
	for i, s := range spans {
		if s.Cache == nil || s.Tokens <= 0 {
			return fmt.Errorf("%w: span %d has no cache or no tokens", ErrInput, i)
		}
		if s.Cache.layers != m.Layers || s.Cache.kvDim != cfg.KVDim() {
			return fmt.Errorf("%w: span %d's cache is for layers %v, this model holds %v", ErrInput, i, s.Cache.layers, m.Layers)
		}
		for j := 0; j < i; j++ {
			if spans[j].Cache == s.Cache {
				return fmt.Errorf("%w: spans %d and %d share a cache", ErrInput, j, i)
			}
		}
		if s.Cache.n+s.Tokens > s.Cache.maxLen {
			return fmt.Errorf("%w: span %d: %d positions held, %d more asked, window is %d", ErrContextFull, i, s.Cache.n, s.Tokens, s.Cache.maxLen)
		}
		rows += s.Tokens
	}
	if len(hidden) != rows*H {
		return fmt.Errorf("%w: %d tokens need %d hidden floats, got %d", ErrInput, rows, rows*H, len(hidden))
	}
	if rows == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pool == nil {
		return fmt.Errorf("%w: model is closed", ErrNotHeld)
	}
	for _, s := range spans {
		if err := s.Cache.reserve(s.Tokens); err != nil {
			return err
		}
	}
	m.prepare(spans, rows)
	for li := range m.layers {
		if err := ctx.Err(); err != nil {
			// Layers before li appended to their caches; positions from n
			// on are dropped again.
			for _, s := range spans {
				_ = s.Cache.Truncate(s.Cache.n)
			}
			return err
		}
		m.layer(li, hidden, spans, rows, trace)
	}
	for _, s := range spans {
		s.Cache.n += s.Tokens
	}
	return nil
}

// prepare sizes the workspace and computes the rotary angles of every row.
func (m *Model) prepare(spans []Span, rows int) {
	cfg := m.Config
	ws := &m.ws
	qDim, kvDim := cfg.NumHeads*cfg.HeadDim, cfg.KVDim()
	ws.h = growTo(ws.h, rows*cfg.HiddenSize)
	ws.q = growTo(ws.q, rows*qDim)
	ws.k = growTo(ws.k, rows*kvDim)
	ws.v = growTo(ws.v, rows*kvDim)
	ws.ctx = growTo(ws.ctx, rows*qDim)
	ws.attn = growTo(ws.attn, rows*cfg.HiddenSize)
	ws.f1 = growTo(ws.f1, rows*cfg.IntermediateSize)
	ws.mlp = growTo(ws.mlp, rows*cfg.HiddenSize)
	half := cfg.RotaryDim / 2
	ws.cos = growTo(ws.cos, rows*half)
	ws.sin = growTo(ws.sin, rows*half)
	inv := ropeInvFreq(cfg.RotaryDim, cfg.RopeTheta)
	r := 0
	for _, s := range spans {
		for t := 0; t < s.Tokens; t++ {
			pos := float32(s.Cache.n + t)
			for i, f := range inv {
				a := float64(pos * f) // float32 angle, as HF computes it
				ws.cos[r*half+i] = float32(math.Cos(a))
				ws.sin[r*half+i] = float32(math.Sin(a))
			}
			r++
		}
	}
	if len(ws.scores) != m.pool.Threads() {
		ws.scores = make([][]float32, m.pool.Threads())
		ws.wide = make([][]float32, m.pool.Threads())
		for i := range ws.wide {
			ws.wide[i] = make([]float32, 2*kvBlockPositions*cfg.HeadDim)
		}
	}
}

// ropeInvFreq is 1/theta^(2i/R) in float32, as transformers computes it.
func ropeInvFreq(rotary int, theta float64) []float32 {
	out := make([]float32, rotary/2)
	th := float64(float32(theta))
	for i := range out {
		e := float32(2*i) / float32(rotary)
		out[i] = 1 / float32(math.Pow(th, float64(e)))
	}
	return out
}

func (m *Model) layer(li int, x []float32, spans []Span, rows int, trace Tracer) {
	cfg := m.Config
	l := &m.layers[li]
	ws := &m.ws
	eps := float32(cfg.LayerNormEps)
	layerIdx := m.Layers.Start + li
	emit := func(name string, v []float32) {
		if trace != nil {
			trace(layerIdx, name, v)
		}
	}

	kernels.LayerNorm(ws.h, x, l.lnW, l.lnB, eps)
	emit("ln", ws.h)
	// q, k, v and fc1 all read the normalized input: one pass, which
	// quantizes it once for quantized weights.
	kernels.MatMuls(m.pool, ws.h, rows,
		kernels.Product{M: l.q, Y: ws.q, Bias: l.qB},
		kernels.Product{M: l.k, Y: ws.k, Bias: l.kB},
		kernels.Product{M: l.v, Y: ws.v, Bias: l.vB},
		kernels.Product{M: l.fc1, Y: ws.f1, Bias: l.fc1B})
	if cfg.QKLayerNorm {
		kernels.LayerNorm(ws.q, ws.q, l.qLnW, l.qLnB, eps)
		kernels.LayerNorm(ws.k, ws.k, l.kLnW, l.kLnB, eps)
	}
	m.rotate(ws.q, cfg.NumHeads, rows)
	m.rotate(ws.k, cfg.NumKVHeads, rows)
	emit("q_rot", ws.q)
	emit("k_rot", ws.k)
	emit("v", ws.v)

	// Phi's attention and MLP read the same normalized input, so they are
	// independent: attention (which appends this layer's keys and values
	// to each sequence's cache, then attends; bound by reading the caches)
	// runs in one queue with fc2's tiles (bound by arithmetic in a batch).
	kernels.GELUNewPool(m.pool, ws.f1)
	emit("mlp_act", ws.f1)
	kernels.MatMulsBeside(m.pool, m.attentionJobs(li, spans), ws.f1, rows,
		kernels.Product{M: l.fc2, Y: ws.mlp, Bias: l.fc2B})
	emit("attn_ctx", ws.ctx)
	emit("mlp_out", ws.mlp)
	kernels.MatMul(m.pool, ws.attn, l.dense, ws.ctx, l.denseB, rows)
	emit("attn_out", ws.attn)

	for i := range x[:rows*cfg.HiddenSize] {
		x[i] = (ws.attn[i] + ws.mlp[i]) + x[i] // HF's order: attn + mlp + residual
	}
	emit("out", x)
}

// rotate applies the partial rotary embedding, rotate-half style, to the
// first RotaryDim dims of every head of every row.
func (m *Model) rotate(v []float32, heads, rows int) {
	cfg := m.Config
	D, half := cfg.HeadDim, cfg.RotaryDim/2
	if half == 0 {
		return
	}
	ws := &m.ws
	for r := 0; r < rows; r++ {
		cos := ws.cos[r*half : (r+1)*half]
		sin := ws.sin[r*half : (r+1)*half]
		for h := 0; h < heads; h++ {
			x := v[(r*heads+h)*D : (r*heads+h+1)*D]
			for j := 0; j < half; j++ {
				a, b := x[j], x[j+half]
				x[j] = float32(a*cos[j]) + float32(-b*sin[j])
				x[j+half] = float32(b*cos[j]) + float32(a*sin[j])
			}
		}
	}
}

// attnHeads is how many heads of a span one attention job takes: a block
// holds each head's positions side by side, so eight heads read one run of
// memory eight times as long as one head's (one layer's attention, eight
// streams at 2,000 positions, F16 cache: 10.1–10.6 ms with one head a job,
// 7.9–8.2 with eight; float32 10.0–10.3 and 9.7–10.4).
const attnHeads = 8

// attentionJobs is layer li's attention as jobs for the model's pool: they
// append the spans' new keys and values (ws.k, ws.v) to their caches (or
// attentionJobs does, before returning, when its jobs cannot) and compute
// ctx for every span and head, attnHeads heads of a span a job: causal
// attention of each new token over the cache, scores and softmax in float32
// (an F16 cache's keys and values widened a block at a time).
func (m *Model) attentionJobs(li int, spans []Span) kernels.Jobs {
	cfg := m.Config
	ws := &m.ws
	D, nh := cfg.HeadDim, cfg.NumHeads
	qDim := nh * D
	group := nh / cfg.NumKVHeads
	scale := float32(math.Sqrt(float64(D)))
	firstRow := make([]int, len(spans))
	r := 0
	for i, s := range spans {
		firstRow[i] = r
		r += s.Tokens
	}
	G := attnHeads // heads a job, a divisor of nh
	for nh%G != 0 {
		G--
	}
	// The new positions' keys and values go into the caches first: each
	// job writes the KV heads it reads, just before reading them (in
	// parallel, and into the cache lines it is about to read), when its
	// heads cover whole groups of query heads; otherwise here, in one pass.
	kvDim := cfg.KVDim()
	kv := func(si int) (k, v []float32) {
		r, n := firstRow[si]*kvDim, spans[si].Tokens*kvDim
		return ws.k[r : r+n], ws.v[r : r+n]
	}
	jobsWrite := G%group == 0
	if !jobsWrite {
		for si, s := range spans {
			k, v := kv(si)
			s.Cache.write(li, s.Cache.n, k, v)
		}
	}
	return kernels.Jobs{N: len(spans) * nh / G, Run: func(worker, job int) {
		si, h0 := job/(nh/G), job%(nh/G)*G
		s := spans[si]
		c := s.Cache
		past := c.n
		if jobsWrite {
			k, v := kv(si)
			c.writeHeads(li, past, k, v, h0/group, (h0+G)/group)
		}
		sc, wide := ws.scores[worker], ws.wide[worker]
		stride := past + s.Tokens
		if cap(sc) < G*stride {
			sc = make([]float32, G*stride, G*c.maxLen)
			ws.scores[worker] = sc
		}
		for t := 0; t < s.Tokens; t++ {
			row := firstRow[si] + t
			n := past + t + 1
			per := c.perBlock
			for p := 0; p < n; p += per {
				b := min(per, n-p)
				if p+b < n { // the next block's run of the first head, ahead (docs/kernels.md, "Reading a stream's cache"); the hardware follows on into the other heads
					c.prefetchHead(li, h0/group, p+b, min(per, n-p-b), false)
				}
				for g := 0; g < G; g++ {
					h := h0 + g
					q := ws.q[row*qDim+h*D : row*qDim+(h+1)*D]
					kernels.DotsF32(sc[g*stride+p:g*stride+p+b], q, c.headWide(li, h/group, p, b, false, wide), D)
				}
			}
			c.prefetchHead(li, h0/group, 0, min(per, n), true)
			for g := 0; g < G; g++ {
				scores := sc[g*stride : g*stride+n]
				kernels.Div(scores, scale)
				kernels.Softmax(scores)
				h := h0 + g
				clear(ws.ctx[row*qDim+h*D : row*qDim+(h+1)*D])
			}
			for p := 0; p < n; p += per {
				b := min(per, n-p)
				if p+b < n {
					c.prefetchHead(li, h0/group, p+b, min(per, n-p-b), true)
				}
				for g := 0; g < G; g++ {
					h := h0 + g
					out := ws.ctx[row*qDim+h*D : row*qDim+(h+1)*D]
					kernels.AxpyRows(out, sc[g*stride+p:g*stride+p+b], c.headWide(li, h/group, p, b, true, wide), D)
				}
			}
		}
	}}
}
