package weights

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Errors of the weights package.
var (
	ErrModel    = errors.New("weights: model mismatch")
	ErrCorrupt  = errors.New("weights: digest mismatch")
	ErrNotFound = errors.New("weights: tensor not held")
	ErrManifest = errors.New("weights: bad manifest")
)

// Digest is a tensor's SHA-256.
type Digest [32]byte

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Tensor is one entry of a manifest.
type Tensor struct {
	engine.TensorRef
	Layer  int
	DType  kernels.DType
	Size   uint64
	Digest Digest
}

// Manifest describes a layer range of a model: its configuration and the
// tensors the engine needs for the range.
type Manifest struct {
	ModelID string
	Config  *engine.Config
	Layers  engine.LayerRange
	Tensors []Tensor
}

// Bytes is the size of the range.
func (m *Manifest) Bytes() uint64 {
	var n uint64
	for _, t := range m.Tensors {
		n += t.Size
	}
	return n
}

func (m *Manifest) toProto() (*phalanxpb.ManifestResponse, error) {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	resp := &phalanxpb.ManifestResponse{ModelId: m.ModelID, ConfigJson: cfg}
	for _, t := range m.Tensors {
		resp.Tensors = append(resp.Tensors, &phalanxpb.TensorEntry{Name: t.Name, Layer: int32(t.Layer), Vector: t.Vector,
			Rows: int64(t.Rows), Cols: int64(t.Cols), Dtype: t.DType.String(), Size: t.Size, Sha256: append([]byte(nil), t.Digest[:]...)})
	}
	return resp, nil
}

// manifestFromProto checks a received manifest against the range asked
// for: the tensors must be exactly those the engine needs, with the sizes
// their dtypes and shapes imply.
func manifestFromProto(resp *phalanxpb.ManifestResponse, r engine.LayerRange) (*Manifest, error) {
	var cfg engine.Config
	if err := json.Unmarshal(resp.GetConfigJson(), &cfg); err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrManifest, err)
	}
	if cfg.NumLayers <= 0 || r.Start < 0 || r.End > cfg.NumLayers || r.Start > r.End {
		return nil, fmt.Errorf("%w: range %v of a %d-layer model", ErrManifest, r, cfg.NumLayers)
	}
	m := &Manifest{ModelID: resp.GetModelId(), Config: &cfg, Layers: r}
	byName := map[string]*phalanxpb.TensorEntry{}
	for _, e := range resp.GetTensors() {
		byName[e.GetName()] = e
	}
	for i := r.Start; i < r.End; i++ {
		for _, ref := range engine.LayerTensors(&cfg, i) {
			e := byName[ref.Name]
			if e == nil {
				return nil, fmt.Errorf("%w: %s missing", ErrManifest, ref.Name)
			}
			delete(byName, ref.Name)
			dt, err := kernels.ParseDType(e.GetDtype())
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrManifest, ref.Name, err)
			}
			if ref.Vector && dt != kernels.F32 {
				return nil, fmt.Errorf("%w: vector %s in %v, not F32", ErrManifest, ref.Name, dt)
			}
			if e.GetVector() != ref.Vector || e.GetRows() != int64(ref.Rows) || e.GetCols() != int64(ref.Cols) {
				return nil, fmt.Errorf("%w: %s has shape %dx%d, the config wants %dx%d", ErrManifest, ref.Name, e.GetRows(), e.GetCols(), ref.Rows, ref.Cols)
			}
			if rb := dt.RowBytes(ref.Cols); rb <= 0 || uint64(rb)*uint64(ref.Rows) != e.GetSize() {
				return nil, fmt.Errorf("%w: %s: %d bytes do not hold %dx%d %v", ErrManifest, ref.Name, e.GetSize(), ref.Rows, ref.Cols, dt)
			}
			var d Digest
			if len(e.GetSha256()) != len(d) {
				return nil, fmt.Errorf("%w: %s: digest of %d bytes", ErrManifest, ref.Name, len(e.GetSha256()))
			}
			copy(d[:], e.GetSha256())
			m.Tensors = append(m.Tensors, Tensor{TensorRef: ref, Layer: i, DType: dt, Size: e.GetSize(), Digest: d})
		}
	}
	if len(byName) > 0 {
		return nil, fmt.Errorf("%w: %d tensors outside the range", ErrManifest, len(byName))
	}
	return m, nil
}

// GetManifest asks a Weights server for the manifest of layers r of the
// model modelID and checks that the server serves that model: a worker
// loads only the model its plan names.
func GetManifest(ctx context.Context, c phalanxpb.WeightsClient, modelID string, r engine.LayerRange) (*Manifest, error) {
	resp, err := c.Manifest(ctx, &phalanxpb.ManifestRequest{ModelId: modelID, LayerStart: int32(r.Start), LayerEnd: int32(r.End)})
	if err != nil {
		return nil, err
	}
	if modelID != "" && resp.GetModelId() != modelID {
		return nil, fmt.Errorf("%w: the source serves %q, the plan names %q", ErrModel, resp.GetModelId(), modelID)
	}
	return manifestFromProto(resp, r)
}
