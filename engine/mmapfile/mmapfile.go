// Package mmapfile maps weight files read-only into memory, so a process
// pays resident memory only for the pages it touches, and asks the kernel
// to read ranges ahead of use. Off Unix the file is read into memory once.
// Mapped data must never be written: the mapping is read-only and a write
// faults.
package mmapfile

// Mapping is one mapped file; Data is its whole content.
type Mapping struct{ Data []byte }

// Map maps path read-only.
func Map(path string) (*Mapping, error) { return mapFile(path) }

// Close unmaps the file; slices of Data must no longer be used.
func (m *Mapping) Close() error {
	if m == nil || m.Data == nil {
		return nil
	}
	err := unmap(m.Data)
	m.Data = nil
	return err
}

// WillNeed asks the kernel to read b's pages ahead of use (b must lie in a
// mapping). It is advice: errors are ignored.
func WillNeed(b []byte) { willNeed(b) }

// Populate maps b's pages in now, ahead of a pass that reads all of it
// (the load-time copies of engine/kernels' Repacked): one
// MADV_POPULATE_READ (Linux 5.14) instead of a page fault every few pages.
// b may be any memory. It is advice: errors (an older kernel) are ignored,
// and the faults then come as before.
func Populate(b []byte) { populate(b) }

// DontNeed tells the kernel the process no longer needs the whole pages
// inside b (b must lie in a mapping): they leave the resident set and are
// read again from the file (or the page cache) if touched. It is advice:
// errors are ignored.
func DontNeed(b []byte) { dontNeed(b) }
