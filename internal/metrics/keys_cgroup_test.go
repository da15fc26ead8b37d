package metrics

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// cgroupChildEnv makes the test binary a socket-holding child (see
// runCgroupChild) instead of running the tests.
const cgroupChildEnv = "TCPSTATUS_CGROUP_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(cgroupChildEnv); mode != "" {
		if err := runCgroupChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCgroupChild holds sockets until stdin closes. "server N": a listener on
// 127.0.0.1 that accepts N connections (prints its port, then "ready").
// "client PORT N H": N connections to 127.0.0.1:PORT, the first H of them
// half-closed (shutdown SHUT_WR: FIN_WAIT2 here, CLOSE_WAIT at the server).
func runCgroupChild(mode string) error {
	f := strings.Fields(mode)
	var held []net.Conn
	switch {
	case len(f) == 2 && f[0] == "server":
		n, _ := strconv.Atoi(f[1])
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		for range n {
			c, err := l.Accept()
			if err != nil {
				return err
			}
			held = append(held, c)
		}
	case len(f) == 4 && f[0] == "client":
		n, _ := strconv.Atoi(f[2])
		h, _ := strconv.Atoi(f[3])
		for i := range n {
			c, err := net.DialTimeout("tcp4", "127.0.0.1:"+f[1], 5*time.Second)
			if err != nil {
				return err
			}
			if i < h {
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					return err
				}
			}
			held = append(held, c)
		}
	default:
		return fmt.Errorf("bad mode %q", mode)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	_ = held
	return nil
}

// cgroupChild is a running child.
type cgroupChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startCgroupChild starts the test binary as a child in mode, inside ns and
// directly inside the cgroup directory dir (clone3 CLONE_INTO_CGROUP). No
// parent-death signal: it would fire when the namespace thread exits.
func startCgroupChild(t *testing.T, ns *testnet.NS, dir, mode string) *cgroupChild {
	t.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	c := &cgroupChild{}
	err = ns.Do(func() error {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), cgroupChildEnv+"="+mode)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		var err error
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		c.out = bufio.NewReader(stdout)
		c.cmd = cmd
		return cmd.Start()
	})
	if err != nil {
		t.Fatalf("start child %q in %s: %v", mode, dir, err)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	})
	return c
}

// line reads the child's next output line.
func (c *cgroupChild) line(t *testing.T) string {
	t.Helper()
	l, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	return strings.TrimSpace(l)
}

// cgroupsAnswer is the JSON of tcp.cgroups.get.
type cgroupsAnswer struct {
	Cgroups      []map[string]any  `json:"cgroups"`
	Unattributed map[string]uint64 `json:"unattributed"`
	Unresolved   map[string]uint64 `json:"unresolved"`
}

// byPath returns the counts by state of every cgroup, by path.
func (a cgroupsAnswer) byPath(t *testing.T) map[string]sockets.Counts {
	t.Helper()
	out := map[string]sockets.Counts{}
	for _, g := range a.Cgroups {
		p, _ := g["cgroup"].(string)
		var c sockets.Counts
		for _, s := range sockets.States() {
			c[s] = uint64(g[s.String()].(float64))
		}
		if uint64(g["total"].(float64)) != c.Total() {
			t.Errorf("cgroup %s: total %v, states sum to %d", p, g["total"], c.Total())
		}
		out[p] = c
	}
	return out
}

// ssByCgroup runs ss -tanH --cgroup in ns and counts its lines by cgroup
// path and state; lines without a cgroup go under "".
func ssByCgroup(t *testing.T, ns *testnet.NS) map[string]sockets.Counts {
	t.Helper()
	out, err := ns.SS("-tanH", "--cgroup")
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]sockets.Counts{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		st, ok := sockets.ParseState(f[0])
		if !ok {
			t.Fatalf("ss state %q in %q", f[0], l)
		}
		path := ""
		for _, x := range f[1:] {
			if p, ok := strings.CutPrefix(x, "cgroup:"); ok {
				path = p
			}
		}
		c := res[path]
		c[st]++
		res[path] = c
	}
	return res
}

