package wire

import (
	"errors"
	"fmt"
	"math"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Errors wrapped by everything this package returns.
var (
	// ErrShape reports a tensor whose dimensions or byte length do not match
	// what was expected, or do not agree with each other.
	ErrShape = errors.New("wire: bad tensor shape")
	// ErrDType reports a tensor dtype this package does not convert.
	ErrDType = errors.New("wire: unsupported tensor dtype")
)

// Q8Block is the number of values of one DTYPE_Q8 block, stored in
// Q8BlockBytes bytes (a binary16 scale and 32 int8).
const (
	Q8Block      = 32
	Q8BlockBytes = 2 + Q8Block
)

// rowBytes is the number of bytes of one row of cols values of dt, or false
// when dt is not supported or cols does not suit it.
func rowBytes(dt phalanxpb.DType, cols int) (int, bool) {
	if cols < 1 || cols > math.MaxInt/4 {
		return 0, false
	}
	switch dt {
	case phalanxpb.DType_DTYPE_F32:
		return 4 * cols, true
	case phalanxpb.DType_DTYPE_F16:
		return 2 * cols, true
	case phalanxpb.DType_DTYPE_Q8:
		if cols%Q8Block != 0 {
			return 0, false
		}
		return cols / Q8Block * Q8BlockBytes, true
	}
	return 0, false
}

// byteLen returns rows·perRow, or false when it overflows an int.
func byteLen(rows, perRow int) (int, bool) {
	if perRow != 0 && rows > math.MaxInt/perRow {
		return 0, false
	}
	return rows * perRow, true
}

// known says whether this package converts dt.
func known(dt phalanxpb.DType) bool {
	_, ok := rowBytes(dt, Q8Block)
	return ok
}

// EncodeF32 returns a [rows, cols] tensor of dtype dt holding v, which must
// have exactly rows·cols elements in row-major order. F16 rounds to the
// nearest half, ties to even; values beyond its range become infinities.
// Q8 quantizes each block of 32 values of a row (cols must be a multiple of
// 32) to int8 under a binary16 scale.
func EncodeF32(rows, cols int, v []float32, dt phalanxpb.DType) (*phalanxpb.Tensor, error) {
	t := new(phalanxpb.Tensor)
	if err := EncodeF32Into(t, rows, cols, v, dt); err != nil {
		return nil, err
	}
	return t, nil
}

// EncodeF32Into is [EncodeF32] writing into an existing tensor, reusing the
// capacity of its Shape and Data, so a sender that keeps one Tensor per link
// does not allocate per step. t must not be shared with a message still
// being marshalled. On error t is left unchanged.
func EncodeF32Into(t *phalanxpb.Tensor, rows, cols int, v []float32, dt phalanxpb.DType) error {
	if !known(dt) {
		return fmt.Errorf("%w: %v", ErrDType, dt)
	}
	if rows < 0 || cols < 1 {
		return fmt.Errorf("%w: [%d, %d]", ErrShape, rows, cols)
	}
	per, ok := rowBytes(dt, cols)
	if !ok {
		return fmt.Errorf("%w: rows of %d values cannot be %v", ErrShape, cols, dt)
	}
	n, ok := byteLen(rows, per)
	if !ok || rows*cols != len(v) {
		return fmt.Errorf("%w: [%d, %d] does not hold %d values", ErrShape, rows, cols, len(v))
	}
	data := t.Data
	if cap(data) < n {
		data = make([]byte, n)
	}
	data = data[:n]
	switch dt {
	case phalanxpb.DType_DTYPE_F32:
		putF32(data, v)
	case phalanxpb.DType_DTYPE_F16:
		putF16(data, v)
	default:
		putQ8(data, v)
	}
	t.Dtype = dt
	t.Shape = append(t.Shape[:0], int64(rows), int64(cols))
	t.Data = data
	return nil
}

// DecodeF32 validates t as a [rows, wantCols] tensor with 0 ≤ rows ≤ maxRows
// and returns its values as float32 in dst[:rows·wantCols], reusing dst when
// it is large enough and allocating otherwise. t is untrusted: see the
// package documentation for what is checked. Errors wrap [ErrShape] or
// [ErrDType]; wantCols < 1 or maxRows < 0 is reported as [ErrShape] too.
func DecodeF32(t *phalanxpb.Tensor, wantCols, maxRows int, dst []float32) (out []float32, rows int, err error) {
	rows, err = check(t, wantCols, maxRows)
	if err != nil {
		return dst, 0, err
	}
	count := rows * wantCols
	if cap(dst) < count {
		dst = make([]float32, count)
	}
	dst = dst[:count]
	switch t.GetDtype() {
	case phalanxpb.DType_DTYPE_F32:
		getF32(dst, t.GetData())
	case phalanxpb.DType_DTYPE_F16:
		getF16(dst, t.GetData())
	default:
		getQ8(dst, t.GetData())
	}
	return dst, rows, nil
}

// Check validates t as a [rows, cols] tensor of dtype dt without decoding
// it, so a stage's reply can be forwarded to the next stage as it came.
func Check(t *phalanxpb.Tensor, rows, cols int, dt phalanxpb.DType) error {
	got, err := check(t, cols, rows)
	if err != nil {
		return err
	}
	if got != rows {
		return fmt.Errorf("%w: %d rows, want %d", ErrShape, got, rows)
	}
	if t.GetDtype() != dt {
		return fmt.Errorf("%w: %v, want %v", ErrDType, t.GetDtype(), dt)
	}
	return nil
}

func check(t *phalanxpb.Tensor, wantCols, maxRows int) (rows int, err error) {
	if wantCols < 1 || maxRows < 0 {
		return 0, fmt.Errorf("%w: invalid limits cols=%d maxRows=%d", ErrShape, wantCols, maxRows)
	}
	if t == nil {
		return 0, fmt.Errorf("%w: missing tensor", ErrShape)
	}
	if !known(t.GetDtype()) {
		return 0, fmt.Errorf("%w: %v", ErrDType, t.GetDtype())
	}
	shape := t.GetShape()
	if len(shape) != 2 {
		// Do not echo the shape: a hostile peer may send millions of dims.
		return 0, fmt.Errorf("%w: %d dimensions, want 2", ErrShape, len(shape))
	}
	if shape[0] < 0 || shape[0] > int64(maxRows) {
		return 0, fmt.Errorf("%w: %d rows, want 0…%d", ErrShape, shape[0], maxRows)
	}
	if shape[1] != int64(wantCols) {
		return 0, fmt.Errorf("%w: %d columns, want %d", ErrShape, shape[1], wantCols)
	}
	per, ok := rowBytes(t.GetDtype(), wantCols)
	if !ok {
		return 0, fmt.Errorf("%w: rows of %d values cannot be %v", ErrShape, wantCols, t.GetDtype())
	}
	rows = int(shape[0])
	n, ok := byteLen(rows, per)
	if !ok {
		return 0, fmt.Errorf("%w: [%d, %d] overflows", ErrShape, rows, wantCols)
	}
	if len(t.GetData()) != n {
		return 0, fmt.Errorf("%w: %d bytes for [%d, %d] %v, want %d",
			ErrShape, len(t.GetData()), rows, wantCols, t.GetDtype(), n)
	}
	return rows, nil
}
