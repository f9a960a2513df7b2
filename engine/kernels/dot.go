package kernels

// The dot products every matrix product is built from, chosen once at
// start-up. Architecture files may replace them with assembly; the generic
// versions in dot_generic.go are the reference they are tested against.
var (
	dotF32  = dotF32Generic
	dotF16  = dotF16Generic
	dotBF16 = dotBF16Generic
	dotQ8_0 = dotQ8_0Generic
	dotQ4_0 = dotQ4_0Generic

	// dotF32Tile, when not nil, computes a tileRows×tileTokens block of
	// dot products at once, sharing loads between them:
	//
	//	out[t*tileRows+i] = dotF32(w[i*n:(i+1)*n], x[t*n:(t+1)*n])
	//
	// bit for bit, so the prefill path gives the decode path's results.
	dotF32Tile func(out *[tileRows * tileTokens]float32, w, x []float32, n int)
)

// The shape of a dotF32Tile block: weight rows × activation rows (tokens).
const (
	tileRows   = 4
	tileTokens = 2
)

// kernelSet is one implementation of every dot kernel; an architecture
// offers the sets its CPU can run (archKernels), best first.
type kernelSet struct {
	name    string
	f32     func(a, b []float32) float32
	f16     func(a []uint16, b []float32) float32
	bf16    func(a []uint16, b []float32) float32
	q8_0    func(w, x []byte) float32
	q4_0    func(w, x []byte) float32
	tileF32 func(out *[tileRows * tileTokens]float32, w, x []float32, n int) // may be nil
}

var genericKernels = kernelSet{
	name: "generic",
	f32:  dotF32Generic,
	f16:  dotF16Generic,
	bf16: dotBF16Generic,
	q8_0: dotQ8_0Generic,
	q4_0: dotQ4_0Generic,
}

// install makes k the package's kernels. Only init and tests call it.
func (k kernelSet) install() {
	dotF32, dotF16, dotBF16 = k.f32, k.f16, k.bf16
	dotQ8_0, dotQ4_0 = k.q8_0, k.q4_0
	dotF32Tile = k.tileF32
}

func init() {
	if sets := archKernels(); len(sets) > 0 {
		sets[0].install()
	}
}

// DotF32 is the dot product of two float32 vectors of equal length.
func DotF32(a, b []float32) float32 { return dotF32(a, b) }
