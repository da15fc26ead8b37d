package procnames

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Result is what a scan found.
type Result struct {
	// Names maps each found socket inode to the distinct names (comm) of the
	// processes holding it, sorted.
	Names map[uint64][]string
	// Owners maps each found socket inode to the processes holding it (at
	// most MaxOwners of them), in the order they were found.
	Owners map[uint64][]Owner `json:",omitempty"`
	// Processes is the number of processes whose fd directory was read.
	Processes int
	// Denied is the number of processes skipped for lack of permission.
	Denied int
	// Vanished is the number of processes that exited during the scan.
	Vanished int
	// Links is the number of descriptors read (one readlink each).
	Links int
	// SecondPass is true when the descriptors past the first FirstPass of
	// each process were read: some wanted inode had no owner after the
	// first pass.
	SecondPass bool
	// Cached is the number of inodes a Cache answered without a scan.
	Cached int `json:",omitempty"`
	// Unresolved is the number of inodes a Cache left unnamed without a
	// scan because a recent complete scan found no owner for them.
	Unresolved int `json:",omitempty"`
	// Shared is the number of inodes a Cache named from the scan of a
	// concurrent lookup, which this one waited for.
	Shared int `json:",omitempty"`
	// Partial is true when the context ended the scan early.
	Partial bool
}

// Owner is one process holding a socket.
type Owner struct {
	// PID is the process id.
	PID int
	// Start is the process start time in clock ticks after boot (field 22
	// of /proc/<pid>/stat); 0 when it could not be read.
	Start uint64
	// Name is the process name (comm).
	Name string
}

// MaxOwners bounds the owners kept per socket inode.
const MaxOwners = 16

// checkEvery is how many readlinks pass between two looks at the context.
const checkEvery = 256

// FirstPass is how many descriptors of each process the first pass reads.
// Servers open their listening sockets early, so the low descriptors of
// every process hold nearly all of them: a scan cut short by its deadline
// still names them when a few processes hold very many connections, and a
// scan whose first pass named every wanted socket stops there.
const FirstPass = 64

// firstPassBuf is the getdents buffer of the first pass: an fd directory
// entry takes 24 bytes for descriptors below 100000, so one call returns
// the first FirstPass entries without listing a huge directory.
const firstPassBuf = 2048

// restPassBuf is the getdents buffer of the second pass.
const restPassBuf = 32 << 10

// Scan looks through the open files of every process under procRoot for the
// socket inodes in want: first the lowest FirstPass descriptors of every
// process, then, only when some wanted inode is still without an owner, the
// rest. It stops early, with Partial set, when ctx ends. The only error is
// an unreadable procRoot.
func Scan(ctx context.Context, procRoot string, want map[uint64]struct{}) (Result, error) {
	return scan(ctx, procRoot, want, nil)
}

// scan is Scan with a hook called between the two passes (tests).
func scan(ctx context.Context, procRoot string, want map[uint64]struct{}, between func()) (Result, error) {
	res := Result{Names: map[uint64][]string{}, Owners: map[uint64][]Owner{}}
	root, err := os.Open(procRoot)
	if err != nil {
		return res, fmt.Errorf("open %s: %w", procRoot, err)
	}
	defer root.Close()
	if len(want) == 0 {
		return res, nil
	}
	var pids []string
	for {
		names, err := root.Readdirnames(1024)
		for _, name := range names {
			if pid, perr := strconv.ParseUint(name, 10, 32); perr == nil && pid > 0 {
				pids = append(pids, name)
			}
		}
		if errors.Is(err, io.EOF) || len(names) == 0 {
			break
		}
		if err != nil {
			return res, fmt.Errorf("list %s: %w", procRoot, err)
		}
	}
	s := scanner{ctx: ctx, root: procRoot, rootfd: int(root.Fd()), want: want, res: &res,
		buf: make([]byte, 64), dents: make([]byte, firstPassBuf)}
	var more []string // processes with descriptors beyond the first pass
	for _, pid := range pids {
		if s.done() {
			res.Partial = true
			return res, nil
		}
		if s.process(pid, 0, FirstPass) {
			more = append(more, pid)
		}
	}
	if between != nil {
		between()
	}
	if len(res.Names) < len(want) && len(more) > 0 {
		res.SecondPass = true
		s.dents = make([]byte, restPassBuf)
		for _, pid := range more {
			if s.done() {
				res.Partial = true
				return res, nil
			}
			s.process(pid, FirstPass, -1)
		}
	}
	if s.cut {
		res.Partial = true
	}
	return res, nil
}

type scanner struct {
	ctx    context.Context
	root   string
	rootfd int
	want   map[uint64]struct{}
	res    *Result
	buf    []byte // link targets
	dents  []byte // getdents
	cut    bool   // a process was left unfinished at the deadline
}

// done reports whether the context has ended.
func (s *scanner) done() bool {
	select {
	case <-s.ctx.Done():
		return true
	default:
		return false
	}
}

// gone reports whether err says the process is no longer there.
func gone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// denied reports whether err is a permission refusal.
func denied(err error) bool {
	return errors.Is(err, os.ErrPermission)
}

