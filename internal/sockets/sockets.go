package sockets

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h).
// The same numbers appear in inet_diag replies and in the "st" column of
// /proc/net/tcp.
type State uint8

// Kernel TCP states. NEW_SYN_RECV (12) is internal and reported by the kernel
// as SYN_RECV; BOUND_INACTIVE (13) is a dump-mask flag only.
const (
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11

	// MaxState is the largest state number a count array must hold.
	MaxState = 15
)

// NumStates is the number of reportable states.
const NumStates = 11

// States returns every reportable state in kernel order.
func States() [NumStates]State { return states }

var states = [NumStates]State{Established, SynSent, SynRecv, FinWait1, FinWait2, TimeWait, Close, CloseWait, LastAck, Listen, Closing}

var stateNames = [...]string{
	Established: "established",
	SynSent:     "syn_sent",
	SynRecv:     "syn_recv",
	FinWait1:    "fin_wait1",
	FinWait2:    "fin_wait2",
	TimeWait:    "time_wait",
	Close:       "close",
	CloseWait:   "close_wait",
	LastAck:     "last_ack",
	Listen:      "listen",
	Closing:     "closing",
}

// String returns the Zabbix name of the state (as net.tcp.socket.count
// spells it), e.g. "time_wait"; unknown numbers print as "state(N)".
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// stateAliases maps the names of the seed UserParameter scripts (netstat
// column text, lower-cased without separators) to states.
var stateAliases = map[string]State{
	"estab":       Established,
	"established": Established,
	"synsent":     SynSent,
	"synrecv":     SynRecv,
	"synreceived": SynRecv,
	"finwait1":    FinWait1,
	"finwait2":    FinWait2,
	"timewait":    TimeWait,
	"close":       Close,
	"closed":      Close,
	"closewait":   CloseWait,
	"lastack":     LastAck,
	"listen":      Listen,
	"listening":   Listen, // ss -l
	"closing":     Closing,
}

// ParseState accepts the seed-script names (timewait, estab, synrecv, ...),
// the kernel/Zabbix names (time_wait, SYN-RECV, ...) in any case, with '_'
// or '-' or no separator.
func ParseState(name string) (State, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.NewReplacer("_", "", "-", "").Replace(n)
	s, ok := stateAliases[n]
	return s, ok
}

// StateMask is a set of states, bit (1 << state), the form inet_diag takes.
// The zero mask means "every state".
type StateMask uint32

// AllStates is the mask of every reportable state.
const AllStates StateMask = 0xfff &^ 1

// Has reports whether s is in the mask; the zero mask has every state.
func (m StateMask) Has(s State) bool { return m == 0 || m&(1<<s) != 0 }

// MaskOf returns the mask holding exactly the given states.
func MaskOf(states ...State) StateMask {
	var m StateMask
	for _, s := range states {
		m |= 1 << s
	}
	return m
}

// Family selects the address family of the sockets counted. A dual-stack
// AF_INET6 socket talking to an IPv4-mapped address (::ffff:a.b.c.d) is an
// IPv6 socket, as in `ss -6`, and is counted once.
type Family uint8

// Families.
const (
	FamilyAll Family = 0
	FamilyV4  Family = 4
	FamilyV6  Family = 6
)

// String returns "4", "6" or "" (both).
func (f Family) String() string {
	switch f {
	case FamilyV4:
		return "4"
	case FamilyV6:
		return "6"
	}
	return ""
}

// Proto is the transport protocol of a query.
type Proto uint8

// Protocols.
const (
	TCP Proto = 6
	UDP Proto = 17
)

// Fields says which parts of a Socket a visitor reads, so a source may skip
// decoding the rest. Family, State and LocalPort are always filled.
type Fields uint8

// Optional socket fields.
const (
	FieldLocalAddr Fields = 1 << iota
	FieldRemote
	FieldQueues
	FieldInode
	// FieldCgroup asks for the cgroup v2 id of full sockets (netlink only).
	FieldCgroup
)

// Query selects sockets. The zero Query is every TCP socket of both families.
type Query struct {
	Proto     Proto     // TCP if zero
	Family    Family    // FamilyAll: both
	States    StateMask // 0: every state
	LocalPort uint16    // 0: any port
	Fields    Fields    // extra fields the visitor needs
}

// Socket is one socket as a source reports it. A source reuses one Socket for
// every visit: a visitor must copy what it keeps.
type Socket struct {
	Family     Family
	State      State
	LocalPort  uint16
	RemotePort uint16
	LocalAddr  netip.Addr // with FieldLocalAddr
	RemoteAddr netip.Addr // with FieldRemote
	// RQueue and WQueue are, for a listener, the current accept queue and its
	// backlog limit (ss -l Recv-Q/Send-Q; the /proc source cannot see the
	// backlog and reports 0); otherwise the receive and send queue byte
	// counts. With FieldQueues.
	RQueue uint32
	WQueue uint32
	Inode  uint64 // with FieldInode; 0 for time-wait and request sockets
	// Cgroup is, with FieldCgroup, the id of the cgroup v2 the socket was
	// created in (the inode number of its directory; accepted sockets take
	// the listener's), as the kernel reports it in the INET_DIAG_CGROUP_ID
	// attribute of a full socket (Linux 5.7+). 0 means not reported: a
	// time-wait or request socket, an older kernel, or the /proc source.
	Cgroup uint64
}

// Source walks the kernel's socket table. Implementations: the netlink
// sock_diag dump (NewNetlink) and the /proc/net/tcp parser (NewProc).
type Source interface {
	// Walk calls visit for every socket matching q. It is not an atomic
	// snapshot: the kernel hands the table over in chunks, so a socket that
	// changes state meanwhile may be missed or seen twice.
	Walk(ctx context.Context, q Query, visit func(*Socket)) error
	// Name is "netlink" or "proc".
	Name() string
}

// Counts holds socket counts indexed by state number.
type Counts [MaxState + 1]uint64

// Total is the number of sockets in every state.
func (c *Counts) Total() uint64 {
	var t uint64
	for _, n := range c {
		t += n
	}
	return t
}

// Count counts the sockets matching q by state, with no per-socket
// allocation.
func Count(ctx context.Context, src Source, q Query) (Counts, error) {
	var c Counts
	q.Fields = 0
	err := src.Walk(ctx, q, func(s *Socket) { c[s.State&MaxState]++ })
	return c, err
}

// ErrUnsupported is returned by a source that cannot serve a query on this
// system (netlink refused, a table missing).
var ErrUnsupported = errors.New("socket source unsupported")
