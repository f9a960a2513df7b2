package sample

import (
	"strings"
	"unicode/utf8"
)

// StopMatcher finds stop strings in text that arrives in pieces, one
// decoded token at a time. It emits text as early as it safely can: it holds
// back only what could still grow into a stop string, plus an incomplete
// UTF-8 sequence at the end, so a client never sees the beginning of a stop
// string or half a character.
//
// The result is the same however the text is split: the emitted text is
// everything before the earliest (leftmost) occurrence of any stop string,
// or all of the text when none occurs. Stop strings are matched as bytes;
// the stop string itself is never emitted. Empty stop strings are ignored.
//
// A StopMatcher is not safe for concurrent use.
type StopMatcher struct {
	stops   []string
	held    string
	stopped bool
}

// NewStopMatcher returns a matcher for stops. With no non-empty stop
// strings it passes text through (still holding back incomplete UTF-8).
func NewStopMatcher(stops []string) *StopMatcher {
	m := &StopMatcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
		}
	}
	return m
}

// Push adds the next piece of text. It returns the text that can be emitted
// now and whether a stop string has been completed. Once stopped is true,
// emit holds the last text before the stop string, and later calls return
// ("", true).
func (m *StopMatcher) Push(text string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	s := m.held + text
	match := m.earliestMatch(s)
	partial := m.partialStart(s)
	// A complete match wins unless a stop string that starts earlier may
	// still complete; then wait for more text.
	if match >= 0 && match <= partial {
		m.stopped = true
		m.held = ""
		return s[:match], true
	}
	cut := partial
	if match < 0 {
		cut = min(cut, incompleteUTF8Start(s))
	}
	m.held = s[cut:]
	return s[:cut], false
}

// Flush ends the text and returns what was held back, cut at a stop string
// that the end of the text has confirmed. Afterwards [StopMatcher.Stopped]
// says whether one was found.
func (m *StopMatcher) Flush() string {
	if m.stopped {
		return ""
	}
	s := m.held
	m.held = ""
	if match := m.earliestMatch(s); match >= 0 {
		m.stopped = true
		return s[:match]
	}
	return s
}

// Stopped reports whether a stop string has been found by
// [StopMatcher.Push] or [StopMatcher.Flush].
//
// Flush can find a stop string only in an unusual case: the text held a
// complete stop string while an earlier, longer one could still complete,
// and then the text ended. Callers that pick the finish reason after Flush
// should ask Stopped.
func (m *StopMatcher) Stopped() bool { return m.stopped }

// earliestMatch returns the start of the leftmost stop string in s, or -1.
func (m *StopMatcher) earliestMatch(s string) int {
	best := -1
	for _, stop := range m.stops {
		limit := s
		if best >= 0 {
			// Only a match starting before best can improve on it.
			limit = s[:min(len(s), best+len(stop)-1)]
		}
		if i := strings.Index(limit, stop); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// partialStart returns the start of the longest suffix of s that is a proper
// prefix of some stop string, or len(s) if there is none. Text before it can
// never be part of a stop string that completes later.
func (m *StopMatcher) partialStart(s string) int {
	start := len(s)
	for _, stop := range m.stops {
		// Suffixes longer than the best one so far only.
		for n := min(len(stop)-1, len(s)); n > len(s)-start; n-- {
			if strings.HasSuffix(s, stop[:n]) {
				start = len(s) - n
				break
			}
		}
	}
	return start
}

// incompleteUTF8Start returns where a truncated UTF-8 sequence at the end of
// s begins, or len(s). Invalid bytes are not held: only a valid prefix of a
// multi-byte character can still be completed by the next piece.
func incompleteUTF8Start(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return i
			}
			break
		}
	}
	return len(s)
}
