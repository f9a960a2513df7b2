package weights

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/mmapfile"
)

// Cache is a directory of tensors named by digest: DIR/sha256/<hex>, with
// <hex>.part while one arrives. A file under its final name was checked
// against its digest when it was completed; Verify checks it again. Its
// methods are safe for concurrent use by one process (the worker); two
// processes must not share a directory.
type Cache struct {
	dir string

	mu       sync.Mutex
	reading  int       // Blob mappings in use by peers
	lastRead time.Time // when the last one ended
	// checked remembers the files this process hashed and found intact,
	// by size and modification time: a staged fetch checks a range
	// moments before its load, which need not hash it again. A file
	// written since (another size or time) is hashed again.
	checked map[Digest]stamp
}

type stamp struct {
	size int64
	mod  time.Time
}

func stampOf(fi fs.FileInfo) stamp { return stamp{size: fi.Size(), mod: fi.ModTime()} }

func (c *Cache) remember(d Digest, fi fs.FileInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checked == nil {
		c.checked = map[Digest]stamp{}
	}
	c.checked[d] = stampOf(fi)
}

func (c *Cache) forget(d Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.checked, d)
}

// known reports whether fi is the file this process last found intact.
func (c *Cache) known(d Digest, fi fs.FileInfo) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.checked[d]
	return ok && st == stampOf(fi)
}

// OpenCache opens (creating) a cache directory.
func OpenCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("weights: cache: %w", err)
	}
	return &Cache{dir: dir}, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) path(d Digest) string { return filepath.Join(c.dir, "sha256", d.String()) }
func (c *Cache) part(d Digest) string { return c.path(d) + ".part" }

