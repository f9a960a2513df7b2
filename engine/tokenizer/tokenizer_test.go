package tokenizer

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/phalanx-llm/phalanx/engine/gguf"
)

func TestMetadata(t *testing.T) {
	loadAll(t)
	for name, tok := range map[string]*Tokenizer{"gguf": phi2GGUF, "hf": phi2HF} {
		if tok.BOS() != 50256 || tok.EOS() != 50256 {
			t.Errorf("%s: bos %d eos %d", name, tok.BOS(), tok.EOS())
		}
		if tok.TokenText(262) != "Ġthe" || string(tok.TokenBytes(262)) != " the" {
			t.Errorf("%s: token 262 = %q / %q", name, tok.TokenText(262), tok.TokenBytes(262))
		}
		if !tok.IsSpecial(50256) || tok.IsSpecial(50257) || tok.IsSpecial(262) {
			t.Errorf("%s: special flags wrong", name)
		}
		if id, ok := tok.TokenID("Ġthe"); !ok || id != 262 {
			t.Errorf("%s: TokenID = %d, %v", name, id, ok)
		}
		if got := len(tok.AddedTokens()); got != 39 {
			t.Errorf("%s: %d added tokens", name, got)
		}
	}
	if phi2GGUF.VocabSize() != 51200 || phi2HF.VocabSize() != 50295 || gpt2GGUF.VocabSize() != 50257 {
		t.Errorf("vocab sizes %d %d %d", phi2GGUF.VocabSize(), phi2HF.VocabSize(), gpt2GGUF.VocabSize())
	}
	if phi2GGUF.TokenText(-1) != "" || phi2GGUF.TokenText(1<<20) != "" || phi2GGUF.TokenBytes(51200) != nil {
		t.Error("out-of-range ids should give empty text")
	}
}

func TestAddedTokens(t *testing.T) {
	loadAll(t)
	cases := []struct {
		text string
		want []int
	}{
		{"<|endoftext|>", []int{50256}},
		{"a<|endoftext|>b", []int{64, 50256, 65}},
		{strings.Repeat(" ", 33), []int{50257, 50286}},
		{"x\t\t\ty", []int{87, 50293, 88}},
		{"if x:\n        return", []int{361, 2124, 25, 198, 50280, 7783}},
	}
	for _, c := range cases {
		for name, tok := range map[string]*Tokenizer{"gguf": phi2GGUF, "hf": phi2HF} {
			if got := tok.Encode(c.text); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: Encode(%q) = %v, want %v", name, c.text, got, c.want)
			}
		}
	}
}

// TestLoadersAgree encodes text both Phi-2 loaders must treat alike.
func TestLoadersAgree(t *testing.T) {
	loadAll(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		s := randomText(rng, 1+rng.IntN(60))
		a, b := phi2GGUF.Encode(s), phi2HF.Encode(s)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%q: gguf %v, hf %v", s, a, b)
		}
		if d := phi2GGUF.Decode(a); d != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, d)
		}
	}
}

var textPieces = []string{
	" ", "  ", "   ", "\t", "\t\t", "\n", "\r\n", "\u00a0", "\u3000", "'s", "'ll", "'RE", "'",
	"the", "The", " quick", "brown", "fox", "123", "4", "½", "é", "日本語", "Ὀδυσσεύς", "🦙", "😀",
	".", ",", "!!", "?", "()", "{", "}", "<|endoftext|>", "<|end", "ğ", "\x00", "-", "==", "ÿ",
}

func randomText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(textPieces[rng.IntN(len(textPieces))])
	}
	return b.String()
}

func TestPreTokenize(t *testing.T) {
	cases := map[string][]string{
		"Hello world":       {"Hello", " world"},
		"  a":               {" ", " a"},
		"a  ":               {"a", "  "},
		"a \nb":             {"a", " ", "\n", "b"},
		"a\tb":              {"a", "\t", "b"},
		"I'm he's 'RE x'll": {"I", "'m", " he", "'s", " '", "RE", " x", "'ll"},
		"'''s":              {"'''", "s"},
		"3.14 ½":            {"3", ".", "14", " ½"},
		"x\u3000\u3000y":    {"x", "\u3000", "\u3000", "y"},
		"a\u00a0b":          {"a", "\u00a0", "b"},
		" \x80\xff!":        {" \x80\xff!"},
		"end \n\n":          {"end", " \n\n"},
		"don't":             {"don", "'t"},
		"ab12cd":            {"ab", "12", "cd"},
		" !":                {" !"},
		"  !":               {" ", " !"},
		"\n\n\nx":           {"\n\n", "\n", "x"},
	}
	for text, want := range cases {
		var got []string
		for i := 0; i < len(text); {
			j := nextPiece(text, i)
			got = append(got, text[i:j])
			i = j
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %q, want %q", text, got, want)
		}
	}
}

