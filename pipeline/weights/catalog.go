package weights

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// Catalog serves a model's layers from its files: the coordinator's side
// of the Weights service. Digests are computed the first time a range is
// asked for and kept in memory (hashing a full-size model takes seconds,
// so it is paid per layer, once). Its methods are safe for concurrent use.
type Catalog struct {
	mf     *engine.ModelFiles
	stored engine.StoredTensors

	mu      sync.Mutex
	layers  map[int]*layerEntry
	byHash  map[Digest][]byte
	hashing map[int]chan struct{} // layers being hashed
}

type layerEntry struct {
	tensors []Tensor
}

// NewCatalog opens mf's weight files for serving.
func NewCatalog(mf *engine.ModelFiles) (*Catalog, error) {
	st, err := mf.OpenStored()
	if err != nil {
		return nil, err
	}
	return &Catalog{mf: mf, stored: st, layers: map[int]*layerEntry{}, byHash: map[Digest][]byte{}, hashing: map[int]chan struct{}{}}, nil
}

// Close unmaps the files.
func (c *Catalog) Close() error { return c.stored.Close() }

// ModelID is the identity of the model served.
func (c *Catalog) ModelID() string { return c.mf.ID }

// Manifest describes layers r, hashing those not hashed yet.
func (c *Catalog) Manifest(r engine.LayerRange) (*Manifest, error) {
	cfg := c.mf.Config
	if r.Start < 0 || r.End > cfg.NumLayers || r.Start > r.End {
		return nil, fmt.Errorf("%w: layer range %v outside the model's %d layers", engine.ErrInput, r, cfg.NumLayers)
	}
	m := &Manifest{ModelID: c.mf.ID, Config: cfg, Layers: r}
	for i := r.Start; i < r.End; i++ {
		e, err := c.layer(i)
		if err != nil {
			return nil, err
		}
		m.Tensors = append(m.Tensors, e.tensors...)
	}
	return m, nil
}

// layer hashes layer i once; concurrent callers wait for the first.
func (c *Catalog) layer(i int) (*layerEntry, error) {
	for {
		c.mu.Lock()
		if e := c.layers[i]; e != nil {
			c.mu.Unlock()
			return e, nil
		}
		if wait, busy := c.hashing[i]; busy {
			c.mu.Unlock()
			<-wait
			continue
		}
		done := make(chan struct{})
		c.hashing[i] = done
		c.mu.Unlock()
		e, data, err := c.hashLayer(i)
		c.mu.Lock()
		delete(c.hashing, i)
		if err == nil {
			c.layers[i] = e
			for j, t := range e.tensors {
				c.byHash[t.Digest] = data[j]
			}
		}
		c.mu.Unlock()
		close(done)
		return e, err
	}
}

func (c *Catalog) hashLayer(i int) (*layerEntry, [][]byte, error) {
	e := &layerEntry{}
	var data [][]byte
	for _, ref := range engine.LayerTensors(c.mf.Config, i) {
		dt, b, err := c.stored.Stored(ref)
		if err != nil {
			return nil, nil, err
		}
		if ref.Vector && dt != kernels.F32 {
			return nil, nil, fmt.Errorf("%w: vector %s stored as %v", engine.ErrWeights, ref.Name, dt)
		}
		e.tensors = append(e.tensors, Tensor{TensorRef: ref, Layer: i, DType: dt, Size: uint64(len(b)), Digest: sha256.Sum256(b)})
		data = append(data, b)
	}
	return e, data, nil
}

// Blob returns the bytes of a tensor a manifest listed.
func (c *Catalog) Blob(d Digest) ([]byte, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.byHash[d]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s (not in a manifest served)", ErrNotFound, d)
	}
	return b, func() {}, nil
}
