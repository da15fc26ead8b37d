package procnames

import (
	"bytes"
	"context"
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
	// Processes is the number of processes whose fd directory was read.
	Processes int
	// Denied is the number of processes skipped for lack of permission.
	Denied int
	// Vanished is the number of processes that exited during the scan.
	Vanished int
	// Partial is true when the context ended the scan early.
	Partial bool
}

// checkEvery is how many readlinks pass between two looks at the context.
const checkEvery = 256

// firstPass is how many descriptors of each process the first pass reads.
// Servers open their listening sockets early, so the low descriptors of
// every process hold nearly all of them: a scan cut short by its deadline
// still names them when a few processes hold very many connections.
const firstPass = 64

// Scan looks through the open files of every process under procRoot for the
// socket inodes in want: first the lowest descriptors of every process, then
// the rest. It stops early, with Partial set, when ctx ends. The only error
// is an unreadable procRoot.
func Scan(ctx context.Context, procRoot string, want map[uint64]struct{}) (Result, error) {
	return scan(ctx, procRoot, want, nil)
}

// scan is Scan with a hook called between the two passes (tests).
func scan(ctx context.Context, procRoot string, want map[uint64]struct{}, between func()) (Result, error) {
	res := Result{Names: map[uint64][]string{}}
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
	s := scanner{ctx: ctx, root: procRoot, want: want, res: &res, buf: make([]byte, 64)}
	var more []string // processes with descriptors beyond the first pass
	for _, pid := range pids {
		if s.done() {
			res.Partial = true
			return res, nil
		}
		if s.process(pid, 0, firstPass) {
			more = append(more, pid)
		}
	}
	if between != nil {
		between()
	}
	for _, pid := range more {
		if s.done() {
			res.Partial = true
			return res, nil
		}
		s.process(pid, firstPass, -1)
	}
	if s.cut {
		res.Partial = true
	}
	return res, nil
}

type scanner struct {
	ctx   context.Context
	root  string
	want  map[uint64]struct{}
	res   *Result
	buf   []byte
	links int
	cut   bool // a process was left unfinished at the deadline
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
// limit of them (all when limit < 0), and reports whether more remain. The
// first pass (skip 0) does the counting of the Result.
func (s *scanner) process(pid string, skip, limit int) (more bool) {
	first := skip == 0
	dir, err := os.Open(filepath.Join(s.root, pid, "fd"))
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
	defer dir.Close()
	dfd := int(dir.Fd())
	var found []uint64
	idx := 0
	counted := false
	defer func() {
		if len(found) > 0 {
			s.record(pid, found)
		}
	}()
	for {
		fds, err := dir.Readdirnames(256)
		if err != nil && !errors.Is(err, io.EOF) {
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
		for _, fd := range fds {
			if idx < skip {
				idx++
				continue
			}
			if limit >= 0 && idx >= skip+limit {
				return true
			}
			idx++
			s.links++
			if s.links%checkEvery == 0 && s.done() {
				s.cut = true
				return false
			}
			n, err := unix.Readlinkat(dfd, fd, s.buf)
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
		if len(fds) == 0 || errors.Is(err, io.EOF) {
			return false
		}
	}
}

// record adds the name of process pid to the found inodes.
func (s *scanner) record(pid string, found []uint64) {
	name, err := s.comm(pid)
	if err != nil {
		if gone(err) {
			s.res.Vanished++
		}
		return
	}
	for _, ino := range found {
		names := s.res.Names[ino]
		if i, dup := slices.BinarySearch(names, name); !dup {
			s.res.Names[ino] = slices.Insert(names, i, name)
		}
	}
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
