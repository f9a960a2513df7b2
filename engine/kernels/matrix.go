package kernels

import (
	"fmt"
	"unsafe"
)

// Matrix is a row-major weight matrix in its stored dtype. Data holds exactly
// Rows*Cols elements; it is usually a read-only view of a memory-mapped file
// and is never written.
type Matrix struct {
	DType DType
	Rows  int
	Cols  int
	Data  []byte

	x8    []byte   // Q4_0 or Q8_0 rows interleaved by eight (see Repacked), or nil
	x8mem *offHeap // holds x8's memory
}

// Check reports whether the matrix is well formed.
func (m Matrix) Check() error {
	if m.DType.BlockBytes() == 0 {
		return fmt.Errorf("%w: %v", ErrDType, m.DType)
	}
	if m.Rows < 0 || m.Cols < 0 {
		return fmt.Errorf("kernels: negative shape %dx%d", m.Rows, m.Cols)
	}
	rb := m.DType.RowBytes(m.Cols)
	if rb < 0 {
		return fmt.Errorf("kernels: %v rows of %d values are not whole %d-value blocks", m.DType, m.Cols, m.DType.BlockSize())
	}
	if want := m.Rows * rb; len(m.Data) != want {
		return fmt.Errorf("kernels: %dx%d %v matrix needs %d bytes, has %d", m.Rows, m.Cols, m.DType, want, len(m.Data))
	}
	if m.DType == F32 && uintptr(unsafe.Pointer(unsafe.SliceData(m.Data)))%4 != 0 {
		return fmt.Errorf("kernels: F32 matrix data is not 4-byte aligned")
	}
	if (m.DType == F16 || m.DType == BF16) && uintptr(unsafe.Pointer(unsafe.SliceData(m.Data)))%2 != 0 {
		return fmt.Errorf("kernels: %v matrix data is not 2-byte aligned", m.DType)
	}
	return nil
}

// Bytes is the size of the matrix's data.
func (m Matrix) Bytes() int { return len(m.Data) }

func (m Matrix) f32() []float32 {
	if len(m.Data) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&m.Data[0])), len(m.Data)/4)
}

func (m Matrix) u16() []uint16 {
	if len(m.Data) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&m.Data[0])), len(m.Data)/2)
}

// rowData is the bytes of row r.
func (m Matrix) rowData(r int) []byte {
	rb := m.DType.RowBytes(m.Cols)
	return m.Data[r*rb : (r+1)*rb]
}

// Row widens row r into dst (len Cols).
func (m Matrix) Row(r int, dst []float32) { m.row(&active, r, dst) }

// row is Row with k's kernels.
func (m Matrix) row(k *kernelSet, r int, dst []float32) {
	n := m.Cols
	dst = dst[:n]
	if m.DType.Quantized() {
		DequantizeRow(m.DType, m.rowData(r), dst)
		return
	}
	switch m.DType {
	case F32:
		copy(dst, m.f32()[r*n:(r+1)*n])
	case F16:
		src := m.u16()[r*n : (r+1)*n]
		if k.widenF16 != nil {
			k.widenF16(dst, src)
			return
		}
		for i, h := range src {
			dst[i] = f16Table[h]
		}
	case BF16:
		src := m.u16()[r*n : (r+1)*n]
		for i, b := range src {
			dst[i] = BF16ToF32(b)
		}
	}
}

// dot computes the dot product of row r of m with x with k's kernels.
func (m Matrix) dot(k *kernelSet, r int, x []float32) float32 {
	n := m.Cols
	switch m.DType {
	case F32:
		return k.f32(m.f32()[r*n:(r+1)*n], x)
	case F16:
		return k.f16(m.u16()[r*n:(r+1)*n], x)
	case BF16:
		return k.bf16(m.u16()[r*n:(r+1)*n], x)
	}
	panic("kernels: unchecked matrix dtype") // Check rejects this before any product
}

// rowsPerChunk sizes the unit of parallel work: big enough to amortize the
// hand-off, small enough that both cores finish together.
func rowsPerChunk(rows, threads int) int {
	c := rows / (threads * 16)
	if c < 16 {
		c = 16
	}
	return c
}

// MatVec computes y = m·x + bias for one activation vector (len(x) = Cols,
// len(y) = Rows). bias may be nil.
func MatVec(p *Pool, y []float32, m Matrix, x, bias []float32) {
	MatMul(p, y, m, x, bias, 1)
}

// prefillBlock is how many weight rows are widened to float32 at a time on
// the matrix–matrix path.
const prefillBlock = 8

