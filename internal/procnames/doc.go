// Package procnames finds which processes hold given sockets, by socket
// inode, for port discovery.
//
// It reads /proc/<pid>/fd (each entry a link such as "socket:[123456]") and
// /proc/<pid>/comm, like `ss -p` does. That costs one readlink per open file
// of every process, so it is meant for discovery (once an hour), never for a
// per-item path. A scan is bounded by its context: when the deadline comes it
// stops and returns what it found. It reads the first 64 descriptors of every
// process before the rest, so on a host where a few processes hold very many
// connections a scan cut short still names the listeners, which servers open
// first. Processes that exit during the scan are
// skipped, and so are the ones whose fd directory the caller may not read
// (another user's process, without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE);
// the Result counts both.
//
//	res := procnames.Scan(ctx, "/proc", map[uint64]struct{}{inode: {}})
//	names := res.Names[inode] // e.g. ["nginx"]
//
// Kernel documentation: Documentation/filesystems/proc.rst (fd, comm).
package procnames
