package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs starts long-running children in their own process groups and stops
// them, group by group, in reverse order. Each group id is also written to
// <work>/pgids so the shell wrapper can clean up after a crash.
type procs struct {
	mu      sync.Mutex
	list    []*proc
	pgidLog string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	stop syscall.Signal
	// haltFn stops a process started elsewhere (adopt); cmd is nil.
	haltFn func()
}

// account is a system user a child runs as.
type account struct {
	name     string
	uid, gid uint32
}

func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("user %s: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// start runs argv as the given account (nil: as we are) with output to
// logPath. stop is the signal that asks it to shut down cleanly.
func (p *procs) start(name string, as *account, logPath string, env []string, stop syscall.Signal, argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if as != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid, Groups: []uint32{}}
	}
	cmd.Env = append(os.Environ(), env...)
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, done: make(chan struct{}), stop: stop}
	go func() { pr.err = cmd.Wait(); close(pr.done) }()
	p.mu.Lock()
	p.list = append(p.list, pr)
	p.logPgid(cmd.Process.Pid)
	p.mu.Unlock()
	return pr, nil
}

// adopt takes a process another launcher started (in its own process group
// pgid) to stop it, with halt, in order with the rest.
func (p *procs) adopt(name string, pgid int, halt func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, &proc{name: name, haltFn: halt})
	p.logPgid(pgid)
}

// logPgid records a process group for the shell wrapper's cleanup.
func (p *procs) logPgid(pgid int) {
	if p.pgidLog != "" {
		if f, err := os.OpenFile(p.pgidLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			fmt.Fprintln(f, pgid)
			f.Close()
		}
	}
}

// exited reports whether the process has ended, and how.
func (pr *proc) exited() (bool, error) {
	select {
	case <-pr.done:
		return true, pr.err
	default:
		return false, nil
	}
}

// halt stops one process group: its stop signal, then SIGKILL after 15 s.
func (pr *proc) halt() {
	if pr.haltFn != nil {
		pr.haltFn()
		return
	}
	if ok, _ := pr.exited(); ok {
		// The leader is gone; children of a forking daemon may not be.
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		return
	}
	_ = syscall.Kill(-pr.cmd.Process.Pid, pr.stop)
	select {
	case <-pr.done:
	case <-time.After(15 * time.Second):
		logf("%s did not stop in 15 s; killing process group %d", pr.name, pr.cmd.Process.Pid)
	}
	_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
}

// stopAll halts every process started after mark (an index from len()).
func (p *procs) stopAll(mark int) {
	p.mu.Lock()
	list := append([]*proc(nil), p.list[mark:]...)
	p.list = p.list[:mark]
	p.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].halt()
	}
}

func (p *procs) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.list)
}

// run executes a short command and returns its combined output; the error
// includes the output's tail.
func run(ctx context.Context, as *account, stdin *os.File, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if as != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: as.uid, Gid: as.gid, Groups: []uint32{}}}
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(string(out), 800))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// writeFile writes a file owned by the given account (nil: root).
func writeFile(path, content string, as *account) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	return chown(path, as)
}

// mkdirOwned creates a directory (mode 0755) owned by the given account.
func mkdirOwned(path string, as *account) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	return chown(path, as)
}

func chown(path string, as *account) error {
	if as == nil {
		return nil
	}
	return os.Chown(path, int(as.uid), int(as.gid))
}

// fileTail returns the last n bytes of a log, for failure messages.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%s: %v)", filepath.Base(path), err)
	}
	return tail(string(b), n)
}

// waitFor polls cond every interval until it returns true, an error, or
// the timeout passes.
func waitFor(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still not true after %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

var errSkip = errors.New("skipped")
