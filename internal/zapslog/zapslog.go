// Package zapslog lets libraries that log with zap (the embedded etcd
// server) write into the daemon's *slog.Logger, so their warnings, errors
// and — above all — their fatal exits appear in the one structured log.
//
// Levels map one to one (Debug, Info, Warn, Error); DPanic, Panic and Fatal
// are written as ERROR lines whose message starts with the prefix and the
// level ("embedded etcd fatal: failed to purge snap db file"), before zap
// panics or exits: a process that dies through zap.Fatal leaves its reason
// as the last line of the log. The package never exits or panics itself.
package zapslog

import (
	"context"
	"log/slog"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Core is a zapcore.Core writing to a *slog.Logger.
type Core struct {
	zapcore.LevelEnabler
	log    *slog.Logger
	prefix string // "embedded etcd": names the library in fatal lines
	fields []zapcore.Field
}

var _ zapcore.Core = (*Core)(nil)

// NewCore writes entries at level or above to log. prefix names the
// library in the message of DPanic, Panic and Fatal lines.
func NewCore(log *slog.Logger, level zapcore.LevelEnabler, prefix string) *Core {
	return &Core{LevelEnabler: level, log: log, prefix: prefix}
}

// New is a *zap.Logger over NewCore.
func New(log *slog.Logger, level zapcore.LevelEnabler, prefix string) *zap.Logger {
	return zap.New(NewCore(log, level, prefix))
}

// With adds fields to every entry.
func (c *Core) With(fields []zapcore.Field) zapcore.Core {
	d := *c
	d.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	return &d
}

// Check adds c to the entry's cores when its level is enabled. zap runs
// the Fatal exit (or the panic) after every core has written.
func (c *Core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write logs one entry.
func (c *Core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level, msg := slog.LevelDebug, e.Message
	switch e.Level {
	case zapcore.DebugLevel:
	case zapcore.InfoLevel:
		level = slog.LevelInfo
	case zapcore.WarnLevel:
		level = slog.LevelWarn
	case zapcore.ErrorLevel:
		level = slog.LevelError
	default: // DPanic, Panic, Fatal
		level, msg = slog.LevelError, c.prefix+" "+e.Level.String()+": "+e.Message
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+2)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	if e.Level > zapcore.ErrorLevel && e.Caller.Defined {
		attrs = append(attrs, slog.String("caller", e.Caller.TrimmedPath()))
	}
	// Not the caller's context: zap has none, and the line must be written
	// even while the daemon shuts down.
	c.log.LogAttrs(context.Background(), level, msg, attrs...)
	return nil
}

// Sync does nothing: slog handlers write through.
func (c *Core) Sync() error { return nil }

// Level is the zap level for a library logging into log: Warn at the
// daemon's usual info (a library's info lines are noise there), Info when
// the daemon logs debug, Error when it logs only errors.
func Level(log *slog.Logger) zapcore.Level {
	ctx := context.Background()
	switch {
	case log.Enabled(ctx, slog.LevelDebug):
		return zapcore.InfoLevel
	case log.Enabled(ctx, slog.LevelWarn):
		return zapcore.WarnLevel
	}
	return zapcore.ErrorLevel
}
