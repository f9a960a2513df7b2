package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/phalanx-llm/phalanx/engine/mmapfile"
)

// MaxHeaderBytes bounds the JSON header; real headers are a few hundred KiB.
const MaxHeaderBytes = 100 << 20

// Errors returned by the reader, wrapped with the file and tensor they concern.
var (
	ErrHeader   = errors.New("safetensors: invalid header")
	ErrDType    = errors.New("safetensors: unsupported dtype")
	ErrNotFound = errors.New("safetensors: tensor not found")
	ErrIndex    = errors.New("safetensors: invalid index")
)

// dtypeSizes lists the dtypes a header may name and their element sizes.
var dtypeSizes = map[string]int{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
	"F8_E4M3": 1, "F8_E5M2": 1,
}

// Tensor is one tensor of a file. Data is a view of the mapped file.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
	File  string
}

// Elements is the product of the shape (1 for a scalar).
func (t *Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is one open safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]*Tensor
	names    []string
	mapping  *mmapfile.Mapping
}

type headerEntry struct {
	DType       string          `json:"dtype"`
	Shape       []int64         `json:"shape"`
	DataOffsets [2]json.Number  `json:"data_offsets"`
	Extra       json.RawMessage `json:"-"`
}

// Open maps a safetensors file and validates its header.
func Open(path string) (*File, error) {
	m, err := mmapfile.Map(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(path, m.Data)
	if err != nil {
		m.Close()
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// Parse validates an in-memory safetensors image; the returned File's
// tensors alias buf. name is used in errors.
func Parse(name string, buf []byte) (*File, error) { return parse(name, buf) }

func parse(path string, buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, fmt.Errorf("%w: %s: %d bytes is too short for a header", ErrHeader, path, len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderBytes {
		return nil, fmt.Errorf("%w: %s: header length %d exceeds the %d-byte limit", ErrHeader, path, n, MaxHeaderBytes)
	}
	if n > uint64(len(buf)-8) {
		return nil, fmt.Errorf("%w: %s: header length %d runs past the end of the %d-byte file", ErrHeader, path, n, len(buf))
	}
	hdr := buf[8 : 8+n]
	data := buf[8+n:]

	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrHeader, path, err)
	}
	f := &File{Path: path, tensors: make(map[string]*Tensor, len(raw))}
	type span struct {
		name       string
		begin, end uint64
	}
	spans := make([]span, 0, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%w: %s: __metadata__ must map strings to strings: %v", ErrHeader, path, err)
			}
			continue
		}
		var e headerEntry
		d := json.NewDecoder(bytes.NewReader(msg))
		d.UseNumber()
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: %s: tensor %q: %v", ErrHeader, path, name, err)
		}
		size, ok := dtypeSizes[e.DType]
		if !ok {
			return nil, fmt.Errorf("%w: %s: tensor %q has dtype %q", ErrDType, path, name, e.DType)
		}
		count := uint64(1)
		shape := make([]int, len(e.Shape))
		for i, dim := range e.Shape {
			if dim < 0 {
				return nil, fmt.Errorf("%w: %s: tensor %q has negative dimension %d", ErrHeader, path, name, dim)
			}
			if dim > 0 && count > math.MaxInt64/uint64(dim)/8 {
				return nil, fmt.Errorf("%w: %s: tensor %q shape %v overflows", ErrHeader, path, name, e.Shape)
			}
			count *= uint64(dim)
			shape[i] = int(dim)
		}
		begin, err1 := parseOffset(e.DataOffsets[0])
		end, err2 := parseOffset(e.DataOffsets[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: %s: tensor %q: data_offsets must be two non-negative integers", ErrHeader, path, name)
		}
		if begin > end || end > uint64(len(data)) {
			return nil, fmt.Errorf("%w: %s: tensor %q: data_offsets [%d, %d] outside the %d-byte data section",
				ErrHeader, path, name, begin, end, len(data))
		}
		if end-begin != count*uint64(size) {
			return nil, fmt.Errorf("%w: %s: tensor %q: %d bytes, but shape %v of %s needs %d",
				ErrHeader, path, name, end-begin, e.Shape, e.DType, count*uint64(size))
		}
		f.tensors[name] = &Tensor{Name: name, DType: e.DType, Shape: shape, Data: data[begin:end:end], File: path}
		spans = append(spans, span{name, begin, end})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if b.begin < a.end && a.end > a.begin && b.end > b.begin {
			return nil, fmt.Errorf("%w: %s: tensors %q and %q overlap", ErrHeader, path, a.name, b.name)
		}
	}
	for _, s := range spans {
		f.names = append(f.names, s.name)
	}
	return f, nil
}

