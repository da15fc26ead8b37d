// Package procnames finds which processes hold given sockets, by socket
// inode, for port discovery.
//
// It reads /proc/<pid>/fd (each entry a link such as "socket:[123456]") and
// /proc/<pid>/comm, like `ss -p` does. That costs one readlink per open file
// read, so it is meant for discovery (once an hour), never for a per-item
// path, and it reads as few of them as it can:
//
//   - A first pass reads the first FirstPass (64) descriptors of every
//     process, listing each fd directory with getdents into a small buffer,
//     so a process holding a million descriptors costs one getdents and 64
//     readlinks. Servers open their listening sockets early, so this pass
//     finds nearly all of them.
//
//   - Only when some wanted socket still has no owner after the first pass
//     does a second pass read the remaining descriptors of every process.
//     So the names of a socket are those of the processes holding it among
//     their first 64 descriptors, or, when any wanted socket was unnamed
//     after that pass, among all their descriptors.
//
//   - A Cache remembers the owners found (pid, start time from
//     /proc/<pid>/stat, name) between lookups: a socket whose remembered
//     owner still runs with the same start time is named with one read of
//     that process's stat file, and only unknown sockets are scanned for.
//     Sockets a complete scan could not name (held by processes the caller
//     may not read) are not scanned for again until the set of wanted
//     sockets changes or UnresolvedFor passes.
//
//   - A Cache runs one scan at a time: lookups that miss while a scan is in
//     flight wait for it and take its findings (Shared), so concurrent
//     discoveries on a cold cache cost one scan instead of each scanning
//     /proc on its own until their deadlines cut them all short.
//
// A scan is bounded by its context: when the deadline comes it stops and
// returns what it found (Partial); a Cache remembers the owners it found
// and logs the cut (SetLogger). Processes that exit during the scan are
// skipped, and so are the ones whose fd directory the caller may not read
// (another user's process, without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE);
// the Result counts both.
//
//	c := procnames.NewCache("/proc") // kept for the life of the exporter
//	res, err := c.Lookup(ctx, map[uint64]struct{}{inode: {}})
//	names := res.Names[inode] // e.g. ["nginx"]
//
// Kernel documentation: Documentation/filesystems/proc.rst (fd, comm, stat).
package procnames
