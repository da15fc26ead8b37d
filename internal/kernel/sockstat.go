package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/prometheus/procfs"
)

// Sockstat holds the TCP figures of /proc/net/sockstat and sockstat6. A nil
// field is one the kernel did not print: TCP6InUse is nil when IPv6 is off
// (no sockstat6).
type Sockstat struct {
	// SocketsUsed is "sockets: used", every socket of the namespace, any
	// protocol or family.
	SocketsUsed *int
	// TCPInUse is "TCP: inuse": full IPv4 TCP sockets, listeners included,
	// TIME_WAIT and SYN_RECV entries not.
	TCPInUse *int
	// TCPOrphan is "TCP: orphan": sockets no process holds any more
	// (host-wide).
	TCPOrphan *int
	// TCPTW is "TCP: tw": time-wait entries of both families. Orphaned
	// FIN_WAIT2 sockets are such entries too: it is not the TIME_WAIT count.
	TCPTW *int
	// TCPAlloc is "TCP: alloc": allocated TCP sockets (host-wide).
	TCPAlloc *int
	// TCPMem is "TCP: mem": pages of TCP buffer memory (host-wide), the unit
	// of the tcp_mem sysctl.
	TCPMem *int
	// TCP6InUse is "TCP6: inuse" of sockstat6: full IPv6 TCP sockets.
	TCP6InUse *int
}

// Sockstat reads <root>/net/sockstat and, when present, sockstat6. It uses
// procfs' parser: both files are key/value pairs per protocol line, which
// procfs keeps by name, so new kernels' additions cannot break it.
func (nfs NetFS) Sockstat() (Sockstat, error) {
	var out Sockstat
	s4, err := nfs.proc.NetSockstat()
	if err != nil {
		return out, sockstatError(nfs.path("sockstat"), err)
	}
	out.SocketsUsed = s4.Used
	tcp, ok := findProto(s4, "TCP")
	if !ok {
		return out, fmt.Errorf("%w: %s has no TCP line", ErrMalformed, nfs.path("sockstat"))
	}
	out.TCPInUse = &tcp.InUse
	out.TCPOrphan, out.TCPTW, out.TCPAlloc, out.TCPMem = tcp.Orphan, tcp.TW, tcp.Alloc, tcp.Mem

	s6, err := nfs.proc.NetSockstat6()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return out, nil // IPv6 disabled
	case err != nil:
		return out, sockstatError(nfs.path("sockstat6"), err)
	}
	if tcp6, ok := findProto(s6, "TCP6"); ok {
		out.TCP6InUse = &tcp6.InUse
	}
	return out, nil
}

// sockstatError wraps a procfs error: a read error as it is (procfs keeps
// the *fs.PathError), a parse error as ErrMalformed with procfs' cause,
// minus the prefixes that repeat the path and the error kind.
func sockstatError(path string, err error) error {
	if !errors.Is(err, procfs.ErrFileParse) && !errors.Is(err, procfs.ErrFileRead) {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("%s: sockstats from %q: ", procfs.ErrFileRead, path))
	msg = strings.ReplaceAll(msg, procfs.ErrFileParse.Error()+":: ", "")
	msg = strings.ReplaceAll(msg, procfs.ErrFileParse.Error()+": ", "")
	return fmt.Errorf("%w: %s: %s", ErrMalformed, path, strings.TrimSpace(msg))
}

func findProto(s *procfs.NetSockstat, name string) (procfs.NetSockstatProtocol, bool) {
	for _, p := range s.Protocols {
		if p.Protocol == name {
			return p, true
		}
	}
	return procfs.NetSockstatProtocol{}, false
}
