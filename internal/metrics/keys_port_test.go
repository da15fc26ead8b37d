package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

var update = flag.Bool("update", false, "rewrite the golden outputs under testdata/golden")

// fixtureRoot is testdata/discovery/<scenario>.
func fixtureRoot(scenario string) string {
	return filepath.Join("..", "..", "testdata", "discovery", scenario)
}

// protoSource serves a fake TCP table and a fake UDP table.
type protoSource struct{ tcp, udp *fakeSource }

func (p protoSource) Name() string { return "fake" }

func (p protoSource) Walk(ctx context.Context, q sockets.Query, visit func(*sockets.Socket)) error {
	if q.Proto == sockets.UDP {
		return p.udp.Walk(ctx, q, visit)
	}
	return p.tcp.Walk(ctx, q, visit)
}

// ino sets the inode of a socket built by sock.
func ino(s sockets.Socket, inode uint64) sockets.Socket {
	s.Inode = inode
	return s
}

// listener builds a listening socket with its accept queue and backlog.
func listener(local string, queue, backlog uint32, inode uint64) sockets.Socket {
	s := sock(sockets.Listen, local, "")
	s.RQueue, s.WQueue, s.Inode = queue, backlog, inode
	return s
}

// portTables mirrors testdata/discovery/ports: the inodes are those the
// fixture processes hold.
func portTables() protoSource {
	tcp := []sockets.Socket{
		listener("0.0.0.0:22", 0, 128, 1001),
		listener("[::]:22", 0, 128, 1002),
		listener("127.0.0.1:5432", 0, 200, 2001),
		listener("[::1]:5432", 0, 200, 2002),
		listener("0.0.0.0:80", 3, 4, 3001),
		listener("0.0.0.0:8080", 0, 10, 4001),
		listener("127.0.0.1:8080", 1, 10, 4002),
		listener("10.0.0.1:9100", 0, 4096, 6001),
		listener("[::ffff:127.0.0.1]:6379", 0, 511, 7001),
		ino(sock(sockets.Established, "10.0.0.1:22", "10.0.0.9:40000"), 8001),
		ino(sock(sockets.Established, "10.0.0.1:80", "10.0.0.9:40002"), 8003),
		sock(sockets.TimeWait, "10.0.0.1:80", "10.0.0.9:40003"),
		sock(sockets.TimeWait, "10.0.0.1:80", "10.0.0.9:40004"),
		ino(sock(sockets.CloseWait, "10.0.0.1:80", "10.0.0.9:40005"), 8004),
		sock(sockets.SynRecv, "10.0.0.1:80", "10.0.0.9:40006"),
		ino(sock(sockets.Established, "10.0.0.1:45000", "10.0.0.9:80"), 8005),
	}
	udp := []sockets.Socket{
		ino(sock(sockets.Close, "0.0.0.0:68", ""), 9001),
		ino(sock(sockets.Close, "127.0.0.53:53", ""), 5101),
		ino(sock(sockets.Close, "0.0.0.0:123", ""), 9002),
		ino(sock(sockets.Close, "[::]:123", ""), 9004),
		ino(sock(sockets.Established, "10.0.0.1:41000", "10.0.0.9:53"), 9003),
		// Connected but reported in CLOSE with a peer: not a bound port.
		ino(sock(sockets.Close, "10.0.0.1:41001", "10.0.0.9:53"), 9006),
	}
	return protoSource{tcp: &fakeSource{socks: tcp}, udp: &fakeSource{socks: udp, proto: sockets.UDP}}
}

