package sample

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceStop is what a StopMatcher must produce for the whole text: the
// text before the earliest occurrence of any non-empty stop string.
func referenceStop(stops []string, text string) (string, bool) {
	first := -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return text, false
	}
	return text[:first], true
}

// runStop feeds pieces to a new matcher and returns everything it emitted,
// whether it stopped, and each Push's output.
func runStop(stops []string, pieces []string) (string, bool, []string) {
	m := NewStopMatcher(stops)
	var out strings.Builder
	var emits []string
	for _, p := range pieces {
		emit, stopped := m.Push(p)
		out.WriteString(emit)
		emits = append(emits, emit)
		if stopped {
			if m.Flush() != "" {
				panic("Flush after stop returned text")
			}
			return out.String(), true, emits
		}
	}
	out.WriteString(m.Flush())
	return out.String(), m.Stopped(), emits
}

func TestStopMatcher(t *testing.T) {
	tests := []struct {
		name    string
		stops   []string
		pieces  []string
		emits   []string // output of each Push, up to the stop
		want    string
		stopped bool
	}{
		{"no stops", nil, []string{"Hello", ", world"}, []string{"Hello", ", world"}, "Hello, world", false},
		{"empty stop ignored", []string{""}, []string{"ab", "c"}, []string{"ab", "c"}, "abc", false},
		{"stop inside one piece", []string{"\nAlice:"}, []string{"Sure.\nAlice: hi"}, []string{"Sure."}, "Sure.", true},
		{"stop at the very start", []string{"###"}, []string{"###", "more"}, []string{""}, "", true},
		{"stop split into characters", []string{"\nAlice:"},
			[]string{"Fine", ".", "\n", "A", "l", "i", "c", "e", ":", " next"},
			[]string{"Fine", ".", "", "", "", "", "", "", ""}, "Fine.", true},
		{"false start is released", []string{"\nAlice:"},
			[]string{"one", "\n", "Al", "ways"},
			[]string{"one", "", "", "\nAlways"}, "one\nAlways", false},
		{"held text released by Flush", []string{"STOP"},
			[]string{"it is ST"}, []string{"it is "}, "it is ST", false},
		{"overlapping candidates", []string{"abab"},
			[]string{"a", "b", "a", "b", "a", "b"},
			[]string{"", "", "", ""}, "", true},
		{"overlap after a mismatch", []string{"abab"},
			[]string{"xaba", "bab"},
			[]string{"x", ""}, "x", true},
		{"retry after a failed overlap", []string{"abab"},
			[]string{"xaba", "abab"},
			[]string{"x", "aba"}, "xaba", true},
		{"earliest match wins", []string{"world", "lo"},
			[]string{"hello world"}, []string{"hel"}, "hel", true},
		{"earlier longer stop beats a complete later one", []string{"abcd", "bc"},
			[]string{"abc", "d"}, []string{"", ""}, "", true},
		{"later stop wins when the earlier one fails", []string{"abcd", "bc"},
			[]string{"abc", "x"}, []string{"", "a"}, "a", true},
		{"complete match confirmed by Flush", []string{"abcd", "bc"},
			[]string{"xabc"}, []string{"x"}, "xa", true},
		{"unicode stop", []string{"。\n"},
			[]string{"日本", "語", "。", "\n", "続き"},
			[]string{"日本", "語", "", ""}, "日本語", true},
		{"stop split inside a rune", []string{"→"},
			[]string{"a\xe2", "\x86", "\x92b"},
			[]string{"a", "", ""}, "a", true},
		{"incomplete rune held back", nil,
			[]string{"caf\xc3", "\xa9!", "\xe2\x82"},
			[]string{"caf", "é!", ""}, "café!\xe2\x82", false},
		{"invalid bytes not held", nil,
			[]string{"a\xff", "b"}, []string{"a\xff", "b"}, "a\xffb", false},
		{"stop equal to the whole text", []string{"end"},
			[]string{"e", "n", "d"}, []string{"", "", ""}, "", true},
		{"duplicate stops", []string{"x", "x"}, []string{"abxc"}, []string{"ab"}, "ab", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stopped, emits := runStop(tt.stops, tt.pieces)
			if got != tt.want || stopped != tt.stopped {
				t.Errorf("got %q, stopped=%v; want %q, stopped=%v", got, stopped, tt.want, tt.stopped)
			}
			if len(emits) != len(tt.emits) {
				t.Fatalf("emits %q, want %q", emits, tt.emits)
			}
			for i := range emits {
				if emits[i] != tt.emits[i] {
					t.Errorf("emits %q, want %q", emits, tt.emits)
					break
				}
			}
			wantRef, stoppedRef := referenceStop(tt.stops, strings.Join(tt.pieces, ""))
			if got != wantRef || stopped != stoppedRef {
				t.Errorf("disagrees with the reference: %q, %v", wantRef, stoppedRef)
			}
		})
	}
}

