package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Character classes of GPT-2's pre-tokenization pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// implemented by hand: Go's regexp has no lookahead, and a scanner is
// several times faster.
const (
	classOther byte = iota
	classLetter
	classNumber
	classSpace
)

var asciiClass [utf8.RuneSelf]byte

func init() {
	for c := range utf8.RuneSelf {
		asciiClass[c] = runeClass(rune(c))
	}
}

// runeClass follows Oniguruma's Unicode \s (the White_Space property),
// \p{L} and \p{N}.
func runeClass(r rune) byte {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.Is(unicode.White_Space, r):
		return classSpace
	}
	return classOther
}

// classAt returns the class and width of the rune at s[i]. Invalid UTF-8
// decodes as U+FFFD, which is classOther.
func classAt(s string, i int) (byte, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return runeClass(r), w
}

// runEnd returns the end of the run of class c starting at i.
func runEnd(s string, i int, c byte) int {
	for i < len(s) {
		ci, w := classAt(s, i)
		if ci != c {
			break
		}
		i += w
	}
	return i
}

// nextPiece returns the end of the pre-token starting at s[i].
func nextPiece(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	if s[i] == ' ' && i+1 < len(s) {
		if c, w := classAt(s, i+1); c != classSpace {
			return runEnd(s, i+1+w, c)
		}
	}
	c, w := classAt(s, i)
	if c != classSpace {
		return runEnd(s, i+w, c)
	}
	// \s+(?!\S) takes the whole run if it ends the text, otherwise all
	// but its last rune so that rune can prefix the next word; a single
	// space rune before a non-space falls through to \s+.
	last := i
	j := i + w
	for j < len(s) {
		c, w := classAt(s, j)
		if c != classSpace {
			break
		}
		last = j
		j += w
	}
	if j == len(s) || last == i {
		return j
	}
	return last
}
