package tokenizer

// StreamDecoder turns a stream of token ids into text as it arrives. A
// character whose bytes are split across tokens is held back until it is
// complete, so every returned string is valid UTF-8, and the concatenation
// of all Add results and Flush equals Decode of all the ids.
//
// A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
	out     []byte
}

// NewStreamDecoder returns a decoder for one sequence.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{t: t}
}

// Add decodes one more id and returns the text that is now complete.
// Unknown ids contribute nothing.
func (d *StreamDecoder) Add(id int) string {
	if id < 0 || id >= len(d.t.bytes) {
		return ""
	}
	d.pending = append(d.pending, d.t.bytes[id]...)
	return d.drain(false)
}

// Flush returns the held-back bytes of an unfinished character (as
// U+FFFD, as Decode would render them) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	return d.drain(true)
}

func (d *StreamDecoder) drain(final bool) string {
	out, n := appendLossy(d.out[:0], d.pending, final)
	d.out = out
	rest := copy(d.pending, d.pending[n:])
	d.pending = d.pending[:rest]
	if len(out) == 0 {
		return ""
	}
	return string(out)
}
