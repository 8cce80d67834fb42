package hub

import (
	"context"
	"log/slog"
)

// redactingHandler drops the packet attributes mochi-mqtt adds to some log
// records: a packet may be a CONNECT carrying a SAS token, and secrets never
// reach logs.
type redactingHandler struct{ slog.Handler }

// redactedKeys are the attribute names mochi uses for whole packets.
var redactedKeys = map[string]bool{"pk": true, "packet": true}

// Handle implements slog.Handler.
func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	clean := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !redactedKeys[a.Key] {
			clean.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, clean)
}

// WithAttrs implements slog.Handler.
func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	kept := attrs[:0:0]
	for _, a := range attrs {
		if !redactedKeys[a.Key] {
			kept = append(kept, a)
		}
	}
	return redactingHandler{h.Handler.WithAttrs(kept)}
}

// WithGroup implements slog.Handler.
func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h.Handler.WithGroup(name)}
}
