// Package netns makes private network namespaces and holds TCP sockets in
// chosen states there, with ss(8) as an independent oracle. It does not
// import testing; testkit/testnet is its testing.TB layer.
//
// Usage:
//
//	ns, err := netns.Open() // root with ip, nft and ss (Missing says what lacks)
//	defer ns.Destroy()
//	h, err := ns.TimeWait("127.0.0.1", 10)
//	...
//	n, err := ns.SSCount("-tan", "state", "time-wait", "sport", "=", ":"+strconv.Itoa(int(h.Port)))
//	err = ns.Do(func() error { // on a thread inside the namespace
//		c, err := sockets.Count(ctx, sockets.NewNetlink(), q)
//		...
//	})
//	c, err := sockets.Count(ctx, sockets.NewProc(ns.NetDir()), q)
//
// Destroy undoes everything: held sockets are closed or destroyed, the
// nftables table and the namespace deleted.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// nftTable is the nftables table (family inet) holding the drop rules.
const nftTable = "tcpstatus_test"

// firstPort is the first server port handed out; the namespace's ephemeral
// range starts at 32768, so server ports never collide with client ports.
const firstPort = 10000

// nsSeq makes namespace names unique within the process.
var nsSeq atomic.Uint32

// MissingForOpen lists what Open needs and this process lacks: root, ip,
// nft and ss in PATH.
func MissingForOpen() []string { return Missing("ip", "nft", "ss") }

// Missing lists what of root and the named tools in PATH this process
// lacks; empty when it has all.
func Missing(tools ...string) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	return missing
}

// NS is a network namespace created for one test, with lo up and the
// namespace sysctls of New applied.
type NS struct {
	// Name is the namespace name, as `ip netns` lists it.
	Name string

	nsFD   int
	netDir string
	stop   chan struct{}
	done   chan struct{}

	port atomic.Uint32

	mu       sync.Mutex
	fds      map[int]struct{}
	nftReady bool
}

// defaultSysctls are applied in every new namespace: wide ranges and
// backlogs, no syncookies (so SYN_RECV can be held), many retries and a long
// FIN timeout so held states do not time out during a test, and a short
// maximum RTO so retransmissions keep TIME_WAIT alive. A sysctl the kernel
// lacks is ignored.
var defaultSysctls = map[string]string{
	"net.ipv4.ip_local_port_range":   "32768 65535",
	"net.core.somaxconn":             "65535",
	"net.ipv4.tcp_max_syn_backlog":   "262144",
	"net.ipv4.tcp_max_tw_buckets":    "1048576",
	"net.ipv4.tcp_syncookies":        "0",
	"net.ipv4.tcp_syn_retries":       "127",
	"net.ipv4.tcp_synack_retries":    "255",
	"net.ipv4.tcp_retries2":          "255",
	"net.ipv4.tcp_orphan_retries":    "255",
	"net.ipv4.tcp_fin_timeout":       "3600",
	"net.ipv4.tcp_rto_max_ms":        "50000",
	"net.ipv6.conf.all.disable_ipv6": "0",
}

// Open creates a uniquely named namespace, brings lo up and sets its
// sysctls for holding states: ephemeral ports 32768-65535 (server ports
// handed out by the builders start at 10000), syncookies off, large
// backlogs, many retries, tcp_fin_timeout 3600, tcp_rto_max_ms 50000.
// Destroy removes it.
func Open() (*NS, error) {
	ns := &NS{
		Name: fmt.Sprintf("tcpstatus-%d-%d", os.Getpid(), nsSeq.Add(1)),
		nsFD: -1,
	}
	ns.port.Store(firstPort - 1)
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", ns.Name, err, out)
	}
	err := ns.setUp()
	if err != nil {
		return nil, errors.Join(err, ns.Destroy())
	}
	return ns, nil
}

func (ns *NS) setUp() error {
	fd, err := unix.Open(filepath.Join("/run/netns", ns.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open namespace %s: %v", ns.Name, err)
	}
	ns.nsFD = fd
	if err := ns.startWorker(); err != nil {
		return err
	}
	if out, err := ns.Run("ip", "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("lo up in %s: %v: %s", ns.Name, err, out)
	}
	return ns.Do(func() error {
		for k, v := range defaultSysctls {
			if err := writeSysctl(k, v); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// startWorker starts the long-lived thread inside the namespace whose
// /proc/<pid>/task/<tid>/net is NetDir.
func (ns *NS) startWorker() error {
	ns.stop, ns.done = make(chan struct{}), make(chan struct{})
	ready := make(chan error, 1)
	goLocked(func() {
		defer close(ns.done)
		if err := unix.Setns(ns.nsFD, unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		ns.netDir = fmt.Sprintf("/proc/%d/task/%d/net", os.Getpid(), unix.Gettid())
		ready <- nil
		<-ns.stop
	})
	if err := <-ready; err != nil {
		<-ns.done
		ns.stop = nil
		return err
	}
	return nil
}

// NetDir is a /proc/<pid>/task/<tid>/net directory showing the namespace's
// tables (tcp, tcp6, udp, ...), readable from any goroutine.
func (ns *NS) NetDir() string { return ns.netDir }

// Do runs f on a fresh OS thread that has entered the namespace, and waits
// for it. Sockets f creates (netlink included) belong to the namespace and
// keep belonging to it when used from other threads later. f must not start
// goroutines expecting them to be in the namespace. Do calls may run
// concurrently.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	goLocked(func() {
		err := errors.New("function in namespace exited without returning")
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in namespace %s: %v", ns.Name, r)
			}
			errc <- err
		}()
		if err = unix.Setns(ns.nsFD, unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		err = f()
	})
	return <-errc
}

// goLocked runs f on a new goroutine locked to an OS thread other than the
// process's main thread, and never unlocks it: f may move the thread into
// another namespace, and the thread is terminated when f returns. The main
// thread is excluded because Go cannot terminate it (it parks it for good
// instead), so it would stay in the namespace and /proc/self/net, which
// follows the main thread, would show that namespace to the rest of the
// test binary.
func goLocked(f func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			f()
			return // still locked: the thread exits with the goroutine
		}
		// On the main thread: run f elsewhere. While this goroutine holds
		// the main thread, the new goroutine cannot be scheduled on it.
		done := make(chan struct{})
		goLocked(func() {
			defer close(done)
			f()
		})
		<-done
		runtime.UnlockOSThread()
	}()
}

