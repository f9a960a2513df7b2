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
)

// DotF32 is the dot product of two float32 vectors of equal length.
func DotF32(a, b []float32) float32 { return dotF32(a, b) }