// MatMul computes y[t] = m·x[t] + bias for tokens activation rows: x is
// tokens×Cols, y is tokens×Rows, both row-major. bias may be nil. It panics
// on shapes that do not match, which is a programming error in the caller.
func MatMul(p *Pool, y []float32, m Matrix, x, bias []float32, tokens int) {
	MatMuls(p, x, tokens, Product{M: m, Y: y, Bias: bias})
}

// Product is one matrix product of MatMuls: Y = M·x + Bias (Bias may be nil).
type Product struct {
	M       Matrix
	Y, Bias []float32
}

// MatMuls computes several products of the same activations x (tokens rows
// of the matrices' common Cols) in one parallel pass: the activations are
// quantized once for all quantized weights, and the threads take the rows
// of every product from one queue, so small products do not each pay a
// hand-off. Every Y gets exactly MatMul's bits.
func MatMuls(p *Pool, x []float32, tokens int, prods ...Product) {
	p.Run(products(p, x, tokens, prods))
}

// Jobs is work of another kind for MatMulsBeside: N jobs, Run(worker, job)
// computing one; they may run in any order, on any thread, and may use
// per-worker scratch of their own.
type Jobs struct {
	N   int
	Run func(worker, job int)
}

// MatMulsBeside is MatMuls with side's jobs in the same queue, spread evenly
// among the products' chunks, so the threads run both kinds at once: work
// bound by memory (attention over KV caches) beside tiles bound by
// arithmetic, where one after the other would leave each resource idle in
// turn. The products get exactly MatMuls' bits.
func MatMulsBeside(p *Pool, side Jobs, x []float32, tokens int, prods ...Product) {
	chunks, run := products(p, x, tokens, prods)
	S, T := int64(side.N), int64(chunks+side.N)
	// Job j is side job ⌊j·S/T⌋ when ⌊(j+1)·S/T⌋ steps past it, else chunk
	// j − ⌊(j+1)·S/T⌋ (the chunks before it less the side jobs up to it).
	p.Run(int(T), func(worker, j int) {
		a, b := int64(j)*S/T, (int64(j)+1)*S/T
		if b > a {
			side.Run(worker, int(a))
			return
		}
		run(worker, j-int(b))
	})
}

// products plans prods (MatMuls) as one queue: its chunks and the function
// computing one.
func products(p *Pool, x []float32, tokens int, prods []Product) (int, func(worker, c int)) {
	k := &active
	var act activations
	var runs []func(worker, c int)
	var ends []int // ends[i]: chunks of products 0…i
	total := 0
	for _, pr := range prods {
		m, y, bias := pr.M, pr.Y, pr.Bias
		if len(x) != tokens*m.Cols || len(y) != tokens*m.Rows || (bias != nil && len(bias) != m.Rows) {
			panic(fmt.Sprintf("kernels: MatMul shapes: m %dx%d, x %d, y %d, bias %d, tokens %d",
				m.Rows, m.Cols, len(x), len(y), len(bias), tokens))
		}
		if tokens == 0 || m.Rows == 0 {
			continue
		}
		chunks, run := m.plan(p, k, y, x, bias, tokens, &act)
		total += chunks
		runs, ends = append(runs, run), append(ends, total)
	}
	if len(runs) == 1 {
		return total, runs[0]
	}
	return total, func(worker, c int) {
		i := 0
		for c >= ends[i] {
			i++
		}
		if i > 0 {
			c -= ends[i-1]
		}
		runs[i](worker, c)
	}
}

// activations holds the forms of one MatMuls call's activations that
// quantized products share, made on first use.
type activations struct {
	xq []byte // Q8_0 rows, nil until made
	xk []byte // Q8_K rows (K-quant weights), nil until made
	x8 []byte // the set's prepared form (prepX8) of each row, back to back, nil until made
}

func (a *activations) q8(p *Pool, k *kernelSet, x []float32, cols, tokens int) []byte {
	if a.xq == nil {
		xrb := Q8_0.RowBytes(cols)
		a.xq = make([]byte, tokens*xrb)
		// Quantize every token row in parallel.
		p.Run(tokens, func(_, t int) {
			k.quantQ8_0(a.xq[t*xrb:(t+1)*xrb], x[t*cols:(t+1)*cols])
		})
	}
	return a.xq
}