// TestIntegrationCgroupsNetns: in a private namespace, a server process in
// one child cgroup and a client process in another hold ESTABLISHED,
// CLOSE_WAIT and FIN_WAIT2 sockets, and this process holds TIME_WAIT (no
// cgroup) and LAST_ACK ones; tcp.cgroups.get must equal ss --cgroup grouped
// by path, and name each child's sockets under its cgroup.
func TestIntegrationCgroupsNetns(t *testing.T) {
	ns := testnet.New(t)
	root, err := sockets.NewCgroupPaths().Root()
	if err != nil {
		t.Skip(err)
	}
	base := "tcpstatus-test-" + strconv.Itoa(os.Getpid())
	testutil.Cgroup(t, root, base)
	dirA := testutil.Cgroup(t, root, base+"/server.service")
	dirB := testutil.Cgroup(t, root, base+"/client.scope")

	const conns, half = 8, 3
	server := startCgroupChild(t, ns, dirA, "server "+strconv.Itoa(conns))
	port := server.line(t)
	client := startCgroupChild(t, ns, dirB, fmt.Sprintf("client %s %d %d", port, conns, half))
	if l := client.line(t); l != "ready" {
		t.Fatalf("client: %q", l)
	}
	if l := server.line(t); l != "ready" {
		t.Fatalf("server: %q", l)
	}
	if _, err := ns.TimeWait("127.0.0.1", 4); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	e, err := newExporter(cfg, NopLogger{}, nsSource{ns, sockets.NewNetlink()})
	if err != nil {
		t.Fatal(err)
	}
	var got cgroupsAnswer
	var ss map[string]sockets.Counts
	// Handshakes and FINs settle within milliseconds; retry a few times so
	// the two reads see the same table.
	for try := 0; ; try++ {
		v := exportIn(t, ns, e, "tcp.cgroups.get")
		if err := json.Unmarshal([]byte(v), &got); err != nil {
			t.Fatalf("%v: %s", err, v)
		}
		ss = ssByCgroup(t, ns)
		want := maps.Clone(ss)
		unattributed := want[""]
		delete(want, "")
		var un sockets.Counts
		for _, s := range sockets.States() {
			un[s] = got.Unattributed[s.String()]
		}
		if fmt.Sprint(got.byPath(t)) == fmt.Sprint(want) && un == unattributed {
			break
		}
		if try == 20 {
			t.Fatalf("tcp.cgroups.get %s\n ss by cgroup %v", v, ss)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rel := func(dir string) string { return "/" + strings.TrimPrefix(dir, root+"/") }
	byPath := got.byPath(t)
	a, b := byPath[rel(dirA)], byPath[rel(dirB)]
	var wantA, wantB sockets.Counts
	wantA[sockets.Listen], wantA[sockets.Established], wantA[sockets.CloseWait] = 1, conns-half, half
	wantB[sockets.Established], wantB[sockets.FinWait2] = conns-half, half
	if a != wantA || b != wantB {
		t.Errorf("server cgroup %s: %v, want %v; client cgroup %s: %v, want %v", rel(dirA), nonZeroCounts(a), nonZeroCounts(wantA), rel(dirB), nonZeroCounts(b), nonZeroCounts(wantB))
	}
	if got.Unattributed["time_wait"] != 4 || got.Unattributed["total"] != 4 {
		t.Errorf("unattributed %v, want 4 time_wait", got.Unattributed)
	}
	if got.Unresolved["total"] != 0 {
		t.Errorf("unresolved %v", got.Unresolved)
	}

	// The listener's cgroup names its port in discovery.
	var rows []lldRow
	if err := json.Unmarshal([]byte(exportIn(t, ns, e, "tcp.port.discovery")), &rows); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r["{#PORT}"] == port {
			found = true
			if r["{#SERVICE}"] != rel(dirA) {
				t.Errorf("port %s: {#SERVICE} %q, want %q", port, r["{#SERVICE}"], rel(dirA))
			}
		}
	}
	if !found {
		t.Errorf("port %s not discovered: %v", port, rows)
	}
}

func nonZeroCounts(c sockets.Counts) string {
	var b strings.Builder
	for _, s := range sockets.States() {
		if c[s] != 0 {
			fmt.Fprintf(&b, "%s=%d ", s, c[s])
		}
	}
	return strings.TrimSpace(b.String())
}

// TestCgroupsErrors: the /proc source and a source without cgroup ids give
// a clear error, never counts.
func TestCgroupsErrors(t *testing.T) {
	full := fakeSource{socks: []sockets.Socket{{Family: sockets.FamilyV4, State: sockets.Established, LocalPort: 80}}}
	e := testExporter(t, &full, 0)
	if _, err := e.Export(context.Background(), "tcp.cgroups.get", nil); err == nil || err.Error() != errCgroupIDs.msg {
		t.Errorf("without ids: %v", err)
	}
	named := namedSource{Source: &full, name: "proc"}
	e = testExporter(t, named, 0)
	if _, err := e.Export(context.Background(), "tcp.cgroups.get", nil); err == nil || err.Error() != errCgroupProc.msg {
		t.Errorf("proc source: %v", err)
	}
	// Only time-wait sockets (no id, none expected): no error.
	tw := fakeSource{socks: []sockets.Socket{{Family: sockets.FamilyV4, State: sockets.TimeWait, LocalPort: 80}}}
	e = testExporter(t, &tw, 0)
	e.cgroups = sockets.NewCgroupPaths(t.TempDir()) // no v2 tree there
	if _, err := e.Export(context.Background(), "tcp.cgroups.get", nil); err == nil || err.Error() != errNoCgroup2.msg {
		t.Errorf("no cgroup v2: %v", err)
	}
	if _, err := e.Export(context.Background(), "tcp.cgroups.get", []string{"x"}); err == nil {
		t.Error("a parameter is accepted")
	}
}

// namedSource renames a source.
type namedSource struct {
	sockets.Source
	name string
}

func (n namedSource) Name() string { return n.name }
