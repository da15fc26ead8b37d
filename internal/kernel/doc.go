// Package kernel reads the kernel's TCP health counters and limits: the
// socket summaries in /proc/net/sockstat and sockstat6, the Tcp section of
// /proc/net/snmp, the TcpExt section of /proc/net/netstat, and the TCP
// sysctls under /proc/sys/net. Every read costs well under a millisecond,
// whatever the number of sockets.
//
// Usage:
//
//	nfs, err := kernel.NewNetFS("/proc")   // reads /proc/net/...
//	st, err := nfs.Sockstat()
//	snmp, err := nfs.SNMP()
//	tcp, ok := snmp.Section("Tcp")
//	limits, err := kernel.ReadLimits("/proc") // reads /proc/sys/net/...
//
// What the counters mean (Documentation/networking/proc_net_tcp.rst and
// snmp_counter.rst in the kernel tree):
//
//   - sockstat "TCP: tw" counts every time-wait entry of the namespace. An
//     orphaned FIN_WAIT2 socket (closed by its owner before the peer's FIN)
//     becomes such an entry too, so tw is an upper bound of TIME_WAIT, not
//     the TIME_WAIT count: 10 TIME_WAIT and 100 orphaned FIN_WAIT2 read
//     "tw 110". Count TIME_WAIT exactly with tcp.status[timewait].
//   - sockstat "inuse" counts the full sockets of the family, listeners
//     included; TIME_WAIT and SYN_RECV entries are not in it.
//   - sockstat "orphan", "alloc" and "mem" are host-wide; "mem" is in pages,
//     like the tcp_mem sysctl it is compared with.
//   - snmp "Tcp: CurrEstab" is ESTABLISHED plus CLOSE_WAIT, not ESTABLISHED
//     alone.
//   - the snmp and netstat counters of a network namespace only count that
//     namespace's traffic; the directory a NetFS reads decides which
//     namespace it sees (/proc/net is the process's, /proc/thread-self/net
//     the calling thread's, /proc/1/net the host's from a container with the
//     host's /proc).
package kernel