func parseOffset(n json.Number) (uint64, error) {
	var v uint64
	if _, err := fmt.Sscan(string(n), &v); err != nil {
		return 0, err
	}
	if string(n) != fmt.Sprint(v) {
		return 0, fmt.Errorf("not a plain integer")
	}
	return v, nil
}

// Names lists the file's tensors in data order.
func (f *File) Names() []string { return f.names }

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (*Tensor, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s: %q", ErrNotFound, f.Path, name)
	}
	return t, nil
}

// Close unmaps the file; tensors taken from it must no longer be used.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := f.mapping.Close()
	f.mapping = nil
	return err
}

// Set is a model's tensors across one or more files.
type Set struct {
	Dir   string
	files []*File
	index map[string]*File
}

// IndexFile is the name of the shard index Hugging Face writes.
const IndexFile = "model.safetensors.index.json"

// OpenDir opens a model directory: the shards named by
// model.safetensors.index.json, or model.safetensors, or else every
// *.safetensors file in it.
func OpenDir(dir string) (*Set, error) {
	s := &Set{Dir: dir, index: map[string]*File{}}
	var weightMap map[string]string
	idxPath := filepath.Join(dir, IndexFile)
	var files []string
	if b, err := os.ReadFile(idxPath); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrIndex, idxPath, err)
		}
		if len(idx.WeightMap) == 0 {
			return nil, fmt.Errorf("%w: %s: empty weight_map", ErrIndex, idxPath)
		}
		weightMap = idx.WeightMap
		seen := map[string]bool{}
		for name, file := range weightMap {
			if file == "" || filepath.Base(file) != file || file == "." || file == ".." {
				return nil, fmt.Errorf("%w: %s: tensor %q maps to %q, which is not a file name in the model directory", ErrIndex, idxPath, name, file)
			}
			if !seen[file] {
				seen[file] = true
				files = append(files, file)
			}
		}
		sort.Strings(files)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	} else if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		files = []string{"model.safetensors"}
	} else {
		matches, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		for _, m := range matches {
			files = append(files, filepath.Base(m))
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("safetensors: no model.safetensors, %s or *.safetensors in %s", IndexFile, dir)
		}
	}
	for _, name := range files {
		f, err := Open(filepath.Join(dir, name))
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		for _, tn := range f.names {
			if other, dup := s.index[tn]; dup {
				s.Close()
				return nil, fmt.Errorf("%w: tensor %q is in both %s and %s", ErrIndex, tn, other.Path, f.Path)
			}
			if weightMap != nil {
				if want, ok := weightMap[tn]; ok && want != name {
					s.Close()
					return nil, fmt.Errorf("%w: tensor %q is in %s but the index puts it in %s", ErrIndex, tn, name, want)
				}
			}
			s.index[tn] = f
		}
	}
	for tn, file := range weightMap {
		if _, ok := s.index[tn]; !ok {
			s.Close()
			return nil, fmt.Errorf("%w: %s names tensor %q in %s, which does not hold it", ErrIndex, idxPath, tn, file)
		}
	}
	return s, nil
}

// Tensor returns the named tensor from whichever file holds it.
func (s *Set) Tensor(name string) (*Tensor, error) {
	f, ok := s.index[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s: %q", ErrNotFound, s.Dir, name)
	}
	return f.Tensor(name)
}

// Has reports whether the set holds the named tensor.
func (s *Set) Has(name string) bool { _, ok := s.index[name]; return ok }

// Names lists every tensor of the set.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.index))
	for _, f := range s.files {
		out = append(out, f.names...)
	}
	return out
}

// Prefetch asks the kernel to read the given tensors' pages ahead of use.
func (s *Set) Prefetch(ts ...*Tensor) {
	for _, t := range ts {
		mmapfile.WillNeed(t.Data)
	}
}

// Release tells the kernel that the given tensors' pages will not be read
// again soon (the caller keeps a copy): they leave the resident set and
// are read back if touched.
func (s *Set) Release(ts ...*Tensor) {
	for _, t := range ts {
		mmapfile.DontNeed(t.Data)
	}
}

// Close unmaps every file of the set.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.files = nil
	return first
}
