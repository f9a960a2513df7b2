package hub

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress is told about each file a Client downloads, one file at a time.
type Progress interface {
	// Start begins a file.
	Start(name string)
	// Update reports the bytes on disk (a resumed prefix included) and the
	// total, -1 while unknown.
	Update(done, total int64)
	// Finish ends the file, with the download's error or nil.
	Finish(err error)
}

// TextProgress writes progress to w: on a terminal a bar redrawn in place
// at most five times a second, otherwise one line per finished file.
type TextProgress struct {
	w        io.Writer
	terminal bool
	now      func() time.Time

	name        string
	start, last time.Time
	base        int64 // bytes on disk when the file started: not part of the rate
	done, total int64
	drawn       bool
}

// NewTextProgress returns a Progress writing to w; terminal selects the
// redrawn bar.
func NewTextProgress(w io.Writer, terminal bool) *TextProgress {
	return &TextProgress{w: w, terminal: terminal, now: time.Now}
}

const redrawEvery = 200 * time.Millisecond

// Start implements Progress.
func (p *TextProgress) Start(name string) {
	p.name, p.start, p.base, p.done, p.total, p.drawn = name, p.now(), -1, 0, -1, false
}

// Update implements Progress.
func (p *TextProgress) Update(done, total int64) {
	if p.base < 0 || done < p.base { // first report, or a restart from zero
		p.base, p.start = done, p.now()
	}
	p.done, p.total = done, total
	if !p.terminal {
		return
	}
	if now := p.now(); !p.drawn || now.Sub(p.last) >= redrawEvery {
		p.last, p.drawn = now, true
		fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(now))
	}
}

// Finish implements Progress.
func (p *TextProgress) Finish(err error) {
	now := p.now()
	status := ""
	if err != nil {
		status = "  failed"
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s%s\x1b[K\n", p.line(now), status)
		return
	}
	secs := now.Sub(p.start).Seconds()
	fmt.Fprintf(p.w, "%s: %s in %.1fs (%s/s)%s\n", p.name, formatBytes(p.done), secs, formatBytes(p.rate(now)), status)
}

func (p *TextProgress) rate(now time.Time) int64 {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 || p.done <= p.base {
		return 0
	}
	return int64(float64(p.done-p.base) / secs)
}

// line is "name  [=====>    ]  1.2 GB / 5.0 GB  45.3 MB/s  ETA 1m23s".
func (p *TextProgress) line(now time.Time) string {
	rate := p.rate(now)
	name := p.name
	if len(name) > 36 {
		name = "…" + name[len(name)-35:]
	}
	if p.total <= 0 {
		return fmt.Sprintf("%-36s  %s  %s/s", name, formatBytes(p.done), formatBytes(rate))
	}
	const width = 24
	filled := int(float64(width) * float64(p.done) / float64(p.total))
	filled = min(max(filled, 0), width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	eta := "--"
	if rate > 0 && p.done < p.total {
		eta = (time.Duration(float64(p.total-p.done)/float64(rate)) * time.Second).Round(time.Second).String()
	} else if p.done >= p.total {
		eta = "0s"
	}
	return fmt.Sprintf("%-36s [%s] %s / %s  %s/s  ETA %s", name, bar, formatBytes(p.done), formatBytes(p.total), formatBytes(rate), eta)
}

func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
