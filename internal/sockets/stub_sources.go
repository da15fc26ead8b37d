package sockets

import "context"

// Placeholder sources until the netlink and /proc readers land; they refuse
// every query.
type stubSource string

func (s stubSource) Name() string { return string(s) }
func (s stubSource) Walk(context.Context, Query, func(*Socket)) error {
	return ErrUnsupported
}

// NewNetlink returns the netlink sock_diag source.
func NewNetlink() Source { return stubSource("netlink") }

// NewProc returns the /proc/net/tcp{,6} source reading tables in netDir.
func NewProc(netDir string) Source { return stubSource("proc") }

// NewAuto uses primary until it fails with ErrUnsupported, then fallback
// for good, calling onFallback once.
func NewAuto(primary, fallback Source, onFallback func(error)) Source { return primary }
