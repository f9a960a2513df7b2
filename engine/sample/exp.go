package sample

import "math"

// Constants of expNonPositive. ln2Hi has its low 32 bits zero, so n*ln2Hi is
// exact for every n it is used with; ln2Lo carries the rest of ln 2.
const (
	log2e = 1.44269504088896340736
	ln2Hi = 6.93147180369123816490e-01
	ln2Lo = 1.90821492927058770002e-10

	// expTableBits sets the size of exp2Table: e^x is reduced to
	// 2^(n/32) * e^r with |r| <= ln2/64.
	expTableBits = 5
	expTableSize = 1 << expTableBits

	// Below this, e^x is subnormal. Such a token is 1e-307 times less
	// likely than the best one, so calling it impossible changes nothing.
	expUnderflow = -708.0
)

// exp2Table[j] is 2^(j/32) rounded to nearest, written in hexadecimal so
// that the values are exact. It is never written to.
var exp2Table = [expTableSize]float64{
	0x1p+0, 0x1.059b0d3158574p+0, 0x1.0b5586cf9890fp+0, 0x1.11301d0125b51p+0,
	0x1.172b83c7d517bp+0, 0x1.1d4873168b9aap+0, 0x1.2387a6e756238p+0, 0x1.29e9df51fdee1p+0,
	0x1.306fe0a31b715p+0, 0x1.371a7373aa9cbp+0, 0x1.3dea64c123422p+0, 0x1.44e086061892dp+0,
	0x1.4bfdad5362a27p+0, 0x1.5342b569d4f82p+0, 0x1.5ab07dd485429p+0, 0x1.6247eb03a5585p+0,
	0x1.6a09e667f3bcdp+0, 0x1.71f75e8ec5f74p+0, 0x1.7a11473eb0187p+0, 0x1.82589994cce13p+0,
	0x1.8ace5422aa0dbp+0, 0x1.93737b0cdc5e5p+0, 0x1.9c49182a3f090p+0, 0x1.a5503b23e255dp+0,
	0x1.ae89f995ad3adp+0, 0x1.b7f76f2fb5e47p+0, 0x1.c199bdd85529cp+0, 0x1.cb720dcef9069p+0,
	0x1.d5818dcfba487p+0, 0x1.dfc97337b9b5fp+0, 0x1.ea4afa2a490dap+0, 0x1.f50765b6e4540p+0,
}

// expNonPositive returns e^x for x <= 0 with a relative error below 1e-14.
//
// It exists because math.Exp is written in assembly on amd64, arm64 and
// s390x and its last bit differs between them; sampling must not. Every
// product is wrapped in an explicit float64 conversion, which the Go
// specification defines as a rounding point, so the compiler cannot fuse it
// into a multiply-add on the architectures that have one.
func expNonPositive(x float64) float64 {
	if !(x >= expUnderflow) { // also catches NaN and -Inf
		return 0
	}
	if x >= 0 {
		return 1
	}
	// x = n*ln2/32 + r with |r| <= ln2/64, so e^x = 2^(n/32) * e^r, and
	// 2^(n/32) = 2^k * 2^(j/32) with n = 32k + j, 0 <= j < 32.
	n := math.Floor(float64(x*(log2e*expTableSize)) + 0.5)
	r := float64(x-float64(n*(ln2Hi/expTableSize))) - float64(n*(ln2Lo/expTableSize))
	ni := int64(n)
	k, j := ni>>expTableBits, ni&(expTableSize-1)
	// Taylor series of e^r to degree 5: the first omitted term is below
	// 0.011^6/720 ≈ 3e-15.
	p := 1.0 / 120
	p = float64(p*r) + 1.0/24
	p = float64(p*r) + 1.0/6
	p = float64(p*r) + 0.5
	p = float64(p*r) + 1
	p = float64(p*r) + 1
	// k is in [-1022, 0] here, so 2^k is a normal float64 built from its
	// exponent bits.
	return float64(p*exp2Table[j]) * math.Float64frombits(uint64(k+1023)<<52)
}
