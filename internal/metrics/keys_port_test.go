package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
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
	return lldRow{"{#PORT}": p, "{#ADDRESS}": addr, "{#FAMILY}": fam, "{#PROCESS}": proc, "{#LOOPBACK}": loop}
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
	if !strings.HasPrefix(v, `[{"{#PORT}":"22","{#ADDRESS}":"0.0.0.0,::","{#FAMILY}":"4,6","{#PROCESS}":"sshd","{#LOOPBACK}":"0"},`) {
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
	}
	for _, scenario := range []string{"ports", "ipv6-off"} {
		t.Run(scenario, func(t *testing.T) { checkGolden(t, scenario, cases) })
	}
}
