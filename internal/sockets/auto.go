package sockets

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// autoSource uses primary until it reports ErrUnsupported, then fallback.
type autoSource struct {
	primary, fallback Source
	onFallback        func(error)
	fell              atomic.Bool
	once              sync.Once
}

// NewAuto returns a source that walks with primary until a walk fails with
// an error wrapping ErrUnsupported, then uses fallback for good (that walk
// included), calling onFallback (if not nil) once with the error. Sources
// report ErrUnsupported before visiting any socket, so no socket is seen
// twice. Safe for concurrent use.
func NewAuto(primary, fallback Source, onFallback func(error)) Source {
	return &autoSource{primary: primary, fallback: fallback, onFallback: onFallback}
}

// Name is the name of the source in use.
func (a *autoSource) Name() string { return a.current().Name() }

func (a *autoSource) current() Source {
	if a.fell.Load() {
		return a.fallback
	}
	return a.primary
}

// Walk walks with the source in use; see Source.
func (a *autoSource) Walk(ctx context.Context, q Query, visit func(*Socket)) error {
	if a.fell.Load() {
		return a.fallback.Walk(ctx, q, visit)
	}
	err := a.primary.Walk(ctx, q, visit)
	if err == nil || !errors.Is(err, ErrUnsupported) {
		return err
	}
	a.once.Do(func() {
		a.fell.Store(true)
		if a.onFallback != nil {
			a.onFallback(err)
		}
	})
	return a.fallback.Walk(ctx, q, visit)
}
