package faults

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as two helper programs, chosen by environment:
const (
	// envSeccompExec: install a seccomp filter that refuses
	// socket(AF_NETLINK, *, NETLINK_SOCK_DIAG) with EACCES (what an SELinux
	// or AppArmor denial looks like), then exec the program it names with
	// the same arguments. The agent runs it as the plugin.
	envSeccompExec = "TCPSTATUS_FAULTS_SECCOMP_EXEC"
	// envListener: listen on this many loopback ports, print them, live
	// for envListenerMs milliseconds, exit. Short-lived processes for
	// discovery to map.
	envListener   = "TCPSTATUS_FAULTS_LISTENER"
	envListenerMs = "TCPSTATUS_FAULTS_LISTENER_MS"
	// envListenerFDs: open this many descriptors after the first half of
	// the listeners and before the second (so those lie past the owner
	// scan's first pass), then print "ready".
	envListenerFDs = "TCPSTATUS_FAULTS_LISTENER_FDS"
)

func TestMain(m *testing.M) {
	if target := os.Getenv(envSeccompExec); target != "" {
		os.Exit(seccompExec(target))
	}
	if n := os.Getenv(envListener); n != "" {
		os.Exit(listener(n, os.Getenv(envListenerMs)))
	}
	os.Exit(m.Run())
}

// auditArch is the seccomp architecture token of this build.
func auditArch() (uint32, bool) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, true
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, true
	}
	return 0, false
}

// netlinkDenyFilter is a seccomp program: socket(AF_NETLINK, _,
// NETLINK_SOCK_DIAG) fails with EACCES, everything else is allowed.
func netlinkDenyFilter(arch uint32) []unix.SockFilter {
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
	)
	// struct seccomp_data: nr at 0, arch at 4, args[i] at 16+8i (low half
	// first on little-endian machines).
	return []unix.SockFilter{
		{Code: ld, K: 4},
		{Code: jeq, K: arch, Jt: 0, Jf: 7}, // other arch: allow
		{Code: ld, K: 0},
		{Code: jeq, K: uint32(unix.SYS_SOCKET), Jt: 0, Jf: 5},
		{Code: ld, K: 16},
		{Code: jeq, K: unix.AF_NETLINK, Jt: 0, Jf: 3},
		{Code: ld, K: 32},
		{Code: jeq, K: unix.NETLINK_SOCK_DIAG, Jt: 0, Jf: 1},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
}

func seccompExec(target string) int {
	arch, ok := auditArch()
	if !ok {
		fmt.Fprintf(os.Stderr, "seccomp helper: unsupported architecture %s\n", runtime.GOARCH)
		return 3
	}
	// The filter binds the calling thread, and execve keeps only it.
	runtime.LockOSThread()
	filter := netlinkDenyFilter(arch)
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "seccomp helper: no_new_privs: %v\n", err)
		return 3
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "seccomp helper: set filter: %v\n", err)
		return 3
	}
	args := append([]string{target}, os.Args[1:]...)
	err := syscall.Exec(target, args, os.Environ())
	fmt.Fprintf(os.Stderr, "seccomp helper: exec %s: %v\n", target, err)
	return 3
}

func listener(count, ms string) int {
	n, _ := strconv.Atoi(count)
	d, _ := strconv.Atoi(ms)
	fds, _ := strconv.Atoi(os.Getenv(envListenerFDs))
	var ls []net.Listener
	for i := range max(n, 1) {
		if fds > 0 && i == max(n, 1)/2 {
			for range fds {
				if _, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
		}
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	if fds > 0 {
		fmt.Println("ready")
	}
	time.Sleep(time.Duration(d) * time.Millisecond)
	return 0
}
