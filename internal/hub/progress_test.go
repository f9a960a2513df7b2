package hub

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTextProgressTerminalThrottles(t *testing.T) {
	var out bytes.Buffer
	p := NewTextProgress(&out, true)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	p.Start("model.safetensors")
	for i := int64(0); i <= 100; i++ { // 100 updates over 2 s
		p.Update(i*10_000_000, 1_000_000_000)
		now = now.Add(20 * time.Millisecond)
	}
	p.Finish(nil)
	s := out.String()
	if n := strings.Count(s, "\r"); n < 10 || n > 12 { // ≤ 5 a second, plus the final line
		t.Errorf("%d redraws in 2 s:\n%q", n, s)
	}
	last := s[strings.LastIndex(s, "\r")+1:]
	for _, want := range []string{"model.safetensors", "[========================]", "1.0 GB / 1.0 GB", "MB/s", "ETA 0s"} {
		if !strings.Contains(last, want) {
			t.Errorf("final line %q lacks %q", last, want)
		}
	}
	if !strings.HasSuffix(s, "\n") {
		t.Error("no newline after the finished bar")
	}
	// Half way, 500 MB in 1 s: 500 MB/s and one second to go.
	if !strings.Contains(s, "ETA 1s") {
		t.Errorf("no ETA of 1s in %q", s)
	}
}

func TestTextProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := NewTextProgress(&out, false)
	p.Start("config.json")
	p.Update(0, 648)
	p.Update(648, 648)
	p.Finish(nil)
	p.Start("model.safetensors")
	p.Update(10, 20)
	p.Finish(errors.New("boom"))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || strings.Contains(out.String(), "\r") ||
		!strings.HasPrefix(lines[0], "config.json: 648 B") || !strings.HasSuffix(lines[1], "failed") {
		t.Errorf("plain output %q", out.String())
	}
}