// portExporter builds an exporter over src whose process names come from
// procRoot.
func portExporter(t testing.TB, src sockets.Source, procRoot string) *Exporter {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	cfg.ProcRoot = procRoot
	e, err := newExporter(cfg, NopLogger{}, src)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type lldRow = map[string]string

func decodeLLD(t testing.TB, v string) []lldRow {
	t.Helper()
	var rows []lldRow
	if err := json.Unmarshal([]byte(v), &rows); err != nil {
		t.Fatalf("not an LLD array: %v: %s", err, v)
	}
	return rows
}

func port(p, addr, fam, proc, loop string) lldRow {
	return lldRow{"{#PORT}": p, "{#ADDRESS}": addr, "{#FAMILY}": fam, "{#PROCESS}": proc, "{#LOOPBACK}": loop, "{#SERVICE}": ""}
}

// withService returns rows with {#SERVICE} set to svc.
func withService(rows []lldRow, svc string) []lldRow {
	out := make([]lldRow, len(rows))
	for i, r := range rows {
		out[i] = maps.Clone(r)
		out[i]["{#SERVICE}"] = svc
	}
	return out
}

// selfCgroup returns the cgroup v2 path of this process (/proc/self/cgroup,
// the "0::" line), skipping the test where there is none.
func selfCgroup(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	t.Skip("no cgroup v2 membership in /proc/self/cgroup")
	return ""
}

func TestTCPPortDiscovery(t *testing.T) {
	e := portExporter(t, portTables(), filepath.Join(fixtureRoot("ports"), "proc"))
	v, err := e.Export(context.Background(), "tcp.port.discovery", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []lldRow{
		port("22", "0.0.0.0,::", "4,6", "sshd", "0"),
		port("80", "0.0.0.0", "4", "nginx", "0"),
		port("5432", "127.0.0.1,::1", "4,6", "postgres", "1"),
		port("6379", "::ffff:127.0.0.1", "6", "redis-server", "1"),
		port("8080", "0.0.0.0,127.0.0.1", "4", "haproxy,java", "0"),
		port("9100", "10.0.0.1", "4", "", "0"), // no process holds 6001
	}
	if got := decodeLLD(t, v); !reflect.DeepEqual(want, got) {
		t.Errorf("tcp.port.discovery\nwant %v\n got %v", want, got)
	}
	// Exact text: macros in the documented order, sorted by port.
	if !strings.HasPrefix(v, `[{"{#PORT}":"22","{#ADDRESS}":"0.0.0.0,::","{#FAMILY}":"4,6","{#PROCESS}":"sshd","{#LOOPBACK}":"0","{#SERVICE}":""},`) {
		t.Errorf("tcp.port.discovery text: %s", v)
	}
}

func TestUDPPortDiscovery(t *testing.T) {
	e := portExporter(t, portTables(), filepath.Join(fixtureRoot("ports"), "proc"))
	v, err := e.Export(context.Background(), "udp.port.discovery", []string{""})
	if err != nil {
		t.Fatal(err)
	}
	want := []lldRow{
		port("53", "127.0.0.53", "4", "systemd-resolve", "1"),
		port("68", "0.0.0.0", "4", "dhclient", "0"),
		port("123", "0.0.0.0,::", "4,6", "chronyd", "0"),
	}
	if got := decodeLLD(t, v); !reflect.DeepEqual(want, got) {
		t.Errorf("udp.port.discovery\nwant %v\n got %v", want, got)
	}
}

func TestPortDiscoveryEmptyAndErrors(t *testing.T) {
	empty := protoSource{tcp: &fakeSource{}, udp: &fakeSource{proto: sockets.UDP}}
	e := portExporter(t, empty, t.TempDir())
	for _, key := range []string{"tcp.port.discovery", "udp.port.discovery"} {
		if v, err := e.Export(context.Background(), key, nil); err != nil || v != "[]" {
			t.Errorf("%s on an empty table = %q, %v; want []", key, v, err)
		}
		if _, err := e.Export(context.Background(), key, []string{"x"}); err == nil || err.Error() != "Too many parameters." {
			t.Errorf("%s[x]: %v, want Too many parameters.", key, err)
		}
	}
	broken := &fakeSource{err: errors.New("netlink: recv: no buffer space")}
	e = portExporter(t, protoSource{tcp: broken, udp: broken}, t.TempDir())
	_, err := e.Export(context.Background(), "tcp.port.discovery", nil)
	if err == nil || err.Error() != "Cannot obtain socket table. Netlink: recv: no buffer space." {
		t.Errorf("failing source: %v", err)
	}
	// Process names are best effort: an unreadable proc root leaves them empty.
	e = portExporter(t, portTables(), filepath.Join(t.TempDir(), "missing"))
	v, err := e.Export(context.Background(), "tcp.port.discovery", nil)
	if err != nil || strings.Contains(v, "sshd") || !strings.Contains(v, `"{#PORT}":"22"`) {
		t.Errorf("without process names: %s, %v", v, err)
	}
}

// TestPortDiscoveryFollowsChanges checks that a listener appearing or
// vanishing between two calls shows at once: discovery is never cached.
func TestPortDiscoveryFollowsChanges(t *testing.T) {
	src := portTables()
	e := portExporter(t, src, t.TempDir())
	e.cfg.CacheTTL = DefaultCacheTTL
	count := func() int {
		v, err := e.Export(context.Background(), "tcp.port.discovery", nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(decodeLLD(t, v))
	}
	if n := count(); n != 6 {
		t.Fatalf("%d ports, want 6", n)
	}
	src.tcp.socks = append(src.tcp.socks, listener("[::]:443", 0, 10, 0))
	if n := count(); n != 7 {
		t.Errorf("after a new listener: %d ports, want 7", n)
	}
	src.tcp.socks = src.tcp.socks[1:] // 0.0.0.0:22 goes, [::]:22 stays
	src.tcp.socks = src.tcp.socks[:len(src.tcp.socks)-1]
	v, _ := e.Export(context.Background(), "tcp.port.discovery", nil)
	rows := decodeLLD(t, v)
	if len(rows) != 6 || rows[0]["{#ADDRESS}"] != "::" || rows[0]["{#FAMILY}"] != "6" {
		t.Errorf("after closing two listeners: %v", rows)
	}
}

func TestTCPPortGet(t *testing.T) {
	e := portExporter(t, portTables(), t.TempDir())
	cases := []struct {
		name, port, want string
	}{
		{"+two listeners", "22", `{"port":22,"listening":1,"listeners":2,"accept_queue":0,"backlog":256,"accept_queue_pused":0.00,` +
			`"established":1,"syn_sent":0,"syn_recv":0,"fin_wait1":0,"fin_wait2":0,"time_wait":0,"close":0,"close_wait":0,"last_ack":0,"listen":2,"closing":0,"total":3}`},
		{"+queue 3 of 4", "80", `{"port":80,"listening":1,"listeners":1,"accept_queue":3,"backlog":4,"accept_queue_pused":75.00,` +
			`"established":1,"syn_sent":0,"syn_recv":1,"fin_wait1":0,"fin_wait2":0,"time_wait":2,"close":0,"close_wait":1,"last_ack":0,"listen":1,"closing":0,"total":6}`},
		{"+fullest listener", "8080", `{"port":8080,"listening":1,"listeners":2,"accept_queue":1,"backlog":20,"accept_queue_pused":10.00,` +
			`"established":0,"syn_sent":0,"syn_recv":0,"fin_wait1":0,"fin_wait2":0,"time_wait":0,"close":0,"close_wait":0,"last_ack":0,"listen":2,"closing":0,"total":2}`},
		{"+not listening", "45000", `{"port":45000,"listening":0,"listeners":0,"accept_queue":0,"backlog":0,"accept_queue_pused":0.00,` +
			`"established":1,"syn_sent":0,"syn_recv":0,"fin_wait1":0,"fin_wait2":0,"time_wait":0,"close":0,"close_wait":0,"last_ack":0,"listen":0,"closing":0,"total":1}`},
		{"+spaces", " 9100 ", `{"port":9100,"listening":1,"listeners":1,"accept_queue":0,"backlog":4096,"accept_queue_pused":0.00,` +
			`"established":0,"syn_sent":0,"syn_recv":0,"fin_wait1":0,"fin_wait2":0,"time_wait":0,"close":0,"close_wait":0,"last_ack":0,"listen":1,"closing":0,"total":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.Export(context.Background(), "tcp.port.get", []string{c.port})
			if err != nil || got != c.want {
				t.Fatalf("tcp.port.get[%s]\n got %s, %v\nwant %s", c.port, got, err, c.want)
			}
			var m map[string]float64
			if err := json.Unmarshal([]byte(got), &m); err != nil || len(m) != 18 {
				t.Errorf("not a JSON object of 18 numbers: %v", err)
			}
		})
	}
}

func TestTCPPortGetQueueWithoutBacklog(t *testing.T) {
	// The /proc tables show no backlog for a listener: no ratio is made up.
	src := &fakeSource{socks: []sockets.Socket{listener("0.0.0.0:25", 2, 0, 0)}}
	v, err := portExporter(t, src, t.TempDir()).Export(context.Background(), "tcp.port.get", []string{"25"})
	if err != nil || !strings.Contains(v, `"accept_queue":2,"backlog":0,"accept_queue_pused":0.00,`) {
		t.Errorf("tcp.port.get[25] = %s, %v", v, err)
	}
}

func TestTCPPortGetErrors(t *testing.T) {
	e := portExporter(t, portTables(), t.TempDir())
	cases := []struct {
		name   string
		params []string
		want   string
	}{
		{"-no port", nil, "Invalid first parameter: port is required."},
		{"-empty port", []string{" "}, "Invalid first parameter: port is required."},
		{"-zero", []string{"0"}, "Invalid first parameter: port must be from 1 to 65535, got 0."},
		{"-too big", []string{"65536"}, "Invalid first parameter: port must be from 1 to 65535, got 65536."},
		{"-name", []string{"ssh"}, `Invalid first parameter: port must be a number from 1 to 65535, got "ssh".`},
		{"-negative", []string{"-1"}, `Invalid first parameter: port must be a number from 1 to 65535, got "-1".`},
		{"-two params", []string{"22", "4"}, "Too many parameters."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Export(context.Background(), "tcp.port.get", c.params)
			if err == nil || err.Error() != c.want {
				t.Errorf("tcp.port.get%q: %v, want %q", c.params, err, c.want)
			}
		})
	}
	broken := &fakeSource{err: sockets.ErrUnsupported}
	_, err := portExporter(t, broken, t.TempDir()).Export(context.Background(), "tcp.port.get", []string{"22"})
	if err == nil || !strings.HasPrefix(err.Error(), "Cannot obtain socket table.") {
		t.Errorf("failing source: %v", err)
	}
}

// goldenCase is one key answered over a fixture tree.
type goldenCase struct {
	key    string
	params []string
}

// file names the golden file of the case: the key, then its parameters
// joined by '_' with unsafe bytes replaced.
func (c goldenCase) file() string {
	name := c.key
	for _, p := range c.params {
		name += "_" + p
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '!' || r == ' ' {
			return '-'
		}
		return r
	}, name) + ".txt"
}

// checkGolden answers every case with an exporter reading the scenario's
// fixture tree (the /proc socket source, as with ProcRoot set) and compares
// with testdata/golden/<scenario>/<case>.txt; -update rewrites them. Errors
// are recorded as "error: <text>".
func checkGolden(t *testing.T, scenario string, cases []goldenCase) {
	t.Helper()
	root := fixtureRoot(scenario)
	cfg := DefaultConfig()
	cfg.ProcRoot = filepath.Join(root, "proc")
	cfg.SysRoot = filepath.Join(root, "sys")
	cfg.CacheTTL = 0
	e, err := New(cfg, NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	if e.src.Name() != "proc" {
		t.Fatalf("fixture exporter uses the %s source, want proc", e.src.Name())
	}
	dir := filepath.Join("..", "..", "testdata", "golden", scenario)
	for _, c := range cases {
		v, err := e.Export(context.Background(), c.key, c.params)
		got := v + "\n"
		if err != nil {
			got = "error: " + err.Error() + "\n"
		}
		path := filepath.Join(dir, c.file())
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run go test -run Golden -update to create it)", path, err)
			continue
		}
		if got != string(want) {
			t.Errorf("%s%q differs from %s\nwant %s got  %s", c.key, c.params, path, want, got)
		}
	}
}

func TestGoldenPorts(t *testing.T) {
	cases := []goldenCase{
		{key: "tcp.port.discovery"},
		{key: "udp.port.discovery"},
		{key: "tcp.port.get", params: []string{"22"}},
		{key: "tcp.port.get", params: []string{"80"}},
		{key: "tcp.port.get", params: []string{"5432"}},
		{key: "tcp.port.get", params: []string{"8080"}},
		{key: "tcp.port.get", params: []string{"1"}},
		{key: "tcp.port.get", params: []string{"http"}},
		{key: "tcp.sockets.get"},
		{key: "tcp.ephemeral.get"},
	}
	for _, scenario := range []string{"ports", "ipv6-off"} {
		t.Run(scenario, func(t *testing.T) { checkGolden(t, scenario, cases) })
	}
}

// recordingSource records the queries it is asked.
type recordingSource struct {
	fakeSource
	queries []sockets.Query
}

func (r *recordingSource) Walk(ctx context.Context, q sockets.Query, visit func(*sockets.Socket)) error {
	r.queries = append(r.queries, q)
	return r.fakeSource.Walk(ctx, q, visit)
}

// TestPortDiscoveryAsksListenersOnly pins the cost model: discovery dumps
// only listeners (bound UDP sockets), never the whole table.
func TestPortDiscoveryAsksListenersOnly(t *testing.T) {
	src := &recordingSource{}
	e := portExporter(t, src, t.TempDir())
	for _, key := range []string{"tcp.port.discovery", "udp.port.discovery"} {
		if _, err := e.Export(context.Background(), key, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []sockets.Query{
		{Proto: sockets.TCP, States: sockets.MaskOf(sockets.Listen), Fields: sockets.FieldLocalAddr | sockets.FieldQueues | sockets.FieldInode | sockets.FieldCgroup},
		{Proto: sockets.UDP, States: sockets.MaskOf(sockets.Close), Fields: sockets.FieldLocalAddr | sockets.FieldRemote | sockets.FieldInode | sockets.FieldCgroup},
	}
	if !reflect.DeepEqual(src.queries, want) {
		t.Errorf("queries %+v, want %+v", src.queries, want)
	}
}

// TestPortDiscoveryNamesWithinDeadline checks that a request whose time is
// already up still gets its ports, without process names.
func TestPortDiscoveryNamesWithinDeadline(t *testing.T) {
	e := portExporter(t, portTables(), filepath.Join(fixtureRoot("ports"), "proc"))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	v, err := e.Export(ctx, "tcp.port.discovery", nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := decodeLLD(t, v)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6: %s", len(rows), v)
	}
	for _, r := range rows {
		if r["{#PROCESS}"] != "" {
			t.Errorf("port %s got process %q after the deadline", r["{#PORT}"], r["{#PROCESS}"])
		}
	}
}

// nsListeners opens listeners inside ns; they are closed when the test
// ends, before the namespace goes.
type nsListeners struct {
	t   testing.TB
	ns  *testnet.NS
	fds map[string]int // "addr:port" → fd
}

func newNSListeners(t testing.TB, ns *testnet.NS) *nsListeners {
	l := &nsListeners{t: t, ns: ns, fds: map[string]int{}}
	t.Cleanup(func() {
		for _, fd := range l.fds {
			unix.Close(fd)
		}
	})
	return l
}

// open listens on each addr:port (or binds UDP when udp is set).
func (l *nsListeners) open(udp bool, addrs ...string) {
	l.t.Helper()
	err := l.ns.Do(func() error {
		for _, s := range addrs {
			ap := netip.MustParseAddrPort(s)
			var sa unix.Sockaddr
			dom := unix.AF_INET
			if ap.Addr().Is4() {
				sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
			} else {
				sa, dom = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, unix.AF_INET6
			}
			typ := unix.SOCK_STREAM
			if udp {
				typ = unix.SOCK_DGRAM
			}
			fd, err := unix.Socket(dom, typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			l.fds[s] = fd
			if dom == unix.AF_INET6 {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
					return err
				}
			}
			if err := unix.Bind(fd, sa); err != nil {
				return fmt.Errorf("bind %s: %w", s, err)
			}
			if !udp {
				if err := unix.Listen(fd, 16); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

func (l *nsListeners) close(addrs ...string) {
	for _, s := range addrs {
		unix.Close(l.fds[s])
		delete(l.fds, s)
	}
}

// exportIn answers key on a thread inside ns (netlink sees the namespace of
// the calling thread).
func exportIn(t testing.TB, ns *testnet.NS, e *Exporter, key string) string {
	t.Helper()
	var v string
	err := ns.Do(func() error {
		var err error
		v, err = e.Export(context.Background(), key, nil)
		return err
	})
	if err != nil {
		t.Fatalf("%s in %s: %v", key, ns.Name, err)
	}
	return v
}

// ssPorts lists the distinct local ports ss shows with args (e.g. "-ltn").
func ssPorts(t testing.TB, ns *testnet.NS, args ...string) []string {
	t.Helper()
	out, err := ns.SS(append([]string{"-H"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p, err := strconv.Atoi(f[3][strings.LastIndexByte(f[3], ':')+1:])
		if err != nil {
			t.Fatalf("ss line %q", line)
		}
		seen[p] = true
	}
	var ports []int
	for p := range seen {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return s
}

func rowPorts(rows []lldRow) []string {
	s := make([]string, len(rows))
	for i, r := range rows {
		s[i] = r["{#PORT}"]
	}
	return s
}

// TestIntegrationPortDiscoveryNetns holds 300 listening ports (500
// listeners: some ports on IPv4 and IPv6 loopback, some on a non-loopback
// address, some IPv6 only) in a private namespace, and checks discovery
// through netlink and through the /proc tables against the expected rows
// and against ss; then a listener vanishes and another appears between two
// calls.
func TestIntegrationPortDiscoveryNetns(t *testing.T) {
	ns := testnet.New(t)
	if _, err := ns.Run("ip", "addr", "add", "192.0.2.1/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	l := newNSListeners(t, ns)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	self := strings.TrimSpace(string(comm))
	var addrs []string
	var want []lldRow
	for i := range 300 {
		p := strconv.Itoa(20000 + i)
		switch i % 3 {
		case 0:
			addrs = append(addrs, "127.0.0.1:"+p, "[::1]:"+p)
			want = append(want, port(p, "127.0.0.1,::1", "4,6", self, "1"))
		case 1:
			addrs = append(addrs, "192.0.2.1:"+p, "127.0.0.2:"+p)
			want = append(want, port(p, "127.0.0.2,192.0.2.1", "4", self, "0"))
		case 2:
			addrs = append(addrs, "[::]:"+p)
			want = append(want, port(p, "::", "6", self, "0"))
		}
	}
	l.open(false, addrs...)
	if n, err := ns.SSCount("-ltn"); err != nil || n != 500 {
		t.Fatalf("ss -ltn shows %d listeners (%v), want 500", n, err)
	}

	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	// Process names get half the timeout: room for a host with very many
	// open files (other tests' socket holders).
	cfg.Timeout = 30 * time.Second
	viaNetlink, err := newExporter(cfg, NopLogger{}, sockets.NewNetlink())
	if err != nil {
		t.Fatal(err)
	}
	viaProc, err := newExporter(cfg, NopLogger{}, sockets.NewProc(ns.NetDir()))
	if err != nil {
		t.Fatal(err)
	}
	// Netlink names each listener's cgroup ({#SERVICE}): this process's;
	// the /proc tables carry no cgroup and leave it empty.
	cg := selfCgroup(t)
	nl := exportIn(t, ns, viaNetlink, "tcp.port.discovery")
	if got := decodeLLD(t, nl); !reflect.DeepEqual(got, withService(want, cg)) {
		t.Errorf("tcp.port.discovery over netlink: %d rows, want %d\n got %.400v\nwant %.400v", len(got), len(want), got, withService(want, cg))
	}
	if pr := exportIn(t, ns, viaProc, "tcp.port.discovery"); pr != strings.ReplaceAll(nl, `"{#SERVICE}":`+strconv.Quote(cg), `"{#SERVICE}":""`) {
		t.Errorf("the /proc tables give another discovery than netlink:\n%.400s\n%.400s", pr, nl)
	}
	if got, ss := rowPorts(decodeLLD(t, nl)), ssPorts(t, ns, "-ltn"); !reflect.DeepEqual(got, ss) {
		t.Errorf("ports %v\nss shows %v", got, ss)
	}

	// Port 20000 closes entirely, 20003 loses its IPv6 listener, 30000
	// appears.
	l.close("127.0.0.1:20000", "[::1]:20000", "[::1]:20003")
	l.open(false, "[::1]:30000")
	rows := decodeLLD(t, exportIn(t, ns, viaNetlink, "tcp.port.discovery"))
	if len(rows) != 300 || rows[0]["{#PORT}"] != "20001" || rows[len(rows)-1]["{#PORT}"] != "30000" {
		t.Fatalf("after the changes: %d rows, first %v, last %v", len(rows), rows[0], rows[len(rows)-1])
	}
	if r := rows[2]; !reflect.DeepEqual(r, withService([]lldRow{port("20003", "127.0.0.1", "4", self, "1")}, cg)[0]) {
		t.Errorf("port 20003 after its IPv6 listener closed: %v", r)
	}

	// UDP: bound sockets are ports, a connected one is not.
	l.open(true, "127.0.0.1:5353", "[::]:5353", "192.0.2.1:161")
	err = ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		l.fds["udp-connected"] = fd
		return unix.Connect(fd, &unix.SockaddrInet4{Port: 53, Addr: [4]byte{127, 0, 0, 1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	wantUDP := []lldRow{port("161", "192.0.2.1", "4", self, "0"), port("5353", "127.0.0.1,::", "4,6", self, "0")}
	udp := exportIn(t, ns, viaNetlink, "udp.port.discovery")
	if got := decodeLLD(t, udp); !reflect.DeepEqual(got, withService(wantUDP, cg)) {
		t.Errorf("udp.port.discovery: %v, want %v", got, withService(wantUDP, cg))
	}
	if pr := exportIn(t, ns, viaProc, "udp.port.discovery"); pr != strings.ReplaceAll(udp, `"{#SERVICE}":`+strconv.Quote(cg), `"{#SERVICE}":""`) {
		t.Errorf("udp over /proc: %s, netlink %s", pr, udp)
	}
	if ss := ssPorts(t, ns, "-uln"); !reflect.DeepEqual(ss, []string{"161", "5353"}) {
		t.Errorf("ss -uln shows ports %v", ss)
	}
}

// TestIntegrationPortDiscoveryIPv6Disabled runs discovery in a namespace
// with IPv6 disabled.
func TestIntegrationPortDiscoveryIPv6Disabled(t *testing.T) {
	ns := testnet.New(t)
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.lo.disable_ipv6"} {
		if err := ns.Sysctl(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	l := newNSListeners(t, ns)
	l.open(false, "127.0.0.1:7000", "0.0.0.0:7001")
	l.open(true, "127.0.0.1:7002")
	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	e, err := newExporter(cfg, NopLogger{}, sockets.NewNetlink())
	if err != nil {
		t.Fatal(err)
	}
	rows := decodeLLD(t, exportIn(t, ns, e, "tcp.port.discovery"))
	if !reflect.DeepEqual(rowPorts(rows), []string{"7000", "7001"}) || rows[0]["{#LOOPBACK}"] != "1" || rows[1]["{#LOOPBACK}"] != "0" {
		t.Errorf("tcp.port.discovery without IPv6: %v", rows)
	}
	if rows := decodeLLD(t, exportIn(t, ns, e, "udp.port.discovery")); !reflect.DeepEqual(rowPorts(rows), []string{"7002"}) {
		t.Errorf("udp.port.discovery without IPv6: %v", rows)
	}
	var get string
	if err := ns.Do(func() error {
		var err error
		get, err = e.Export(context.Background(), "tcp.port.get", []string{"7001"})
		return err
	}); err != nil || !strings.HasPrefix(get, `{"port":7001,"listening":1,"listeners":1,"accept_queue":0,"backlog":16,`) {
		t.Errorf("tcp.port.get[7001] without IPv6: %s, %v", get, err)
	}
}

// BenchmarkPortDiscoveryScale shows that the cost of tcp.port.discovery
// follows the number of listeners, not of all sockets: 20 listening ports,
// then 10k and 100k non-listening sockets (TIME_WAIT + LAST_ACK pairs held
// by nftables, no fd) in a private namespace, netlink source: the listener
// dump alone (listener-walk), the whole key with process names (whose cost
// follows the open files of the host's processes instead), and
// tcp.status.get (a full-table read) for contrast. Run:
// go test -run '^$' -bench PortDiscoveryScale -benchtime=20x ./internal/metrics/
// (root; about 10 s to build the sockets).
func BenchmarkPortDiscoveryScale(b *testing.B) {
	ns := testnet.New(b)
	l := newNSListeners(b, ns)
	for i := range 20 {
		l.open(false, fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	e, err := newExporter(cfg, NopLogger{}, sockets.NewNetlink())
	if err != nil {
		b.Fatal(err)
	}
	// Also time a full-table read at each size, for comparison.
	bench := func(b *testing.B, key string, params []string) {
		err := ns.Do(func() error {
			b.ResetTimer()
			for range b.N {
				if _, err := e.Export(context.Background(), key, params); err != nil {
					return err
				}
			}
			b.StopTimer()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	held := 0
	for i, target := range []int{0, 10_000, 100_000} {
		// Each connection leaves a TIME_WAIT server side and a LAST_ACK
		// client: two sockets. One port per 25k pairs keeps the client
		// ports of a server port distinct.
		for p := 0; held < target; p++ {
			n := min(25_000, (target-held)/2)
			holdLastAck(b, ns, uint16(9100+10*i+p), n)
			held += 2 * n
		}
		b.Run(fmt.Sprintf("sockets=%d/listener-walk", held), func(b *testing.B) {
			err := ns.Do(func() error {
				b.ResetTimer()
				for range b.N {
					n := 0
					if err := e.src.Walk(context.Background(), portQuery(sockets.TCP), func(*sockets.Socket) { n++ }); err != nil || n != 20 {
						return fmt.Errorf("listener walk: %d listeners, %v", n, err)
					}
				}
				b.StopTimer()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
		b.Run(fmt.Sprintf("sockets=%d/tcp.port.discovery", held), func(b *testing.B) { bench(b, "tcp.port.discovery", nil) })
		b.Run(fmt.Sprintf("sockets=%d/tcp.status.get", held), func(b *testing.B) { bench(b, "tcp.status.get", nil) })
	}
}

// holdLastAck makes n connections to 127.0.0.1:port that the server closes
// first while nftables drops the server's final ACK: n TIME_WAIT server
// sides and n LAST_ACK clients, held as long as the namespace (its
// tcp_rto_max_ms keeps the clients' FIN retransmissions, which restart the
// TIME_WAIT timers, under 60 s apart). No fd stays open. Go's net package
// does the I/O, so signals cannot interrupt a connect.
func holdLastAck(b *testing.B, ns *testnet.NS, port uint16, n int) {
	b.Helper()
	if err := ns.Drop(fmt.Sprintf("tcp sport %d tcp flags & (fin | syn | rst | ack) == ack", port)); err != nil {
		b.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		for done := 0; done < n; {
			k := min(1000, n-done)
			clients := make([]net.Conn, 0, k)
			for range k {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return err
				}
				clients = append(clients, c)
			}
			for range k {
				s, err := ln.Accept()
				if err != nil {
					return err
				}
				s.Close()
			}
			for _, c := range clients {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err != io.EOF {
					return fmt.Errorf("waiting for the server's FIN: %v", err)
				}
				c.Close()
			}
			done += k
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// The listener is closed: wait until ss shows the pairs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := ns.SSCounts("-tan", "sport", "=", ":"+strconv.Itoa(int(port)))
		if err != nil {
			b.Fatal(err)
		}
		if c[sockets.TimeWait] == uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("port %d: %d TIME_WAIT, want %d", port, c[sockets.TimeWait], n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyProcFixture copies the ports fixture /proc tree (comm files and fd
// links) to a temporary directory and gives every process a stat file with
// start time 1000+pid, so that its owners can be cached.
func copyProcFixture(t *testing.T) string {
	t.Helper()
	src := filepath.Join(fixtureRoot("ports"), "proc")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if filepath.Base(path) == "comm" {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
				writeStat(t, dst, pid, strings.TrimSpace(string(b)), uint64(1000+pid))
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeStat writes <root>/<pid>/stat with the given name and start time
// (field 22).
func writeStat(t *testing.T, root string, pid int, comm string, start uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 1046 0 0 0 3 1 0 0 20 0 1 0 %d 8388608 1200 18446744073709551615\n",
		pid, comm, pid, pid, start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPortDiscoveryRemembersOwners: a second discovery names the ports from
// the owners found by the first one, without reading any descriptor (the fd
// directories are gone by then); an owner restarted under the same pid (new
// start time) is looked for again, and not found, loses its name; a
// listener that vanishes and comes back is looked for again.
func TestPortDiscoveryRemembersOwners(t *testing.T) {
	root := copyProcFixture(t)
	src := portTables()
	e := portExporter(t, src, root)
	discover := func() []lldRow {
		t.Helper()
		v, err := e.Export(context.Background(), "tcp.port.discovery", nil)
		if err != nil {
			t.Fatal(err)
		}
		return decodeLLD(t, v)
	}
	want := []lldRow{
		port("22", "0.0.0.0,::", "4,6", "sshd", "0"),
		port("80", "0.0.0.0", "4", "nginx", "0"),
		port("5432", "127.0.0.1,::1", "4,6", "postgres", "1"),
		port("6379", "::ffff:127.0.0.1", "6", "redis-server", "1"),
		port("8080", "0.0.0.0,127.0.0.1", "4", "haproxy,java", "0"),
		port("9100", "10.0.0.1", "4", "", "0"),
	}
	if got := discover(); !reflect.DeepEqual(want, got) {
		t.Fatalf("first discovery\nwant %v\n got %v", want, got)
	}
	dirs, err := filepath.Glob(filepath.Join(root, "*", "fd"))
	if err != nil || len(dirs) == 0 {
		t.Fatal(dirs, err)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	if got := discover(); !reflect.DeepEqual(want, got) {
		t.Errorf("second discovery (no fd left to read)\nwant %v\n got %v", want, got)
	}
	// postgres (pid 200) restarted: its socket is looked for, in vain.
	writeStat(t, root, 200, "postgres", 5000)
	want[2] = port("5432", "127.0.0.1,::1", "4,6", "", "1")
	if got := discover(); !reflect.DeepEqual(want, got) {
		t.Errorf("after postgres restarted\nwant %v\n got %v", want, got)
	}
	// The UDP discovery has its own cache: it scans (and finds nothing).
	v, err := e.Export(context.Background(), "udp.port.discovery", nil)
	if err != nil || strings.Contains(v, "chronyd") {
		t.Errorf("udp.port.discovery without fd directories: %s, %v", v, err)
	}
	// Port 80's listener goes away and comes back: it is looked for again.
	saved := slices.Clone(src.tcp.socks)
	src.tcp.socks = slices.DeleteFunc(src.tcp.socks, func(s sockets.Socket) bool { return s.LocalPort == 80 })
	discover()
	src.tcp.socks = saved
	want[1] = port("80", "0.0.0.0", "4", "", "0")
	if got := discover(); !reflect.DeepEqual(want, got) {
		t.Errorf("after port 80 came back\nwant %v\n got %v", want, got)
	}
}

// BenchmarkPortDiscoveryNames measures tcp.port.discovery for one listener
// of this process in a private namespace while the process holds 10000
// extra descriptors: the first call of an exporter (the first pass over
// every process on the host, stopped there) and later calls (owners from
// the cache). Run as root:
// go test -run '^$' -bench PortDiscoveryNames ./internal/metrics/
func BenchmarkPortDiscoveryNames(b *testing.B) {
	ns := testnet.New(b)
	l := newNSListeners(b, ns)
	l.open(false, "127.0.0.1:9000")
	fds := make([]int, 0, 10000)
	b.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	for range cap(fds) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Skipf("holding 10000 descriptors: %v", err)
		}
		fds = append(fds, fd)
	}
	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	newE := func() *Exporter {
		e, err := newExporter(cfg, NopLogger{}, sockets.NewNetlink())
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		b.Fatal(err)
	}
	want := `"{#PROCESS}":"` + strings.TrimSpace(string(self)) + `"`
	run := func(b *testing.B, fresh bool) {
		e := newE()
		err := ns.Do(func() error {
			if _, err := e.Export(context.Background(), "tcp.port.discovery", nil); err != nil {
				return err
			}
			b.ResetTimer()
			for range b.N {
				if fresh {
					b.StopTimer()
					e = newE()
					b.StartTimer()
				}
				v, err := e.Export(context.Background(), "tcp.port.discovery", nil)
				if err != nil {
					return err
				}
				if !strings.Contains(v, want) {
					return fmt.Errorf("discovery without %s: %s", want, v)
				}
			}
			b.StopTimer()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("extra-fds=10000/first-call", func(b *testing.B) { run(b, true) })
	b.Run("extra-fds=10000/later-calls", func(b *testing.B) { run(b, false) })
}
