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

// elemSize is the number of bytes of one element of dt, or 0 when dt is not
// supported.
func elemSize(dt phalanxpb.DType) int {
	switch dt {
	case phalanxpb.DType_DTYPE_F32:
		return 4
	case phalanxpb.DType_DTYPE_F16:
		return 2
	}
	return 0
}

// byteLen returns rows·cols·size, or false when it overflows an int.
// rows and cols must not be negative and size must be positive.
func byteLen(rows, cols, size int) (int, bool) {
	if cols != 0 && rows > math.MaxInt/size/cols {
		return 0, false
	}
	return rows * cols * size, true
}

// EncodeF32 returns a [rows, cols] tensor of dtype dt holding v, which must
// have exactly rows·cols elements in row-major order. F16 rounds to the
// nearest half, ties to even; values beyond its range become infinities.
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
	size := elemSize(dt)
	if size == 0 {
		return fmt.Errorf("%w: %v", ErrDType, dt)
	}
	if rows < 0 || cols < 1 {
		return fmt.Errorf("%w: [%d, %d]", ErrShape, rows, cols)
	}
	n, ok := byteLen(rows, cols, size)
	if !ok || n/size != len(v) {
		return fmt.Errorf("%w: [%d, %d] does not hold %d values", ErrShape, rows, cols, len(v))
	}
	data := t.Data
	if cap(data) < n {
		data = make([]byte, n)
	}
	data = data[:n]
	if size == 4 {
		putF32(data, v)
	} else {
		putF16(data, v)
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
	rows, size, err := check(t, wantCols, maxRows)
	if err != nil {
		return dst, 0, err
	}
	count := rows * wantCols
	if cap(dst) < count {
		dst = make([]float32, count)
	}
	dst = dst[:count]
	if size == 4 {
		getF32(dst, t.GetData())
	} else {
		getF16(dst, t.GetData())
	}
	return dst, rows, nil
}

// Check validates t as a [rows, cols] tensor of dtype dt without decoding
// it, so a stage's reply can be forwarded to the next stage as it came.
func Check(t *phalanxpb.Tensor, rows, cols int, dt phalanxpb.DType) error {
	got, _, err := check(t, cols, rows)
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

func check(t *phalanxpb.Tensor, wantCols, maxRows int) (rows, size int, err error) {
	if wantCols < 1 || maxRows < 0 {
		return 0, 0, fmt.Errorf("%w: invalid limits cols=%d maxRows=%d", ErrShape, wantCols, maxRows)
	}
	if t == nil {
		return 0, 0, fmt.Errorf("%w: missing tensor", ErrShape)
	}
	size = elemSize(t.GetDtype())
	if size == 0 {
		return 0, 0, fmt.Errorf("%w: %v", ErrDType, t.GetDtype())
	}
	shape := t.GetShape()
	if len(shape) != 2 {
		// Do not echo the shape: a hostile peer may send millions of dims.
		return 0, 0, fmt.Errorf("%w: %d dimensions, want 2", ErrShape, len(shape))
	}
	if shape[0] < 0 || shape[0] > int64(maxRows) {
		return 0, 0, fmt.Errorf("%w: %d rows, want 0…%d", ErrShape, shape[0], maxRows)
	}
	if shape[1] != int64(wantCols) {
		return 0, 0, fmt.Errorf("%w: %d columns, want %d", ErrShape, shape[1], wantCols)
	}
	rows = int(shape[0])
	n, ok := byteLen(rows, wantCols, size)
	if !ok {
		return 0, 0, fmt.Errorf("%w: [%d, %d] overflows", ErrShape, rows, wantCols)
	}
	if len(t.GetData()) != n {
		return 0, 0, fmt.Errorf("%w: %d bytes for [%d, %d] %v, want %d",
			ErrShape, len(t.GetData()), rows, wantCols, t.GetDtype(), n)
	}
	return rows, size, nil
}
