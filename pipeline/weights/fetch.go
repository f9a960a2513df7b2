package weights

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Source is a node to fetch tensors from.
type Source struct {
	Name   string // for logs: "coordinator", or a worker id
	Client phalanxpb.WeightsClient
}

// Progress is a transfer's state: Done of Total bytes of the range are in
// the cache, Received of them came over the wire in this transfer.
type Progress struct {
	Done, Total, Received uint64
}

// Fetcher fills a Cache with a manifest's tensors.
type Fetcher struct {
	Cache *Cache
	// Sources lists where to ask for a tensor, best first (peers that hold
	// its layer, then the coordinator). A source that answers NOT_FOUND or
	// fails is skipped for the next; the transfer resumes from the bytes
	// already on disk.
	Sources func(t Tensor) []Source
	// Limiter throttles the bytes received (nil: no limit); see NewLimiter.
	Limiter *rate.Limiter
	// OnProgress is told the progress after every chunk (it should be cheap).
	OnProgress func(Progress)
	// StallTimeout ends a stream that delivers nothing this long (a link
	// that went down without a reset); default 30 s.
	StallTimeout time.Duration
	// GiveUp ends Ensure after this long without a byte arriving; default
	// 2 min.
	GiveUp time.Duration
	Logger *slog.Logger

	mu   sync.Mutex
	prog Progress
}

// NewLimiter is a limiter of bytesPerSecond (nil for 0: no limit), with a
// burst of a twentieth of a second (16 KiB to a chunk), so the rate holds
// from the first chunk on.
func NewLimiter(bytesPerSecond float64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := int(min(max(bytesPerSecond/20, 16<<10), ChunkBytes))
	l := rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
	l.AllowN(time.Now(), burst) // start empty
	return l
}

// wait takes n bytes from the limiter, a burst at a time.
func (f *Fetcher) wait(ctx context.Context, n int) error { return waitBytes(ctx, f.Limiter, n) }

// waitBytes takes n bytes from l (nil: no limit), a burst at a time.
func waitBytes(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Progress returns the progress of the last or current Ensure.
func (f *Fetcher) Progress() Progress {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prog
}

func (f *Fetcher) advance(done, received uint64) {
	f.mu.Lock()
	f.prog.Done += done
	f.prog.Received += received
	p := f.prog
	f.mu.Unlock()
	if f.OnProgress != nil {
		f.OnProgress(p)
	}
}

// Ensure makes the cache hold every tensor of man, intact: it checks the
// tensors present against their digests (deleting corrupted ones) and
// fetches the rest. It returns when all are present, when ctx ends, or
// after GiveUp without progress.
func (f *Fetcher) Ensure(ctx context.Context, man *Manifest) error {
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	f.mu.Lock()
	f.prog = Progress{Total: man.Bytes()}
	f.mu.Unlock()
	var missing []Tensor
	for _, t := range man.Tensors {
		ok, err := f.Cache.Verify(t)
		if errors.Is(err, ErrCorrupt) {
			log.Warn("corrupted cached tensor: fetching it again", "err", err)
		} else if err != nil {
			return err
		}
		if ok {
			f.advance(t.Size, 0)
		} else {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		log.Info("fetching weights", "layers", man.Layers.String(), "tensors", len(missing), "of", len(man.Tensors),
			"bytes_cached", f.Progress().Done, "bytes_total", man.Bytes())
	}
	for _, t := range missing {
		if err := f.fetch(ctx, t, log); err != nil {
			return err
		}
	}
	return nil
}

// fetch brings one tensor into the cache, trying its sources in turn and
// resuming from the bytes on disk after every failure.
func (f *Fetcher) fetch(ctx context.Context, t Tensor, log *slog.Logger) error {
	giveUp := f.GiveUp
	if giveUp <= 0 {
		giveUp = 2 * time.Minute
	}
	lastProgress := time.Now()
	wait := 200 * time.Millisecond
	var counted uint64 // bytes of t counted in Progress.Done
	for {
		var errs []error
		for _, src := range f.Sources(t) {
			got, err := f.read(ctx, t, src, &counted)
			if got > 0 {
				lastProgress = time.Now()
			}
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if status.Code(err) != codes.NotFound {
				log.Warn("weights transfer interrupted: resuming", "tensor", t.Name, "source", src.Name, "received", got, "err", err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", src.Name, err))
		}
		if time.Since(lastProgress) > giveUp {
			return fmt.Errorf("weights: %s: no source delivered for %v: %w", t.Name, giveUp, errors.Join(errs...))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// read streams the rest of t from src into its .part file and commits it;
// got is the bytes received. counted tracks the bytes of t in
// Progress.Done across attempts.
func (f *Fetcher) read(ctx context.Context, t Tensor, src Source, counted *uint64) (got uint64, err error) {
	file, off, err := f.Cache.partial(t)
	if err != nil {
		return 0, err
	}
	if off != *counted { // resumed from a .part of an earlier run, or restarted from 0
		f.mu.Lock()
		f.prog.Done = f.prog.Done - *counted + off
		f.mu.Unlock()
		*counted = off
	}
	if off < t.Size {
		got, err = f.stream(ctx, t, src, file, off, counted)
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return got, err
	}
	if err := f.Cache.commit(t); err != nil {
		f.mu.Lock()
		f.prog.Done -= *counted
		f.mu.Unlock()
		*counted = 0
		return got, err
	}
	return got, nil
}

func (f *Fetcher) stream(ctx context.Context, t Tensor, src Source, file io.Writer, off uint64, counted *uint64) (got uint64, err error) {
	stall := f.StallTimeout
	if stall <= 0 {
		stall = 30 * time.Second
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := time.AfterFunc(stall, cancel)
	defer watchdog.Stop()
	stream, err := src.Client.Read(sctx, &phalanxpb.ReadRequest{Sha256: t.Digest[:], Offset: off})
	if err != nil {
		return 0, err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			if sctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("no data for %v: %w", stall, err)
			}
			return got, err
		}
		watchdog.Reset(stall)
		data := msg.GetData()
		if msg.GetOffset() != off || off+uint64(len(data)) > t.Size {
			return got, fmt.Errorf("chunk at %d of %d bytes, expected offset %d of %d", msg.GetOffset(), len(data), off, t.Size)
		}
		if f.Limiter != nil {
			if err := f.wait(ctx, len(data)); err != nil {
				return got, err
			}
		}
		if _, err := file.Write(data); err != nil {
			return got, err
		}
		n := uint64(len(data))
		off += n
		got += n
		*counted += n
		f.advance(n, n)
	}
	if off != t.Size {
		return got, fmt.Errorf("stream ended at %d of %d bytes", off, t.Size)
	}
	return got, nil
}
