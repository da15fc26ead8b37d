package procnames

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// childEnv makes the test binary run one scan for the inode it names and
// print the Result as JSON (see TestMain), so that a scan can run under
// another user and capability set.
const childEnv = "PROCNAMES_CHILD_INODE"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		ino, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		res, err := Scan(context.Background(), "/proc", map[uint64]struct{}{ino: {}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func set(inodes ...uint64) map[uint64]struct{} {
	m := map[uint64]struct{}{}
	for _, i := range inodes {
		m[i] = struct{}{}
	}
	return m
}

func TestScanFixture(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "discovery", "ports", "proc")
	res, err := Scan(context.Background(), root, set(1001, 1002, 2001, 3001, 4001, 4002, 6001, 9999))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]string{
		1001: {"sshd"},
		1002: {"sshd"},
		2001: {"postgres"},
		3001: {"nginx"}, // two nginx processes, one name
		4001: {"java"},
		4002: {"haproxy"},
	}
	if !reflect.DeepEqual(want, res.Names) {
		t.Errorf("Names\nwant %v\n got %v", want, res.Names)
	}
	// 11 processes with an fd directory; pid 900 has exited (no fd).
	if res.Processes != 11 || res.Vanished != 1 || res.Denied != 0 || res.Partial {
		t.Errorf("Processes/Vanished/Denied/Partial = %d/%d/%d/%v, want 11/1/0/false", res.Processes, res.Vanished, res.Denied, res.Partial)
	}
}