// TestBPELong checks that the heap-based merge for long words agrees with
// the scan used for short ones.
func TestBPELong(t *testing.T) {
	loadAll(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		var b strings.Builder
		for b.Len() < 2+rng.IntN(longWord-2) {
			b.WriteString(textPieces[rng.IntN(len(textPieces))])
		}
		w := b.String()
		if len(w) > longWord {
			w = w[:longWord]
		}
		short := phi2GGUF.bpeWord(nil, w)
		long := phi2GGUF.bpeLong(nil, w)
		if !reflect.DeepEqual(short, long) {
			t.Fatalf("%q: scan %v, heap %v", w, short, long)
		}
	}
	long := strings.Repeat("abracadabra", 1000)
	if got := phi2GGUF.Decode(phi2GGUF.Encode(long)); got != long {
		t.Error("long word does not round-trip")
	}
}

// TestLossy compares with the U+FFFD substitution of Rust's
// String::from_utf8_lossy (maximal subparts).
func TestLossy(t *testing.T) {
	cases := map[string]string{
		"abc":                  "abc",
		"\xe2\x82":             "\uFFFD",
		"\xe2\x82x":            "\uFFFDx",
		"\xe2\x82\xac":         "€",
		"\xf0\x9f\x98":         "\uFFFD",
		"\xf0\x9f\x98\x80":     "😀",
		"\x80\x80":             "\uFFFD\uFFFD",
		"\xc0\x80":             "\uFFFD\uFFFD",
		"\xed\xa0\x80":         "\uFFFD\uFFFD\uFFFD", // surrogate
		"\xe0\x80\x80":         "\uFFFD\uFFFD\uFFFD", // overlong
		"\xf4\x90\x80\x80":     "\uFFFD\uFFFD\uFFFD\uFFFD",
		"\xf5":                 "\uFFFD",
		"\xf1\x80\x80\xe1\x80": "\uFFFD\uFFFD",
		"a\xffb\xe2\x82\xacc":  "a\uFFFDb€c",
	}
	for in, want := range cases {
		got, n := appendLossy(nil, []byte(in), true)
		if string(got) != want || n != len(in) {
			t.Errorf("%q: got %q (%d consumed), want %q", in, got, n, want)
		}
	}
	if got, n := appendLossy(nil, []byte("a\xf0\x9f\x98"), false); string(got) != "a" || n != 1 {
		t.Errorf("partial: %q, %d", got, n)
	}
}

func streamDecode(tok *Tokenizer, ids []int) (string, []string) {
	d := tok.NewStreamDecoder()
	var parts []string
	var b strings.Builder
	for _, id := range ids {
		s := d.Add(id)
		parts = append(parts, s)
		b.WriteString(s)
	}
	s := d.Flush()
	parts = append(parts, s)
	b.WriteString(s)
	return b.String(), parts
}

func TestStreamDecoder(t *testing.T) {
	loadAll(t)
	ids := phi2GGUF.Encode("héllo 🦙 wörld 日本語")
	got, parts := streamDecode(phi2GGUF, ids)
	if got != "héllo 🦙 wörld 日本語" {
		t.Errorf("stream = %q", got)
	}
	for _, p := range parts {
		if !utf8.ValidString(p) {
			t.Errorf("part %q is not valid UTF-8", p)
		}
	}
	// Random id sequences, including bytes that never complete.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		ids := make([]int, rng.IntN(12))
		for i := range ids {
			if rng.IntN(2) == 0 {
				ids[i] = int(phi2GGUF.byteID[rng.IntN(256)])
			} else {
				ids[i] = rng.IntN(51300) - 50
			}
		}
		want := phi2GGUF.Decode(ids)
		if got, _ := streamDecode(phi2GGUF, ids); got != want {
			t.Fatalf("%v: stream %q, Decode %q", ids, got, want)
		}
	}
}

func TestDecodeSkipsUnknown(t *testing.T) {
	loadAll(t)
	if got := phi2HF.Decode([]int{15496, -1, 60000, 995}); got != "Hello world" {
		t.Errorf("Decode = %q", got)
	}
	if got := phi2GGUF.Decode([]int{50300}); got != "[PAD50300]" {
		t.Errorf("Decode(pad) = %q", got)
	}
}