// plan returns the chunks of the product y = m·x + bias with k's kernels
// and the function computing one of them; chunks may run in any order, on
// any thread.
func (m Matrix) plan(p *Pool, k *kernelSet, y, x, bias []float32, tokens int, act *activations) (int, func(worker, c int)) {
	chunk := rowsPerChunk(m.Rows, p.Threads())
	chunks := (m.Rows + chunk - 1) / chunk
	cols := m.Cols
	if m.DType == Q8_0 || m.DType == Q4_0 || k.kquant(m.DType) != nil {
		return m.planQ(p, k, y, x, bias, tokens, chunk, chunks, act)
	}
	if tokens == 1 && !m.DType.Quantized() {
		// Decode: stream each weight row once.
		// The four-row kernels take rows a quarter of the chunk apart
		// (r, r+q, r+2q, r+3q for r in the first quarter), so each of the
		// four streams from memory runs on through q consecutive rows: with
		// four adjacent rows, three streams ended every four rows and the
		// prefetchers started them again.
		var rows4 func(out *[4]float32, r, q int)
		switch {
		case m.DType == F16 && k.f16Rows4 != nil:
			w := m.u16()
			rows4 = func(out *[4]float32, r, q int) { k.f16Rows4(out, w[r*cols:(r+3*q+1)*cols], x, q*cols) }
		case m.DType == BF16 && k.bf16Rows4 != nil:
			w := m.u16()
			rows4 = func(out *[4]float32, r, q int) { k.bf16Rows4(out, w[r*cols:(r+3*q+1)*cols], x, q*cols) }
		case m.DType == F32 && k.f32Rows4 != nil:
			w := m.f32()
			rows4 = func(out *[4]float32, r, q int) { k.f32Rows4(out, w[r*cols:(r+3*q+1)*cols], x, q*cols) }
		}
		return chunks, func(worker, c int) {
			lo, hi := c*chunk, min((c+1)*chunk, m.Rows)
			r := lo
			if q := (hi - lo) / 4; rows4 != nil && q > 0 {
				var out [4]float32
				for ; r < lo+q; r++ {
					rows4(&out, r, q)
					for i, v := range out {
						ri := r + i*q
						if bias != nil {
							v += bias[ri]
						}
						y[ri] = v
					}
				}
				r = lo + 4*q
			}
			for ; r < hi; r++ {
				v := m.dot(k, r, x)
				if bias != nil {
					v += bias[r]
				}
				y[r] = v
			}
		}
	}
	// Several tokens (prefill, or a batch of sessions): take a block of rows
	// small enough to stay in cache (16-bit rows widened once, unless the
	// set's F16 tile widens them in registers), and pass every token over
	// it, so each weight is read from memory once per call.
	accN := tilePartScratch(k, tokens)
	f16InRegs := m.DType == F16 && k.tilePartsH != nil && accN > 0 && (k.tilePartsHAlign == 0 || cols%k.tilePartsHAlign == 0)
	wide := 0 // widened rows (16-bit and K-quant weights) per worker
	if m.DType != F32 && !f16InRegs {
		wide = prefillBlock * cols
	}
	return chunks, func(worker, c int) {
		lo, hi := c*chunk, min((c+1)*chunk, m.Rows)
		scratch := p.scratchFor(worker, wide+accN)
		accs := scratch[wide:]
		for r0 := lo; r0 < hi; r0 += prefillBlock {
			nb := min(prefillBlock, hi-r0)
			switch {
			case f16InRegs:
				dotBlockF16(k, y, m.u16()[r0*cols:(r0+nb)*cols], x, bias, r0, nb, m.Rows, cols, tokens, accs)
			case m.DType == F32:
				dotBlock(k, y, m.f32()[r0*cols:(r0+nb)*cols], x, bias, r0, nb, m.Rows, cols, tokens, accs)
			default:
				block := scratch[:nb*cols] // rows r0 … r0+nb-1, back to back
				for i := 0; i < nb; i++ {
					m.row(k, r0+i, block[i*cols:(i+1)*cols])
				}
				dotBlock(k, y, block, x, bias, r0, nb, m.Rows, cols, tokens, accs)
			}
		}
	}
}

// maxTile bounds the pairs of a quantized tile (qTileRows×qTileToks).
const maxTile = 16

// tilePartScratch is the accumulator space the tile parts need for a
// product of tokens tokens with k (0 when k has none or a tile would not
// fill: a set whose dots sum in one chain takes any batch through its rest
// tiles instead).
func tilePartScratch(k *kernelSet, tokens int) int {
	tr, tt := k.tileRows, k.tileTokens
	if k.tileParts == nil || tokens < tt && !k.oneChain {
		return 0
	}
	return (tokens + tt - 1) / tt * prefillBlock / tr * tileAccFloats
}