func TestScanSharedSocket(t *testing.T) {
	// A socket held by processes of two names gets both, sorted.
	root := t.TempDir()
	for pid, comm := range map[string]string{"10": "zeta", "11": "alpha", "12": "zeta"} {
		if err := os.MkdirAll(filepath.Join(root, pid, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "comm"), []byte(comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("socket:[42]", filepath.Join(root, pid, "fd", "3")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Scan(context.Background(), root, set(42))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Names[42]; !reflect.DeepEqual(got, []string{"alpha", "zeta"}) {
		t.Errorf("Names[42] = %v, want [alpha zeta]", got)
	}
}

func TestScanErrors(t *testing.T) {
	if _, err := Scan(context.Background(), filepath.Join(t.TempDir(), "missing"), set(1)); err == nil {
		t.Error("Scan of a missing root: no error")
	}
	res, err := Scan(context.Background(), t.TempDir(), nil)
	if err != nil || len(res.Names) != 0 {
		t.Errorf("Scan for no inode = %+v, %v", res, err)
	}
}

func TestScanCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := listen(t)
	res, err := Scan(ctx, "/proc", set(inodeOf(t, l)))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || len(res.Names) != 0 {
		t.Errorf("cancelled scan = %+v, want Partial and nothing found", res)
	}
}

func TestSocketInode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[123]", 123, true},
		{"socket:[18446744073709551615]", 0, false}, // refused rather than risk overflow
		{"socket:[]", 0, false},
		{"socket:[12a]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[123]", 0, false},
		{"/dev/null", 0, false},
		{"", 0, false},
	} {
		got, ok := socketInode([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func listen(t *testing.T) *net.TCPListener {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// inodeOf returns the socket inode of l (st_ino of its descriptor).
func inodeOf(t *testing.T, l *net.TCPListener) uint64 {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return st.Ino
}

func selfComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// fdOf returns the descriptor number of l.
func fdOf(t *testing.T, l *net.TCPListener) int {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) { n = int(fd) })
	return n
}

// TestIntegrationScan finds sockets of this process among the machine's
// real processes: a listener on a low descriptor already in the first pass
// (a scan cancelled between the passes names it and is partial), one on a
// descriptor past FirstPass in the second; the low one also held by a child
// process gets both names; an unreaped child (a zombie) is in the table too.
func TestIntegrationScan(t *testing.T) {
	low := listen(t)
	if fd := fdOf(t, low); fd >= FirstPass {
		t.Skipf("the test process already has %d descriptors", fd)
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if f.Fd() > FirstPass+8 {
			break
		}
	}
	high := listen(t)
	lowIno, highIno := inodeOf(t, low), inodeOf(t, high)
	self := selfComm(t)

	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()

	ctx, cancel := context.WithCancel(context.Background())
	res, err := scan(ctx, "/proc", set(lowIno, highIno), cancel)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || !reflect.DeepEqual(res.Names, map[uint64][]string{lowIno: {self}}) {
		t.Errorf("scan cancelled after the first pass = %+v, want Partial and only the low listener", res)
	}

	f, err := low.File()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "120")
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	res, err = Scan(context.Background(), "/proc", set(lowIno, highIno))
	if err != nil {
		t.Fatal(err)
	}
	shared := []string{self, "sleep"}
	slices.Sort(shared)
	want := map[uint64][]string{lowIno: shared, highIno: {self}}
	if res.Partial || !reflect.DeepEqual(res.Names, want) {
		t.Errorf("full scan: Names = %v (partial %v), want %v", res.Names, res.Partial, want)
	}
}

// childBinary copies the test binary where any user can run it.
func childBinary(t *testing.T) string {
	t.Helper()
	return testutil.CopyExecutable(t, testutil.WorldDir(t), "", "procnames.test")
}

// requireRoot skips unless root, or fails when TCPSTATUS_REQUIRE_AGENT=1.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = "needs " + tool
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("TCPSTATUS_REQUIRE_AGENT") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestIntegrationPrivileges runs a scan as an unprivileged user (nobody)
// with several capability sets, for a socket held by root, and pins which
// sets reveal the owner: reading another user's /proc/<pid>/fd needs
// CAP_DAC_READ_SEARCH (list the directory) and CAP_SYS_PTRACE (read the
// links). Without them the scan still succeeds, with the process counted as
// denied.
func TestIntegrationPrivileges(t *testing.T) {
	requireRoot(t, "setpriv")
	l := listen(t)
	ino := inodeOf(t, l)
	bin := childBinary(t)
	for _, tc := range []struct {
		caps  string
		found bool
	}{
		{"", false},
		{"sys_ptrace", false},
		{"dac_read_search", false},
		{"dac_override", false},
		{"dac_read_search,sys_ptrace", true},
		{"dac_override,sys_ptrace", true},
	} {
		t.Run("caps="+tc.caps, func(t *testing.T) {
			args := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
			if tc.caps != "" {
				plus := "+" + strings.ReplaceAll(tc.caps, ",", ",+")
				args = append(args, "--inh-caps="+plus, "--ambient-caps="+plus)
			}
			args = append(args, bin)
			cmd := exec.Command("setpriv", args...)
			cmd.Env = append(os.Environ(), childEnv+"="+strconv.FormatUint(ino, 10))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("setpriv %v: %v (%s)", args, err, out)
			}
			var res Result
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("child output %q: %v", out, err)
			}
			if found := len(res.Names[ino]) > 0; found != tc.found {
				t.Errorf("as nobody with caps %q: found = %v (%+v), want %v", tc.caps, found, res, tc.found)
			}
			if !tc.found && res.Denied == 0 {
				t.Errorf("as nobody with caps %q: no process counted as denied", tc.caps)
			}
		})
	}
}

// BenchmarkScan measures a scan of the machine's /proc while this process
// holds 0, 1000 and 10000 extra socket descriptors: the cost of process
// names is one readlink per open file of every process, whatever kind of
// file. Run: go test -run '^$' -bench Scan ./internal/procnames/
func BenchmarkScan(b *testing.B) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rc, err := l.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var st syscall.Stat_t
	rc.Control(func(fd uintptr) { syscall.Fstat(int(fd), &st) })
	want := set(st.Ino)
	var fds []int
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	for _, extra := range []int{0, 1000, 10000} {
		for len(fds) < extra {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			fds = append(fds, fd)
		}
		b.Run(fmt.Sprintf("extra-fds=%d", extra), func(b *testing.B) {
			for b.Loop() {
				res, err := Scan(context.Background(), "/proc", want)
				if err != nil || len(res.Names[st.Ino]) != 1 {
					b.Fatalf("scan: %+v, %v", res, err)
				}
			}
		})
	}
}
