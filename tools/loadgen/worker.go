package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// A worker runs inside the load namespace (started by `ip netns exec`), builds
// its job with blocking socket calls on loopback, prints one JSON line on
// stdout when done, and holds its descriptors until stdin reaches EOF (the
// controller closes it, or dies) or SIGTERM arrives.

type workerReport struct {
	ID    int    `json:"id"`
	FDs   int    `json:"fds"`
	Error string `json:"error,omitempty"`
}

func runWorker(spec string) int {
	signal.Ignore(syscall.SIGINT) // the controller decides when to stop
	var j job
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen worker: bad job: %v\n", err)
		return 2
	}
	w := &worker{dests: j.Dests, next: j.ID}
	err := w.build(j)
	rep := workerReport{ID: j.ID, FDs: len(w.held)}
	if err != nil {
		rep.Error = err.Error()
	}
	b, _ := json.Marshal(rep)
	os.Stdout.Write(append(b, '\n'))
	if err != nil {
		return 1
	}
	// Hold until the controller closes our stdin.
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	return 0
}

type worker struct {
	held  []int
	dests int // IPv4 destination addresses taken in turn (job.Dests)
	next  int // the next one
}

// dest is the IPv4 loopback address number k of 127.0.0.1 up.
func dest(k int) [4]byte {
	a := 0x7f000001 + uint32(k)
	return [4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}
}

func sockaddr(fam int, port uint16, any bool) unix.Sockaddr {
	if fam == 1 {
		sa := &unix.SockaddrInet6{Port: int(port)}
		if !any {
			sa.Addr[15] = 1 // ::1
		}
		return sa
	}
	sa := &unix.SockaddrInet4{Port: int(port)}
	if !any {
		sa.Addr = [4]byte{127, 0, 0, 1}
	}
	return sa
}

func domain(fam int) int {
	if fam == 1 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

func (w *worker) listen(fam int, port uint16, backlog int) (int, error) {
	fd, err := unix.Socket(domain(fam), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if fam == 1 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	if err := unix.Bind(fd, sockaddr(fam, port, true)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen port %d: %w", port, err)
	}
	w.held = append(w.held, fd)
	return fd, nil
}

// connect connects to port on the loopback; with more than one
// destination, IPv4 connections go to the next of w's destination
// addresses (the listeners are bound to every address).
func (w *worker) connect(fam int, port uint16) (int, error) {
	fd, err := unix.Socket(domain(fam), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	sa := sockaddr(fam, port, false)
	if v4, ok := sa.(*unix.SockaddrInet4); ok && w.dests > 1 {
		v4.Addr = dest(w.next % w.dests)
		w.next++
	}
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect port %d: %w", port, err)
	}
	return fd, nil
}

func accept(l int) (int, error) {
	for {
		fd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != unix.EINTR {
			if err != nil {
				return -1, fmt.Errorf("accept: %w", err)
			}
			return fd, nil
		}
	}
}

// pair connects to listener l on port and accepts the other end.
func (w *worker) pair(fam int, l int, port uint16) (client, server int, err error) {
	c, err := w.connect(fam, port)
	if err != nil {
		return -1, -1, err
	}
	s, err := accept(l)
	if err != nil {
		unix.Close(c)
		return -1, -1, err
	}
	return c, s, nil
}

func (w *worker) build(j job) error {
	for _, port := range j.ExtraListen {
		for fam := 0; fam < 2; fam++ {
			if _, err := w.listen(fam, port, 128); err != nil {
				return err
			}
		}
	}
	// Every listener first, both families, as servers open theirs before
	// they hold connections: they sit in the lowest descriptors.
	var les, lts [2]int
	for fam := 0; fam < 2; fam++ {
		var err error
		if les[fam], err = w.listen(fam, j.estPort(), 4096); err != nil {
			return err
		}
		if lts[fam], err = w.listen(fam, j.twPort(), 4096); err != nil {
			return err
		}
		// Request sockets count against the listener's backlog.
		if _, err = w.listen(fam, j.synPort(), j.SynRecv[fam]+1024); err != nil {
			return err
		}
	}
	for fam := 0; fam < 2; fam++ {
		le, lt := les[fam], lts[fam]
		// ESTABLISHED pairs.
		for i := 0; i < j.EstPairs[fam]; i++ {
			c, s, err := w.pair(fam, le, j.estPort())
			if err != nil {
				return fmt.Errorf("established pair %d: %w", i, err)
			}
			w.held = append(w.held, c, s)
		}
		// CLOSE_WAIT (server) + FIN_WAIT2 (client): the client half-closes and
		// keeps its descriptor, so neither side ever times out.
		for i := 0; i < j.CWPairs[fam]; i++ {
			c, s, err := w.pair(fam, le, j.estPort())
			if err != nil {
				return fmt.Errorf("close-wait pair %d: %w", i, err)
			}
			w.held = append(w.held, c, s)
			if err := unix.Shutdown(c, unix.SHUT_WR); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
		}
		// SYN_RECV: the handshake's last ACK to the syn port is dropped by
		// nftables, so the listener keeps a request socket and the client is
		// ESTABLISHED.
		for i := 0; i < j.SynRecv[fam]; i++ {
			c, err := w.connect(fam, j.synPort())
			if err != nil {
				return fmt.Errorf("syn-recv client %d: %w", i, err)
			}
			w.held = append(w.held, c)
		}
		// TIME_WAIT (server) + LAST_ACK (client): the server closes first, the
		// client closes after receiving its FIN; the server's final ACK is
		// dropped, so the client retransmits its FIN and each retransmission
		// restarts the server's TIME_WAIT. Neither end holds a descriptor.
		// A batch's descriptors come on top of the held ones.
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("getrlimit: %w", err)
		}
		batch := min(j.Batch, (int(lim.Cur)-len(w.held)-64)/2)
		if j.TWPairs[fam] > 0 && batch < 1 {
			return fmt.Errorf("no descriptors left for time-wait pairs (%d held, limit %d)", len(w.held), lim.Cur)
		}
		for done := 0; done < j.TWPairs[fam]; {
			b := min(batch, j.TWPairs[fam]-done)
			cs := make([]int, 0, b)
			ss := make([]int, 0, b)
			for i := 0; i < b; i++ {
				c, s, err := w.pair(fam, lt, j.twPort())
				if err != nil {
					closeAll(cs)
					closeAll(ss)
					return fmt.Errorf("time-wait pair %d: %w", done+i, err)
				}
				cs, ss = append(cs, c), append(ss, s)
			}
			closeAll(ss)
			closeAll(cs)
			done += b
		}
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
