package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var testdataDir = filepath.Join("..", "..", "testdata", "tokenizer")

type vector struct {
	text string
	ids  []int
}

// readVectors reads llama.cpp's vocabulary test files: each string in .inp
// is followed by a line "__ggml_vocab_test__", so the strings are what
// lies between "\n__ggml_vocab_test__\n" separators (the first string
// starts the file, the last separator ends it); .out has one line of ids
// per string.
func readVectors(t testing.TB, name string) []vector {
	t.Helper()
	inp, err := os.ReadFile(filepath.Join(testdataDir, name+".inp"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(filepath.Join(testdataDir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	texts := strings.Split(string(inp), sep)
	if texts[len(texts)-1] != "" {
		t.Fatalf("%s.inp does not end with the separator", name)
	}
	texts = texts[:len(texts)-1]
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) || len(texts) != 46 {
		t.Fatalf("%s: %d strings, %d id lines", name, len(texts), len(lines))
	}
	vs := make([]vector, len(texts))
	for i, text := range texts {
		vs[i].text = text
		vs[i].ids = []int{}
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			vs[i].ids = append(vs[i].ids, id)
		}
	}
	return vs
}

var (
	loadOnce  sync.Once
	phi2GGUF  *Tokenizer
	phi2HF    *Tokenizer
	gpt2GGUF  *Tokenizer
	loadError error
)

func loadAll(t testing.TB) {
	t.Helper()
	loadOnce.Do(func() {
		if phi2GGUF, loadError = FromGGUF(filepath.Join(testdataDir, "ggml-vocab-phi-2.gguf")); loadError != nil {
			return
		}
		if phi2HF, loadError = FromHFDir(filepath.Join(testdataDir, "phi-2-hf")); loadError != nil {
			return
		}
		gpt2GGUF, loadError = FromGGUF(filepath.Join(testdataDir, "ggml-vocab-gpt-2.gguf"))
	})
	if loadError != nil {
		t.Fatal(loadError)
	}
}

func checkVectors(t *testing.T, tok *Tokenizer, vs []vector) {
	t.Helper()
	for i, v := range vs {
		got := tok.Encode(v.text)
		if !reflect.DeepEqual(got, v.ids) {
			t.Errorf("vector %d %q:\n got %v\nwant %v", i, v.text, got, v.ids)
			continue
		}
		if dec := tok.Decode(got); dec != v.text {
			t.Errorf("vector %d: Decode = %q, want %q", i, dec, v.text)
		}
	}
}

func TestVectors(t *testing.T) {
	loadAll(t)
	phi2 := readVectors(t, "ggml-vocab-phi-2.gguf")
	t.Run("phi-2/gguf", func(t *testing.T) { checkVectors(t, phi2GGUF, phi2) })
	t.Run("phi-2/hf", func(t *testing.T) { checkVectors(t, phi2HF, phi2) })
	t.Run("gpt-2/gguf", func(t *testing.T) { checkVectors(t, gpt2GGUF, readVectors(t, "ggml-vocab-gpt-2.gguf")) })
}
