package engine

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// golden is the phi-golden/v1 format of testdata/*/golden.json, written by an
// independent PyTorch implementation of Hugging Face's PhiForCausalLM.
type golden struct {
	Format string       `json:"format"`
	Cases  []goldenCase `json:"cases"`
}

// goldenCase is one prompt of a golden file and the reference's answers.
type goldenCase struct {
	Name       string `json:"name"`
	InputIDs   []int  `json:"input_ids"`
	Argmax     []int  `json:"argmax"`
	LogitsFull struct {
		Positions []int       `json:"positions"`
		Rows      [][]float32 `json:"rows"`
	} `json:"logits_full"`
	HiddenLast struct {
		Position int         `json:"position"`
		Names    []string    `json:"names"`
		Vectors  [][]float32 `json:"vectors"`
	} `json:"hidden_last"`
	DebugLast map[string]map[string][]float32 `json:"debug_last"`
	Greedy    struct {
		Tokens []int `json:"tokens"`
	} `json:"greedy"`
}

// goldenLogits runs c's prompt through m in one pass, checks the argmax at
// every position against the reference's, and returns the logits and
// their largest difference from the reference's rows.
func goldenLogits(t *testing.T, m *Model, c goldenCase) ([]float32, float64) {
	t.Helper()
	V := m.Config.VocabSize
	logits := allLogits(t, m, c.InputIDs)
	worst := 0.0
	for i, pos := range c.LogitsFull.Positions {
		worst = math.Max(worst, maxDiff(logits[pos*V:(pos+1)*V], c.LogitsFull.Rows[i]))
	}
	for pos, want := range c.Argmax {
		if got := Argmax(logits[pos*V : (pos+1)*V]); got != want {
			t.Errorf("%s: position %d: argmax %d, want %d", c.Name, pos, got, want)
		}
	}
	return logits, worst
}

// goldenGreedy checks m's greedy answer to c's prompt against the
// reference's.
func goldenGreedy(t *testing.T, m *Model, c goldenCase) {
	t.Helper()
	got, err := Greedy(m, c.InputIDs, len(c.Greedy.Tokens))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, c.Greedy.Tokens) {
		t.Errorf("%s: greedy %v, want %v", c.Name, got, c.Greedy.Tokens)
	}
}

var fixtures = []string{"phi-tiny-f32", "phi-tiny-bf16-sharded"}

func fixtureDir(name string) string { return filepath.Join("..", "testdata", name) }

func loadGolden(t *testing.T, name string) *golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(name), "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if g.Format != "phi-golden/v1" || len(g.Cases) == 0 {
		t.Fatalf("%s: unexpected golden format %q with %d cases", name, g.Format, len(g.Cases))
	}
	return &g
}

func loadFull(t testing.TB, dir string) *Model {
	t.Helper()
	m, err := Load(dir, Options{Layers: AllLayers, Embedding: true, Head: true, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// allLogits runs ids through a fresh cache in one pass and returns every row.
func allLogits(t testing.TB, m *Model, ids []int) []float32 {
	t.Helper()
	H, V := m.Config.HiddenSize, m.Config.VocabSize
	x := make([]float32, len(ids)*H)
	if err := m.Embed(ids, x); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(x, []Span{{Cache: m.NewCache(), Tokens: len(ids)}}); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(ids)*V)
	if err := m.Logits(x, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestGoldenLogits(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			g := loadGolden(t, fx)
			m := loadFull(t, fixtureDir(fx))
			for _, c := range g.Cases {
				_, worst := goldenLogits(t, m, c)
				if worst > 1e-4 {
					t.Errorf("%s: logits differ by %.3g (limit 1e-4)", c.Name, worst)
				}
				t.Logf("%s: %d positions, max logit difference %.3g", c.Name, len(c.InputIDs), worst)
			}
		})
	}
}

func TestGoldenHiddenAndInternals(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			g := loadGolden(t, fx)
			m := loadFull(t, fixtureDir(fx))
			H := m.Config.HiddenSize
			for _, c := range g.Cases {
				T := len(c.InputIDs)
				last := T - 1
				got := map[string][]float32{}
				internals := map[string]map[string][]float32{}
				trace := func(layer int, name string, rows []float32) {
					width := len(rows) / T
					v := append([]float32(nil), rows[last*width:(last+1)*width]...)
					if name == "out" {
						got[layerName(layer)] = v
						return
					}
					if internals[layerName(layer)] == nil {
						internals[layerName(layer)] = map[string][]float32{}
					}
					internals[layerName(layer)][name] = v
				}
				x := make([]float32, T*H)
				if err := m.Embed(c.InputIDs, x); err != nil {
					t.Fatal(err)
				}
				got["embed"] = append([]float32(nil), x[last*H:]...)
				if err := m.ForwardTrace(x, []Span{{Cache: m.NewCache(), Tokens: T}}, trace); err != nil {
					t.Fatal(err)
				}
				fn := make([]float32, H)
				if err := m.FinalNorm(x[last*H:], fn); err != nil {
					t.Fatal(err)
				}
				got["final_norm"] = fn
				for i, name := range c.HiddenLast.Names {
					want := c.HiddenLast.Vectors[i]
					tol := 1e-5 * maxAbs(want)
					if d := maxDiff(got[name], want); d > tol {
						t.Errorf("%s: hidden %s differs by %.3g (limit %.3g)", c.Name, name, d, tol)
					}
				}
				for layer, vals := range c.DebugLast {
					for name, want := range vals {
						tol := 1e-5 * math.Max(maxAbs(want), 1)
						if d := maxDiff(internals[layer][name], want); d > tol {
							t.Errorf("%s: %s.%s differs by %.3g (limit %.3g)", c.Name, layer, name, d, tol)
						}
					}
				}
			}
		})
	}
}

func layerName(i int) string { return "layer_" + strconv.Itoa(i) }

func TestGoldenGreedy(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			g := loadGolden(t, fx)
			m := loadFull(t, fixtureDir(fx))
			for _, c := range g.Cases {
				goldenGreedy(t, m, c)
			}
		})
	}
}