// wholeRowTokens is the most tokens for which tileBlock treats a product as
// a batch of decode streams rather than a prefill: with few tokens to
// reuse each weight, a product streams its weights from memory, and whole
// rows as one part keep the hardware prefetchers ahead (AMD Zen 5, F16,
// 10,240×2,560 from memory, 2 threads: 8 tokens 133–150 → 154–172 GFLOP/s
// on the 4×3 tiles against 1,024-column parts). A set with batchPart
// takes parts of that many columns instead when a batch passes over a row
// tile three times or more (token tiles, the rest tile included), so that
// a part's rows and tokens stay in L1 between the passes. Prefill keeps
// parts of tilePartLength.
const wholeRowTokens = 33

// tileBlock computes y[t][r0+i] = block row i · x[t] + bias[r0+i] for the
// whole tiles of tr rows among the nb rows of block (each of cols values,
// float32 or F16 for parts; tiles of tr×tt) and every token t, and returns
// how many rows that covered; y has rows values per token. It goes through
// the columns a part at a time (whole rows, batchPart or tilePartLength
// columns: see wholeRowTokens), then the row tiles, then the tokens: a
// part's rows stay in L1 while the token tiles stream from L2, one parts
// call per part and row tile covering the tiles that start at a multiple
// of tt; when tt does not divide the tokens, a last tile
// overlaps the one before it (its pairs are computed twice, with the same
// bits), so no token falls to the slower single dot. Each tile's
// accumulators live in accs (tilePartScratch) between parts; the results
// are the set's dot bits, so the split does not show in the output.
//
// rest, when not nil, computes that last tile over only the tokens left
// (fewer than tt) instead.
func tileBlock[T float32 | uint16](tr, tt, batchPart int, parts func(acc []float32, w []T, x []float32, ld, n, flags, tiles int),
	rest func(acc []float32, w []T, x []float32, ld, n, flags, tokens int),
	y []float32, block []T, x, bias []float32, r0, nb, rows, cols, tokens int, accs []float32) int {
	tiles, regular, rts := (tokens+tt-1)/tt, tokens/tt, nb/tr
	acc := func(ri, j int) []float32 { return accs[(ri*tiles+j)*tileAccFloats:] }
	partLen := tilePartLength
	switch {
	case tokens > wholeRowTokens:
	case tiles > 2 && batchPart > 0:
		partLen = batchPart
	default:
		partLen = max(cols, 1)
	}
	for k0 := 0; k0 == 0 || k0 < cols; k0 += partLen { // one part at least: it ends the tiles
		n, flags := partLen, 0
		if k0 > 0 {
			flags |= tileCont
		}
		if cols-k0 <= partLen {
			n, flags = cols-k0, flags|tileLast
		}
		for ri := 0; ri < rts; ri++ {
			w := block[ri*tr*cols+k0 : (ri+1)*tr*cols]
			parts(acc(ri, 0), w, x[k0:], cols, n, flags, regular)
			switch {
			case regular == tiles:
			case rest != nil:
				rf := flags
				if regular <= 1 {
					rf |= tileNext
				}
				rest(acc(ri, regular), w, x[regular*tt*cols+k0:], cols, n, rf, tokens-regular*tt)
			default:
				parts(acc(ri, regular), w, x[(tokens-tt)*cols+k0:], cols, n, flags, 1)
			}
		}
	}
	for ri := 0; ri < rts; ri++ {
		for j := 0; j < tiles; j++ {
			t, out, n := min(j*tt, tokens-tt), acc(ri, j), tt
			if j == regular && rest != nil {
				t, n = j*tt, tokens-j*tt
			}
			for tk := 0; tk < n; tk++ {
				yt := y[(t+tk)*rows+r0+ri*tr:][:tr]
				for k, v := range out[tk*tr : (tk+1)*tr] {
					if bias != nil {
						v += bias[r0+ri*tr+k]
					}
					yt[k] = v
				}
			}
		}
	}
	return rts * tr
}

