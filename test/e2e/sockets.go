package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"
)

// testSockets are the loopback sockets the run watches through the agents:
//   - app: a listener holding closeWaitN accepted connections whose peers
//     have closed (CLOSE_WAIT on the app port);
//   - gone: a listener the run closes and reopens (a discovered port that
//     stops listening);
//   - full: a listener with backlog fullBacklog that never accepts, its
//     accept queue filled by clients, plus clients whose SYNs it drops
//     (TcpExt ListenOverflows).
type testSockets struct {
	app       net.Listener
	held      []net.Conn
	gone      net.Listener
	gonePort  int
	fullFD    int
	fullPort  int
	queued    []net.Conn
	overflows []int
}

const (
	closeWaitN  = 5
	fullBacklog = 2
)

// Keepalive is off on every test socket: a CLOSE_WAIT end probing a peer
// that has timed out of FIN_WAIT2 would be reset and vanish.
var (
	listenCfg = net.ListenConfig{KeepAlive: -1}
	dialer    = net.Dialer{KeepAlive: -1, Timeout: 5 * time.Second}
)

func openTestSockets() (*testSockets, error) {
	s := &testSockets{fullFD: -1}
	var err error
	ctx := context.Background()
	if s.app, err = listenCfg.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if s.gone, err = listenCfg.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
		s.close()
		return nil, err
	}
	s.gonePort = s.gone.Addr().(*net.TCPAddr).Port
	if err := s.makeCloseWait(); err != nil {
		s.close()
		return nil, err
	}
	if err := s.makeFull(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *testSockets) appPort() int { return s.app.Addr().(*net.TCPAddr).Port }

// ports lists the three listening ports, as discovery reports them.
func (s *testSockets) ports() []string {
	return []string{strconv.Itoa(s.appPort()), strconv.Itoa(s.gonePort), strconv.Itoa(s.fullPort)}
}

// makeCloseWait connects closeWaitN clients to app and closes them; the
// accepted ends, never closed, stay in CLOSE_WAIT.
func (s *testSockets) makeCloseWait() error {
	for i := 0; i < closeWaitN; i++ {
		c, err := dialer.Dial("tcp", s.app.Addr().String())
		if err != nil {
			return err
		}
		srv, err := s.app.Accept()
		if err != nil {
			c.Close()
			return err
		}
		c.Close()
		s.held = append(s.held, srv)
	}
	return nil
}

// releaseCloseWait closes the CLOSE_WAIT ends.
func (s *testSockets) releaseCloseWait() {
	for _, c := range s.held {
		c.Close()
	}
	s.held = nil
}

// makeFull opens the never-accepting listener and fills its accept queue:
// the kernel queues backlog+1 connections.
func (s *testSockets) makeFull() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	s.fullFD = fd
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	if err := syscall.Listen(fd, fullBacklog); err != nil {
		return err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return err
	}
	s.fullPort = sa.(*syscall.SockaddrInet4).Port
	for i := 0; i < fullBacklog+1; i++ {
		c, err := dialer.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.fullPort)))
		if err != nil {
			return fmt.Errorf("fill accept queue: %w", err)
		}
		s.queued = append(s.queued, c)
	}
	return nil
}

// overflow starts n non-blocking connects to the full listener; the kernel
// drops their SYNs (and the retransmissions) and counts ListenOverflows.
func (s *testSockets) overflow(n int) error {
	for i := 0; i < n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.overflows = append(s.overflows, fd)
		err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: s.fullPort, Addr: [4]byte{127, 0, 0, 1}})
		if err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			return err
		}
	}
	return nil
}

// drainFull stops the overflowing clients, then accepts and closes every
// queued connection, leaving the listener with an empty queue.
func (s *testSockets) drainFull() error {
	for _, fd := range s.overflows {
		syscall.Close(fd)
	}
	s.overflows = nil
	for _, c := range s.queued {
		c.Close()
	}
	s.queued = nil
	if err := syscall.SetNonblock(s.fullFD, true); err != nil {
		return err
	}
	for {
		nfd, _, err := syscall.Accept4(s.fullFD, syscall.SOCK_CLOEXEC)
		if errors.Is(err, syscall.EAGAIN) {
			return nil
		}
		if err != nil {
			return err
		}
		syscall.Close(nfd)
	}
}

// closeGone and reopenGone stop and restart listening on the gone port.
func (s *testSockets) closeGone() error { return s.gone.Close() }

func (s *testSockets) reopenGone() error {
	l, err := listenCfg.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.gonePort)))
	if err != nil {
		return err
	}
	s.gone = l
	return nil
}

func (s *testSockets) close() {
	s.releaseCloseWait()
	for _, fd := range s.overflows {
		syscall.Close(fd)
	}
	for _, c := range s.queued {
		c.Close()
	}
	if s.fullFD >= 0 {
		syscall.Close(s.fullFD)
	}
	if s.app != nil {
		s.app.Close()
	}
	if s.gone != nil {
		s.gone.Close()
	}
}
