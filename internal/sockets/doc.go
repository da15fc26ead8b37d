// Package sockets reads the kernel's TCP and UDP socket tables.
//
// Two sources implement Source:
//
//   - NewNetlink dumps the table with NETLINK_SOCK_DIAG (inet_diag), the way
//     ss does, in the network namespace of the calling thread. The kernel
//     filters by state (mask) and local port (bytecode); TCP over both
//     families takes one walk with the legacy TCPDIAG_GETSOCK request,
//     falling back to SOCK_DIAG_BY_FAMILY per family. No privilege needed.
//     See Documentation/networking and include/uapi/linux/inet_diag.h. The
//     walk reaches the kernel through a small interface (diagConn), which
//     the tests replace with a scripted kernel to drive every fallback.
//   - NewProc parses <dir>/tcp, tcp6 (udp, udp6) as /proc/net shows them
//     (Documentation/networking/proc_net_tcp.rst), streaming with a fixed
//     buffer. A walk for TCP listeners alone reads only the tables' first
//     part, where the kernel prints its listening hash.
//
// NewAuto combines them: netlink until the kernel refuses it, /proc after.
//
// Both visit one reused Socket per match and fill only the Fields asked, so
// counting allocates nothing per socket:
//
//	src := sockets.NewAuto(sockets.NewNetlink(), sockets.NewProc("/proc/net"), nil)
//	c, err := sockets.Count(ctx, src, sockets.Query{LocalPort: 443})
//	fmt.Println(c[sockets.TimeWait], c.Total())
//
// What each source reports: SYN_RECV includes the request sockets
// (half-open connections, no inode); time-wait entries report their substate
// (TIME_WAIT, or FIN_WAIT2 for an orphan the kernel turned into one); a
// dual-stack AF_INET6 socket on an IPv4-mapped address is family 6 and
// counted once; bound-only (CLOSE) TCP sockets are never listed. For a
// listener, RQueue is the accept queue and WQueue the backlog limit with
// netlink, but 0 with /proc, which does not show the backlog.
package sockets