// dotBlock computes y[t][r0+i] = block row i · x[t] + bias[r0+i] for the
// nb float32 rows of block (each of cols values) and every token t: whole
// tiles through k's tile parts (tileBlock) when accs has room, the rest by
// single dots, whose bits the tiles give.
func dotBlock(k *kernelSet, y, block, x, bias []float32, r0, nb, rows, cols, tokens int, accs []float32) {
	i := 0
	if len(accs) > 0 {
		i = tileBlock(k.tileRows, k.tileTokens, k.batchPart, k.tileParts, k.tilePartsRest, y, block, x, bias, r0, nb, rows, cols, tokens, accs)
	}
	for ; i < nb; i++ {
		for t := 0; t < tokens; t++ {
			v := k.f32(block[i*cols:(i+1)*cols], x[t*cols:(t+1)*cols])
			if bias != nil {
				v += bias[r0+i]
			}
			y[t*rows+r0+i] = v
		}
	}
}

// dotBlockF16 is dotBlock for F16 rows, which k.tilePartsH widens in
// registers; rows past the last tile go through k.f16, which gives the
// tiles' bits.
func dotBlockF16(k *kernelSet, y []float32, block []uint16, x, bias []float32, r0, nb, rows, cols, tokens int, accs []float32) {
	i := tileBlock(k.tileRows, k.tileTokens, k.batchPart, k.tilePartsH, k.tilePartsHRest, y, block, x, bias, r0, nb, rows, cols, tokens, accs)
	for ; i < nb; i++ {
		for t := 0; t < tokens; t++ {
			v := k.f16(block[i*cols:(i+1)*cols], x[t*cols:(t+1)*cols])
			if bias != nil {
				v += bias[r0+i]
			}
			y[t*rows+r0+i] = v
		}
	}
}

// planQ plans the product with quantized weights: the activations are
// quantized once (to Q8_0, or Q8_K for K-quant weights), then every (row,
// token) is an integer block dot.
// Decode and batched calls use the same dot on the same quantized rows (or
// a tile kernel that gives its bits), so they give the same bits.
func (m Matrix) planQ(p *Pool, k *kernelSet, y, x, bias []float32, tokens, chunk, chunks int, act *activations) (int, func(worker, c int)) {
	cols := m.Cols
	q := k.quant(m.DType)
	var xrb int
	var xq []byte
	if q != nil {
		xrb, xq = Q8_0.RowBytes(cols), act.q8(p, k, x, cols, tokens)
	} else {
		q = k.kquant(m.DType)
		xrb, xq = cols/QKK*q8KBytes, act.q8K(p, k, x, cols, tokens)
	}
	if m.x8 != nil && (k.x8 && m.DType.BlockSize() == QK || k.kx8 && m.DType.BlockSize() == QKK) {
		return m.planX8(p, k, q, y, xq, bias, tokens, act)
	}
	dot, tile := q.dot, q.tile
	// dotRT is one (row, token) product.
	dotRT := func(r, t int) float32 { return dot(m.rowData(r), xq[t*xrb:(t+1)*xrb]) }
	store := func(t, r int, v float32) {
		if bias != nil {
			v += bias[r]
		}
		y[t*m.Rows+r] = v
	}
	tr, tt, blocks := k.qTileRows, k.qTileToks, cols/QK
	if m.DType.BlockSize() == QKK {
		tr, tt, blocks = 1, kTileToks, cols/QKK
	}
	if tile != nil && tokens >= tt {
		// Rows outer, tiles of tr rows × tt tokens inner: the tile's rows
		// stay in L1 while every token passes over them.
		rb := m.DType.RowBytes(cols)
		return chunks, func(worker, c int) {
			lo, hi := c*chunk, min((c+1)*chunk, m.Rows)
			var buf [maxTile]float32
			out := buf[:tr*tt]
			r := lo
			for ; r+tr <= hi; r += tr {
				w := m.Data[r*rb : (r+tr)*rb]
				t := 0
				for ; t+tt <= tokens; t += tt {
					tile(out, w, xq[t*xrb:(t+tt)*xrb], blocks)
					for k, v := range out {
						store(t+k/tr, r+k%tr, v)
					}
				}
				for ; t < tokens; t++ {
					for k := 0; k < tr; k++ {
						store(t, r+k, dotRT(r+k, t))
					}
				}
			}
			for ; r < hi; r++ {
				for t := 0; t < tokens; t++ {
					store(t, r, dotRT(r, t))
				}
			}
		}
	}
	return chunks, func(worker, c int) {
		lo, hi := c*chunk, min((c+1)*chunk, m.Rows)
		for r0 := lo; r0 < hi; r0 += prefillBlock {
			nb := min(prefillBlock, hi-r0)
			for t := 0; t < tokens; t++ {
				for i := 0; i < nb; i++ {
					store(t, r0+i, dotRT(r0+i, t))
				}
			}
		}
	}
}
