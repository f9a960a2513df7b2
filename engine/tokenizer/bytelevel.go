package tokenizer

import "unicode/utf8"

// GPT-2's byte-level alphabet: every byte maps to a printable rune so that
// BPE tokens are ordinary strings. Printable Latin-1 bytes map to
// themselves; the other 68 bytes map, in byte order, to U+0100 onwards
// (space becomes 'Ġ' U+0120, newline 'Ċ' U+010A).
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
	// byteOrder lists bytes in GPT-2's vocabulary order: the self-mapped
	// bytes first, then the shifted ones.
	byteOrder [256]byte
)

func init() {
	n := 0
	shifted := 0
	for pass := range 2 {
		for b := range 256 {
			self := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
			if (pass == 0) != self {
				continue
			}
			r := rune(b)
			if !self {
				r = rune(256 + shifted)
				shifted++
			}
			byteToRune[b] = r
			runeToByte[r] = byte(b)
			byteOrder[n] = byte(b)
			n++
		}
	}
}

// byteLevelEncode maps raw bytes to their byte-level string.
func byteLevelEncode(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, byteToRune[c])
	}
	return string(out)
}

// byteLevelDecode maps a token string back to bytes the way Hugging Face's
// ByteLevel decoder does: if every rune belongs to the byte-level alphabet
// the token stands for those bytes, otherwise (added tokens such as runs of
// plain spaces) for its own UTF-8 bytes.
func byteLevelDecode(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}