// Verify reports whether the cache holds t intact. A file of the wrong size
// or digest is deleted (it will be fetched again) and reported as
// ErrCorrupt.
func (c *Cache) Verify(t Tensor) (bool, error) {
	f, err := os.Open(c.path(t.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if c.known(t.Digest, fi) && uint64(fi.Size()) == t.Size {
		return true, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return false, err
	}
	var got Digest
	h.Sum(got[:0])
	if uint64(n) != t.Size || got != t.Digest {
		c.forget(t.Digest)
		os.Remove(c.path(t.Digest))
		return false, fmt.Errorf("%w: %s (%s): %d bytes hashing to %s; deleted, to be fetched again", ErrCorrupt, t.Name, t.Digest, n, got)
	}
	c.remember(t.Digest, fi)
	return true, nil
}

// partial opens t's .part file for appending and returns the bytes it
// already holds (0 after truncating one longer than the tensor).
func (c *Cache) partial(t Tensor) (*os.File, uint64, error) {
	f, err := os.OpenFile(c.part(t.Digest), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	off := uint64(st.Size())
	if off > t.Size {
		off = 0
	}
	if err := f.Truncate(int64(off)); err != nil {
		f.Close()
		return nil, 0, err
	}
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, off, nil
}

// commit checks a complete .part file against t's digest and gives it its
// final name; a mismatch deletes it.
func (c *Cache) commit(t Tensor) error {
	f, err := os.Open(c.part(t.Digest))
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	var got Digest
	h.Sum(got[:0])
	if uint64(n) != t.Size || got != t.Digest {
		os.Remove(c.part(t.Digest))
		return fmt.Errorf("%w: %s arrived as %d bytes hashing to %s, want %d bytes %s", ErrCorrupt, t.Name, n, got, t.Size, t.Digest)
	}
	if err := os.Rename(c.part(t.Digest), c.path(t.Digest)); err != nil {
		return err
	}
	if fi, err := os.Stat(c.path(t.Digest)); err == nil {
		c.remember(t.Digest, fi)
	}
	return nil
}

// Blob maps a complete tensor read-only, for serving it to a peer.
func (c *Cache) Blob(d Digest) ([]byte, func(), error) {
	m, err := mmapfile.Map(c.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.reading++
	c.mu.Unlock()
	return m.Data, func() {
		m.Close()
		c.mu.Lock()
		c.reading--
		c.lastRead = time.Now()
		c.mu.Unlock()
	}, nil
}

// Idle reports how long no peer has read from the cache (0 while one
// does): pruning waits for peers that fetch what this worker held.
func (c *Cache) Idle() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading > 0 {
		return 0
	}
	if c.lastRead.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(c.lastRead)
}

// Usage is the bytes of complete tensors in the cache.
func (c *Cache) Usage() (uint64, error) {
	var n uint64
	entries, err := os.ReadDir(filepath.Join(c.dir, "sha256"))
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !strings.HasSuffix(e.Name(), ".part") {
			n += uint64(info.Size())
		}
	}
	return n, nil
}

// Prune deletes every tensor (and partial tensor) not in keep: after a
// worker loads a new range, its disk holds that range's bytes only.
func (c *Cache) Prune(keep *Manifest) (removed uint64, err error) {
	want := map[string]bool{}
	for _, t := range keep.Tensors {
		want[t.Digest.String()] = true
	}
	entries, err := os.ReadDir(filepath.Join(c.dir, "sha256"))
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if want[strings.TrimSuffix(e.Name(), ".part")] {
			continue
		}
		if info, err := e.Info(); err == nil {
			removed += uint64(info.Size())
		}
		if err := os.Remove(filepath.Join(c.dir, "sha256", e.Name())); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// Source is an engine.TensorSource over the cached tensors of man, which
// must all be present (Fetcher.Ensure). Matrices are mapped read-only in
// their stored dtype; the source unmaps them on Close.
func (c *Cache) Source(man *Manifest) engine.TensorSource {
	s := &cacheSource{c: c, byName: map[string]Tensor{}}
	for _, t := range man.Tensors {
		s.byName[t.Name] = t
	}
	return s
}

type cacheSource struct {
	c      *Cache
	byName map[string]Tensor
	maps   []*mmapfile.Mapping
}

func (s *cacheSource) Has(name string) bool { _, ok := s.byName[name]; return ok }

func (s *cacheSource) Close() error {
	var errs []error
	for _, m := range s.maps {
		errs = append(errs, m.Close())
	}
	s.maps = nil
	return errors.Join(errs...)
}

func (s *cacheSource) tensor(name string, vector bool, rows, cols int) (Tensor, error) {
	t, ok := s.byName[name]
	switch {
	case !ok:
		return Tensor{}, fmt.Errorf("%w: %s not in the manifest", engine.ErrWeights, name)
	case t.Vector != vector || t.Rows != rows || t.Cols != cols:
		return Tensor{}, fmt.Errorf("%w: %s is %dx%d in the manifest, the engine wants %dx%d", engine.ErrWeights, name, t.Rows, t.Cols, rows, cols)
	}
	return t, nil
}

func (s *cacheSource) Matrix(name string, rows, cols int) (kernels.Matrix, error) {
	t, err := s.tensor(name, false, rows, cols)
	if err != nil {
		return kernels.Matrix{}, err
	}
	m, err := mmapfile.Map(s.c.path(t.Digest))
	if err != nil {
		return kernels.Matrix{}, fmt.Errorf("%w: %s: %v", engine.ErrWeights, name, err)
	}
	s.maps = append(s.maps, m)
	mat := kernels.Matrix{DType: t.DType, Rows: rows, Cols: cols, Data: m.Data}
	if err := mat.Check(); err != nil {
		return kernels.Matrix{}, fmt.Errorf("%w: %s: %v", engine.ErrWeights, name, err)
	}
	mmapfile.WillNeed(m.Data)
	return mat, nil
}

func (s *cacheSource) Vector(name string, n int) ([]float32, error) {
	t, err := s.tensor(name, true, 1, n)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.c.path(t.Digest))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", engine.ErrWeights, name, err)
	}
	if len(b) != 4*n {
		return nil, fmt.Errorf("%w: %s: %d bytes for %d F32 values", engine.ErrWeights, name, len(b), n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// ZeroSource is an engine.TensorSource of man's tensors filled with zeros,
// in their dtypes and shapes: a layer to time the kernels on before any
// weights arrived (the kernels' speed does not depend on the values).
func ZeroSource(man *Manifest) engine.TensorSource {
	s := &zeroSource{byName: map[string]Tensor{}}
	for _, t := range man.Tensors {
		s.byName[t.Name] = t
	}
	return s
}

type zeroSource struct{ byName map[string]Tensor }

func (s *zeroSource) Has(name string) bool { _, ok := s.byName[name]; return ok }
func (s *zeroSource) Close() error         { return nil }

func (s *zeroSource) Matrix(name string, rows, cols int) (kernels.Matrix, error) {
	t, ok := s.byName[name]
	if !ok || t.Vector {
		return kernels.Matrix{}, fmt.Errorf("%w: %s not in the manifest", engine.ErrWeights, name)
	}
	w := make([]uint64, (t.Size+7)/8) // 8-byte aligned, as the kernels want
	data := unsafeBytes(w)[:t.Size]
	m := kernels.Matrix{DType: t.DType, Rows: rows, Cols: cols, Data: data}
	return m, m.Check()
}

func (s *zeroSource) Vector(name string, n int) ([]float32, error) {
	if _, ok := s.byName[name]; !ok {
		return nil, fmt.Errorf("%w: %s not in the manifest", engine.ErrWeights, name)
	}
	return make([]float32, n), nil
}