func TestMarshalHFJSON(t *testing.T) {
	loadAll(t)
	vs := readVectors(t, "ggml-vocab-phi-2.gguf")
	for name, tok := range map[string]*Tokenizer{"gguf": phi2GGUF, "hf": phi2HF} {
		js, err := tok.MarshalHFJSON()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := tok.MarshalHFConfig()
		if err != nil {
			t.Fatal(err)
		}
		re, err := FromHFJSON(js, cfg)
		if err != nil {
			t.Fatalf("%s: reload: %v", name, err)
		}
		if re.VocabSize() != tok.VocabSize() || re.BOS() != tok.BOS() || re.EOS() != tok.EOS() {
			t.Errorf("%s: reload vocab %d bos %d eos %d", name, re.VocabSize(), re.BOS(), re.EOS())
		}
		checkVectors(t, re, vs)
		for id := range tok.VocabSize() {
			if re.TokenText(id) != tok.TokenText(id) {
				t.Fatalf("%s: token %d: %q != %q", name, id, re.TokenText(id), tok.TokenText(id))
			}
		}
	}
}

func TestMergesPairForm(t *testing.T) {
	js := []byte(`{"added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
		"decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {}, "merges": [["a", "b"]]}}`)
	// Build a vocab of the 256 bytes plus "ab" by hand.
	var b bytes.Buffer
	b.WriteString(`{`)
	for i, c := range byteOrder {
		q := byteLevelEncode([]byte{c})
		if q == `"` || q == `\` {
			q = `\` + q
		}
		b.WriteString(`"` + q + `": ` + strconv.Itoa(i) + `, `)
	}
	b.WriteString(`"ab": 256}`)
	js = bytes.Replace(js, []byte(`"vocab": {}`), append([]byte(`"vocab": `), b.Bytes()...), 1)
	tok, err := FromHFJSON(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("abc"); !reflect.DeepEqual(got, []int{256, 66}) {
		t.Errorf("Encode = %v", got)
	}
	if tok.BOS() != -1 || tok.EOS() != -1 {
		t.Errorf("bos %d eos %d", tok.BOS(), tok.EOS())
	}
	str := bytes.Replace(js, []byte(`[["a", "b"]]`), []byte(`["a b"]`), 1)
	tok2, err := FromHFJSON(str, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok2.Encode("abc"); !reflect.DeepEqual(got, []int{256, 66}) {
		t.Errorf("string merges: Encode = %v", got)
	}
}

func TestUnsupported(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(testdataDir, "phi-2-hf", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string][2]string{
		"prefix space": {"\"add_prefix_space\": false", "\"add_prefix_space\": true"},
		"normalizer":   {`"normalizer": null`, `"normalizer": {"type": "NFC"}`},
		"model":        {`"type": "BPE"`, `"type": "WordPiece"`},
		"lstrip":       {`"lstrip": false`, `"lstrip": true`},
	}
	for name, m := range mods {
		if !bytes.Contains(base, []byte(m[0])) {
			t.Fatalf("%s: pattern not in tokenizer.json", name)
		}
		js := bytes.Replace(base, []byte(m[0]), []byte(m[1]), 1)
		if _, err := FromHFJSON(js, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := FromHFJSON([]byte(`{`), nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := Load(filepath.Join(testdataDir, "ggml-vocab-phi-2.gguf.inp")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Load(.inp): %v", err)
	}
	w := gguf.NewWriter()
	w.Set("tokenizer.ggml.model", gguf.String("llama"))
	var buf bytes.Buffer
	w.WriteTo(&buf)
	f, err := gguf.NewFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "llama.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromGGUFFile(f); !errors.Is(err, ErrUnsupported) {
		t.Errorf("llama GGUF: %v", err)
	}
}

func TestLoad(t *testing.T) {
	loadAll(t)
	for _, p := range []string{
		filepath.Join(testdataDir, "ggml-vocab-phi-2.gguf"),
		filepath.Join(testdataDir, "phi-2-hf"),
		filepath.Join(testdataDir, "phi-2-hf", "tokenizer.json"),
	} {
		tok, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode("Hello  world"); !reflect.DeepEqual(got, []int{15496, 50286, 6894}) {
			t.Errorf("%s: %v", p, got)
		}
		if tok.EOS() != 50256 {
			t.Errorf("%s: eos %d", p, tok.EOS())
		}
	}
}

func TestSynthesize(t *testing.T) {
	for _, n := range []int{257, 300, 1000, 4096, 51200} {
		js, err := SynthesizeByteLevelJSON(n)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := FromHFJSON(js, nil)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if tok.VocabSize() != n || tok.EOS() != n-1 || tok.BOS() != n-1 || !tok.IsSpecial(n-1) || tok.TokenText(n-1) != "<|endoftext|>" {
			t.Errorf("%d: size %d eos %d bos %d", n, tok.VocabSize(), tok.EOS(), tok.BOS())
		}
		for _, s := range []string{"The quick brown fox jumps over the lazy dog.", "日本語 🦙\t\n  x<|endoftext|>", ""} {
			ids := tok.Encode(s)
			if got := tok.Decode(ids); got != s {
				t.Errorf("%d: round trip %q -> %q", n, s, got)
			}
			for _, id := range ids {
				if id < 0 || id >= n {
					t.Errorf("%d: id %d out of range", n, id)
				}
			}
		}
		if n == 1000 {
			if ids := tok.Encode(" the"); len(ids) != 1 {
				t.Errorf("learned merges do not cover \" the\": %v", ids)
			}
		}
		again, _ := SynthesizeByteLevelJSON(n)
		if !bytes.Equal(js, again) {
			t.Errorf("%d: not deterministic", n)
		}
	}
	if _, err := SynthesizeByteLevelJSON(256); !errors.Is(err, ErrInvalid) {
		t.Errorf("256: %v", err)
	}
}

// benchText is the 46 test strings of the vectors file repeated to about
// 400 KB (mostly short English and symbols, with some Unicode).
func benchText(b *testing.B) string {
	vs := readVectors(b, "ggml-vocab-phi-2.gguf")
	var sb strings.Builder
	for sb.Len() < 400<<10 {
		for _, v := range vs {
			sb.WriteString(v.text)
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

// englishText generates deterministic English-like prose of about n bytes
// from a fixed word list.
func englishText(n int) string {
	words := strings.Fields(synthCorpus)
	rng := rand.New(rand.NewPCG(7, 8))
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(12) == 0 {
			sb.WriteString(".\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	return sb.String()
}

func BenchmarkEncode(b *testing.B) {
	loadAll(b)
	for _, c := range []struct{ name, text string }{
		{"english", englishText(400 << 10)},
		{"vectors", benchText(b)},
	} {
		b.Run(c.name, func(b *testing.B) {
			phi2GGUF.Encode(c.text) // warm the word cache, as a server would be
			b.SetBytes(int64(len(c.text)))
			b.ReportAllocs()
			for b.Loop() {
				phi2GGUF.Encode(c.text)
			}
		})
	}
}

func BenchmarkEncodeCold(b *testing.B) {
	text := englishText(400 << 10)
	js, _ := os.ReadFile(filepath.Join(testdataDir, "phi-2-hf", "tokenizer.json"))
	tok, err := FromHFJSON(js, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.cache = wordCache{}
		tok.Encode(text)
	}
}

func BenchmarkLoadGGUF(b *testing.B) {
	for b.Loop() {
		if _, err := FromGGUF(filepath.Join(testdataDir, "ggml-vocab-phi-2.gguf")); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzEncode(f *testing.F) {
	loadAll(f)
	for _, v := range readVectors(f, "ggml-vocab-phi-2.gguf") {
		f.Add([]byte(v.text))
	}
	f.Add([]byte("\xe2\x82 \xff<|endoftext|>\t\t\t"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := string(in)
		ids := phi2GGUF.Encode(s)
		if hf := phi2HF.Encode(s); !reflect.DeepEqual(ids, hf) {
			t.Fatalf("gguf %v, hf %v", ids, hf)
		}
		dec := phi2GGUF.Decode(ids)
		if utf8.ValidString(s) && dec != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, dec)
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("Decode produced invalid UTF-8 %q", dec)
		}
		if got, _ := streamDecode(phi2GGUF, ids); got != dec {
			t.Fatalf("stream %q, Decode %q", got, dec)
		}
		// Arbitrary id sequences decode the same streamed or not.
		var rnd []int
		for i := 0; i+1 < len(in); i += 2 {
			rnd = append(rnd, int(in[i])<<8|int(in[i+1]))
		}
		if got, _ := streamDecode(phi2GGUF, rnd); got != phi2GGUF.Decode(rnd) {
			t.Fatalf("ids %v: stream %q, Decode %q", rnd, got, phi2GGUF.Decode(rnd))
		}
	})
}

func TestConcurrentEncode(t *testing.T) {
	loadAll(t)
	vs := readVectors(t, "ggml-vocab-phi-2.gguf")
	js, _ := os.ReadFile(filepath.Join(testdataDir, "phi-2-hf", "tokenizer.json"))
	tok, err := FromHFJSON(js, nil) // fresh cache
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 200 {
				v := vs[(i*7+g)%len(vs)]
				if got := tok.Encode(v.text); !reflect.DeepEqual(got, v.ids) {
					done <- errors.New("mismatch on " + v.text)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
