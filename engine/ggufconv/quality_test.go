package ggufconv

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
)

// The quality of converted files against their source model, at any size:
// set PHALANX_QUALITY_REF to a model (directory or GGUF) and
// PHALANX_QUALITY_FILES to space-separated GGUF files converted from it;
// PHALANX_QUALITY_TOKENS (default 256) random token ids run in one pass
// and every position's logits are compared. Run with -v for the markdown
// rows of docs/quantization.md's full-size table. Skipped without the
// variables: the models are gigabytes, not fixtures.
func TestQualityAgainstSource(t *testing.T) {
	ref, files := os.Getenv("PHALANX_QUALITY_REF"), strings.Fields(os.Getenv("PHALANX_QUALITY_FILES"))
	if ref == "" || len(files) == 0 {
		t.Skip("set PHALANX_QUALITY_REF and PHALANX_QUALITY_FILES to compare converted files with their source")
	}
	n := 256
	if s := os.Getenv("PHALANX_QUALITY_TOKENS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("PHALANX_QUALITY_TOKENS=%q", s)
		}
	}
	m := load(t, ref)
	V := m.Config.VocabSize
	// Ids below 50000 are ordinary BPE tokens in Phi-2's vocabulary.
	ids := tokens(n, min(V, 50000), 1)
	want := logits(t, m, ids)
	m.Close()
	t.Log("| file | top-1 agreement | mean KL (nats) | max KL | max \\|Δ logit\\| |")
	t.Log("| --- | --- | --- | --- | --- |")
	for _, f := range files {
		q := load(t, f)
		got := logits(t, q, ids)
		q.Close()
		agree, kl, maxKL, maxD := 0, 0.0, 0.0, 0.0
		for p := range ids {
			a, b := want[p*V:(p+1)*V], got[p*V:(p+1)*V]
			if engine.Argmax(a) == engine.Argmax(b) {
				agree++
			}
			k := klDivergence(a, b)
			kl += k
			maxKL = math.Max(maxKL, k)
			for i := range a {
				maxD = math.Max(maxD, math.Abs(float64(a[i])-float64(b[i])))
			}
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("| %s (%.2f GB) | %d/%d | %.2g | %.2g | %.3g |", filepath.Base(f), float64(st.Size())/1e9, agree, n, kl/float64(n), maxKL, maxD)
	}
}
