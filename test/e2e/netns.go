package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The run happens in a network namespace of its own: the harness starts
// itself again with CLONE_NEWNET, and everything it then starts (PostgreSQL,
// server, frontend, agents) and every test socket lives there, on the
// namespace's loopback. The agents' socket tables and TCP counters are those
// of the namespace, so every count the run asserts and every threshold it
// sets comes from sockets the run owns, whatever the rest of the machine
// opens or closes meanwhile. The namespace ends with its last process.
const netnsEnv = "TCPSTATUS_E2E_NETNS"

// proxyFD is the descriptor, in the namespaced child, of a listener the
// parent opened on the host's loopback for -serve: the child forwards its
// connections to the frontend inside the namespace, so a browser on the
// host can reach it.
const proxyFD = 3

func inOwnNetns() bool { return os.Getenv(netnsEnv) == "1" }

// runInNetns starts this program again, with the same arguments, in a new
// network namespace, and waits for it. SIGINT and SIGTERM are passed on.
// With serve, a loopback listener of the host is handed to the child.
func runInNetns(args []string, serve bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if serve {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			return err
		}
		l.Close()
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
		cmd.Env = append(cmd.Env, "TCPSTATUS_E2E_PROXY="+l.Addr().String())
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the run in a new network namespace: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return errReported{code: ee.ExitCode()}
			}
			return err
		}
	}
}

// errReported is the namespaced child's exit status: it has printed its
// own result.
type errReported struct{ code int }

func (e errReported) Error() string { return "exit status " + strconv.Itoa(e.code) }

// loopbackUp brings up lo, the new namespace's only interface.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// hostProxy forwards connections accepted on the host listener the parent
// handed over to addr inside the namespace; it returns the host address,
// or "" when there is no such listener.
func hostProxy(addr string) string {
	host := os.Getenv("TCPSTATUS_E2E_PROXY")
	if host == "" {
		return ""
	}
	l, err := net.FileListener(os.NewFile(proxyFD, "host listener"))
	if err != nil {
		logf("no host listener for the frontend: %v", err)
		return ""
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return host
}