// writeSysctl writes a sysctl of the calling thread's network namespace.
func writeSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Sysctl sets a sysctl (dotted name, e.g. "net.ipv4.tcp_fin_timeout") in the
// namespace.
func (ns *NS) Sysctl(key, value string) error {
	return ns.Do(func() error { return writeSysctl(key, value) })
}

// Run runs a command inside the namespace and returns its combined output.
// The command is started from a thread inside the namespace, which the child
// inherits (cheaper than ip netns exec).
func (ns *NS) Run(name string, args ...string) ([]byte, error) {
	return ns.run("", name, args...)
}

// run is Run with stdin.
func (ns *NS) run(stdin, name string, args ...string) ([]byte, error) {
	var out []byte
	err := ns.Do(func() error {
		cmd := exec.Command(name, args...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return out, fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Nft runs an nft script (nft -f -) inside the namespace.
func (ns *NS) Nft(script string) error {
	_, err := ns.run(script, "nft", "-f", "-")
	return err
}

// Drop adds an nftables rule dropping the locally sent packets that match
// expr (nft syntax, e.g. "tcp dport 10001 tcp flags & (syn | ack) == syn").
func (ns *NS) Drop(expr string) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	script := ""
	if !ns.nftReady {
		script = "table inet " + nftTable + " {\n chain out { type filter hook output priority 0; policy accept; }\n}\n"
	}
	script += "add rule inet " + nftTable + " out " + expr + " drop\n"
	if err := ns.Nft(script); err != nil {
		return err
	}
	ns.nftReady = true
	return nil
}

// SS runs ss with args inside the namespace and returns its output.
func (ns *NS) SS(args ...string) (string, error) {
	out, err := ns.Run("ss", args...)
	return string(out), err
}

// SSCount runs `ss -H args...` inside the namespace and returns the number
// of sockets listed, e.g. SSCount("-tan", "state", "time-wait", "sport", "=", ":80").
func (ns *NS) SSCount(args ...string) (int, error) {
	out, err := ns.Run("ss", append([]string{"-H"}, args...)...)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n, nil
}

// hold records fds to close at cleanup.
func (ns *NS) hold(fds ...int) {
	ns.mu.Lock()
	if ns.fds == nil {
		ns.fds = map[int]struct{}{}
	}
	for _, fd := range fds {
		ns.fds[fd] = struct{}{}
	}
	ns.mu.Unlock()
}

// Close closes a socket fd the namespace holds now instead of at cleanup.
// An fd it does not hold is left alone.
func (ns *NS) Close(fd int) error {
	ns.mu.Lock()
	_, ok := ns.fds[fd]
	delete(ns.fds, fd)
	ns.mu.Unlock()
	if !ok {
		return fmt.Errorf("close fd %d: not held", fd)
	}
	return unix.Close(fd)
}

// Destroy undoes Open: drop rules, sockets, the worker thread, the
// namespace. It returns what could not be undone.
func (ns *NS) Destroy() error {
	var errs []error
	if ns.nftReady {
		if err := ns.Nft("delete table inet " + nftTable + "\n"); err != nil {
			errs = append(errs, err)
		}
	}
	ns.mu.Lock()
	for fd := range ns.fds {
		unix.Close(fd)
	}
	ns.fds = nil
	ns.mu.Unlock()
	if ns.nsFD >= 0 {
		// Orphans (LAST_ACK, FIN_WAIT, the sockets just closed) and
		// TIME_WAIT entries would keep the namespace alive after
		// `ip netns del`: destroy every socket, again while a dump raced
		// with state changes and missed some.
		left := ""
		for try := 0; try < 10; try++ {
			left = ""
			for _, p := range []string{"-t", "-u"} {
				_, kerr := ns.Run("ss", "-K", "-a", "-n", p) // what stays is counted next
				if n, err := ns.SSCount("-a", "-n", p); err != nil || n != 0 {
					left += fmt.Sprintf(" ss %s: %d sockets (%v; ss -K: %v)", p, n, err, kerr)
				}
			}
			if left == "" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if left != "" {
			errs = append(errs, fmt.Errorf("sockets left in %s:%s", ns.Name, left))
		}
	}
	if ns.stop != nil {
		close(ns.stop)
		<-ns.done
	}
	if ns.nsFD >= 0 {
		unix.Close(ns.nsFD)
	}
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", ns.Name, err, out))
	}
	return errors.Join(errs...)
}