// process reads the descriptors of one process from index skip on, at most
// limit of them (all when limit < 0), and reports whether more may remain.
// The first pass (skip 0) does the counting of the Result. The directory is
// read with getdents into the scanner's buffer, so a first pass over a
// process with a million descriptors lists only the first entries.
func (s *scanner) process(pid string, skip, limit int) (more bool) {
	first := skip == 0
	dfd, err := openDir(s.rootfd, pid+"/fd")
	switch {
	case err == nil:
	case denied(err):
		if first {
			s.res.Denied++
		}
		return false
	default:
		if gone(err) && first {
			s.res.Vanished++
		}
		return false
	}
	defer unix.Close(dfd)
	var found []uint64
	idx := 0
	counted := false
	defer func() {
		if len(found) > 0 {
			s.record(pid, found)
		}
	}()
	for {
		n, err := getdents(dfd, s.dents)
		if err != nil {
			if first && !counted {
				if denied(err) {
					s.res.Denied++
				} else if gone(err) {
					s.res.Vanished++
				}
			}
			return false
		}
		if first && !counted {
			s.res.Processes++
			counted = true
		}
		if n == 0 {
			return false
		}
		for b := s.dents[:n]; len(b) > 0; {
			name, rest, ok := nextDirent(b)
			if !ok {
				return false
			}
			b = rest
			if name == "" {
				continue
			}
			if idx < skip {
				idx++
				continue
			}
			if limit >= 0 && idx >= skip+limit {
				return true
			}
			idx++
			s.res.Links++
			if s.res.Links%checkEvery == 0 && s.done() {
				s.cut = true
				return false
			}
			n, err := unix.Readlinkat(dfd, name, s.buf)
			if err != nil {
				if denied(err) {
					// The directory was listable (CAP_DAC_READ_SEARCH) but
					// the links need ptrace access: so for every fd of it.
					if first {
						s.res.Denied++
						s.res.Processes--
					}
					return false
				}
				continue // the fd was closed meanwhile
			}
			if ino, ok := socketInode(s.buf[:n]); ok {
				if _, hit := s.want[ino]; hit {
					found = append(found, ino)
				}
			}
		}
	}
}

// openDir opens the directory at path relative to dirfd.
func openDir(dirfd int, path string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		return fd, nil
	}
}

// getdents reads directory entries of fd into buf.
func getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("getdents: %w", err)
		}
		return n, nil
	}
}

// nextDirent splits the first linux_dirent64 off b and returns its name
// ("" for "." and "..", and for deleted entries), the rest of b, and false
// when b is malformed.
func nextDirent(b []byte) (name string, rest []byte, ok bool) {
	const nameOff = 19 // d_ino 8, d_off 8, d_reclen 2, d_type 1
	if len(b) < nameOff+1 {
		return "", nil, false
	}
	reclen := int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen < nameOff+1 || reclen > len(b) {
		return "", nil, false
	}
	raw := b[nameOff:reclen]
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		raw = raw[:i]
	}
	if binary.NativeEndian.Uint64(b[0:8]) == 0 || string(raw) == "." || string(raw) == ".." {
		return "", b[reclen:], true
	}
	return string(raw), b[reclen:], true
}

// record adds process pid, its name and start time, to the found inodes.
func (s *scanner) record(pid string, found []uint64) {
	name, err := s.comm(pid)
	if err != nil {
		if gone(err) {
			s.res.Vanished++
		}
		return
	}
	id, _ := strconv.Atoi(pid)
	start, _, _ := readStat(s.rootfd, pid) // 0 when unreadable: never cached
	for _, ino := range found {
		names := s.res.Names[ino]
		if i, dup := slices.BinarySearch(names, name); !dup {
			s.res.Names[ino] = slices.Insert(names, i, name)
		}
		if owners := s.res.Owners[ino]; len(owners) < MaxOwners {
			s.res.Owners[ino] = append(owners, Owner{PID: id, Start: start, Name: name})
		}
	}
}

// readStat reads the start time (field 22) and the name (field 2) of a
// process from <root>/<pid>/stat, dirfd being the open root.
func readStat(dirfd int, pid string) (start uint64, name string, err error) {
	var fd int
	for {
		fd, err = unix.Openat(dirfd, pid+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, "", fmt.Errorf("open %s/stat: %w", pid, err)
	}
	defer unix.Close(fd)
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("read %s/stat: %w", pid, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return parseStat(buf[:n])
}

// parseStat takes the name and the start time out of a stat line:
// "pid (comm) state ppid ... starttime ...". The name may hold spaces and
// parentheses, so it ends at the last ")".
func parseStat(b []byte) (start uint64, name string, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, "", fmt.Errorf("stat %q: no name: %w", clip(b), errBadStat)
	}
	fields := bytes.Fields(b[end+1:])
	const startField = 22 - 3 // fields after the name start at field 3
	if len(fields) <= startField {
		return 0, "", fmt.Errorf("stat %q: %d fields: %w", clip(b), len(fields)+2, errBadStat)
	}
	start, err = strconv.ParseUint(string(fields[startField]), 10, 64)
	if err != nil || start == 0 {
		return 0, "", fmt.Errorf("stat %q: start time: %w", clip(b), errBadStat)
	}
	return start, string(b[open+1 : end]), nil
}

// errBadStat is a stat file that does not parse.
var errBadStat = errors.New("malformed stat")

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// comm reads the process name from <root>/<pid>/comm.
func (s *scanner) comm(pid string) (string, error) {
	f, err := os.Open(filepath.Join(s.root, pid, "comm"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return "", err
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return "", fmt.Errorf("%s: empty comm: %w", pid, os.ErrNotExist)
	}
	return string(b), nil
}

// socketInode parses a link target "socket:[12345]".
func socketInode(target []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(target, []byte("socket:["))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != ']' {
		return 0, false
	}
	var n uint64
	for _, c := range rest[:len(rest)-1] {
		if c < '0' || c > '9' || n > (1<<64-1)/10-1 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