func TestStopMatcherAfterStop(t *testing.T) {
	m := NewStopMatcher([]string{"x"})
	if emit, stopped := m.Push("ax"); emit != "a" || !stopped {
		t.Fatalf("Push = %q, %v", emit, stopped)
	}
	if emit, stopped := m.Push("more"); emit != "" || !stopped {
		t.Errorf("Push after stop = %q, %v; want \"\", true", emit, stopped)
	}
	if got := m.Flush(); got != "" || !m.Stopped() {
		t.Errorf("Flush after stop = %q, Stopped = %v", got, m.Stopped())
	}
}

// TestStopMatcherHoldsLittle checks that only a possible stop-string prefix
// is held back: text that cannot start a stop string goes out at once.
func TestStopMatcherHoldsLittle(t *testing.T) {
	m := NewStopMatcher([]string{"\nInstruct:", "\nOutput:"})
	text := "The answer is 42, because six times seven is forty-two."
	for _, r := range text {
		if emit, _ := m.Push(string(r)); emit != string(r) {
			t.Fatalf("Push(%q) = %q: held back text that cannot start a stop string", r, emit)
		}
	}
}

// TestStopMatcherAllSplits tries every way to split texts into two and three
// pieces, and one-byte pieces.
func TestStopMatcherAllSplits(t *testing.T) {
	cases := []struct {
		stops []string
		text  string
	}{
		{[]string{"abab"}, "xxababab"},
		{[]string{"aab", "ab"}, "aaab"},
		{[]string{"abcd", "bc", "c"}, "zabcx"},
		{[]string{"\nAlice:", "\nBob:"}, "Sure!\nAl\nBob: hi\nAlice: x"},
		{[]string{"ééé", "é"}, "aéééb"},
		{[]string{"aaa"}, "aaaaaaaa"},
		{[]string{"xyz"}, "xyxyxy"},
	}
	for _, c := range cases {
		want, wantStopped := referenceStop(c.stops, c.text)
		check := func(pieces []string) {
			got, stopped, _ := runStop(c.stops, pieces)
			if got != want || stopped != wantStopped {
				t.Errorf("stops %q pieces %q: got %q, %v; want %q, %v", c.stops, pieces, got, stopped, want, wantStopped)
			}
		}
		for i := 0; i <= len(c.text); i++ {
			for j := i; j <= len(c.text); j++ {
				check([]string{c.text[:i], c.text[i:j], c.text[j:]})
			}
		}
		var bytes []string
		for i := range len(c.text) {
			bytes = append(bytes, c.text[i:i+1])
		}
		check(bytes)
	}
}

func FuzzStopMatcher(f *testing.F) {
	f.Add("abab", "", "x", "ababab", []byte{1, 1, 1, 1, 1, 1})
	f.Add("\nAlice:", "\nBob:", "", "Hi.\nAl\nBob: ok\nAlice: more", []byte{2, 3, 1, 7})
	f.Add("abcd", "bc", "c", "zabcx", []byte{3, 1})
	f.Add("。", "語。", "", "日本語。続き", []byte{1, 2, 3, 4})
	f.Add("aaa", "aa", "a", "baaab", []byte{0, 0, 2})
	f.Fuzz(func(t *testing.T, stop1, stop2, stop3, text string, cuts []byte) {
		stops := []string{stop1, stop2, stop3}
		var pieces []string
		rest := text
		for _, c := range cuts {
			n := min(int(c)%9, len(rest)) // empty pieces too
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)

		m := NewStopMatcher(stops)
		var out strings.Builder
		stopped := false
		for _, p := range pieces {
			emit, s := m.Push(p)
			out.WriteString(emit)
			if s {
				stopped = true
				break
			}
			// Never hold more than a stop string or a rune could need.
			maxHeld := utf8.UTFMax - 1
			for _, s := range stops {
				maxHeld = max(maxHeld, len(s)-1)
			}
			if len(m.held) > maxHeld {
				t.Fatalf("holding %d bytes %q, more than %d", len(m.held), m.held, maxHeld)
			}
		}
		if !stopped {
			out.WriteString(m.Flush())
			stopped = m.Stopped()
		}
		want, wantStopped := referenceStop(stops, text)
		if out.String() != want || stopped != wantStopped {
			t.Fatalf("stops %q pieces %q: got %q, %v; want %q, %v", stops, pieces, out.String(), stopped, want, wantStopped)
		}
	})
}
