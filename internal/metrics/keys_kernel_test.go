package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// kernExporter builds an exporter reading kernel files under procRoot.
func kernExporter(t testing.TB, procRoot string) *Exporter {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ProcRoot = procRoot
	e, err := newExporter(cfg, NopLogger{}, &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func kernFixture(scenario string) string {
	return filepath.Join("..", "..", "testdata", "kernel", scenario, "proc")
}

// kernGet answers tcp.kernel.get and decodes it, numbers kept as text.
func kernGet(t *testing.T, e *Exporter) map[string]map[string]string {
	t.Helper()
	v, err := e.Export(context.Background(), "tcp.kernel.get", nil)
	if err != nil {
		t.Fatalf("tcp.kernel.get: %v", err)
	}
	return kernDecode(t, v)
}

func kernDecode(t *testing.T, v string) map[string]map[string]string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(v))
	d.UseNumber()
	var raw map[string]map[string]json.Number
	if err := d.Decode(&raw); err != nil {
		t.Fatalf("tcp.kernel.get is not a JSON object of objects: %v\n%s", err, v)
	}
	out := map[string]map[string]string{}
	for sec, m := range raw {
		out[sec] = map[string]string{}
		for k, n := range m {
			out[sec][k] = n.String()
		}
	}
	return out
}

// kernFileCounters reads one section of a snmp/netstat file the naive way:
// names on one line, values on the next.
func kernFileCounters(t *testing.T, path, section string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names := strings.Fields(lines[i])
		if len(names) == 0 || names[0] != section+":" {
			continue
		}
		values := strings.Fields(lines[i+1])
		out := map[string]string{}
		for j := 1; j < len(names) && j < len(values); j++ {
			out[names[j]] = values[j]
		}
		return out
	}
	t.Fatalf("%s: no %s section", path, section)
	return nil
}

// kernFileSockstat reads sockstat{,6} the naive way into the key's names.
func kernFileSockstat(t *testing.T, netDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"sockstat", "sockstat6"} {
		b, err := os.ReadFile(filepath.Join(netDir, f))
		if os.IsNotExist(err) && f == "sockstat6" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			prefix := map[string]string{"sockets:": "sockets_", "TCP:": "tcp_", "TCP6:": "tcp6_"}[fs[0]]
			for i := 1; prefix != "" && i+1 < len(fs); i += 2 {
				if prefix == "tcp6_" && fs[i] != "inuse" {
					continue
				}
				out[prefix+fs[i]] = fs[i+1]
			}
		}
	}
	return out
}

func TestKernelGetFixtures(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		tcp6     bool
		nTcpExt  int
	}{{"basic", true, 135}, {"ipv6-off", false, 100}} {
		t.Run(tc.scenario, func(t *testing.T) {
			root := kernFixture(tc.scenario)
			got := kernGet(t, kernExporter(t, root))
			if len(got) != 3 {
				t.Errorf("sections %v, want sockstat, Tcp, TcpExt", reflect.ValueOf(got).MapKeys())
			}
			net := filepath.Join(root, "net")
			want := map[string]map[string]string{
				"sockstat": kernFileSockstat(t, net),
				"Tcp":      kernFileCounters(t, filepath.Join(net, "snmp"), "Tcp"),
				"TcpExt":   kernFileCounters(t, filepath.Join(net, "netstat"), "TcpExt"),
			}
			for sec, w := range want {
				if !reflect.DeepEqual(got[sec], w) {
					t.Errorf("%s: (-want +got)\n-%v\n+%v", sec, w, got[sec])
				}
			}
			if _, ok := got["sockstat"]["tcp6_inuse"]; ok != tc.tcp6 {
				t.Errorf("tcp6_inuse present = %v, want %v", ok, tc.tcp6)
			}
			if n := len(got["TcpExt"]); n != tc.nTcpExt {
				t.Errorf("TcpExt has %d counters, want %d", n, tc.nTcpExt)
			}
			if got["Tcp"]["MaxConn"] != "-1" {
				t.Errorf("Tcp.MaxConn = %q, want -1", got["Tcp"]["MaxConn"])
			}
		})
	}
}

// TestKernelGetOutputShape pins the layout of the JSON text itself: section
// order and the kernel's counter order.
func TestKernelGetOutputShape(t *testing.T) {
	v, err := kernExporter(t, kernFixture("ipv6-off")).Export(context.Background(), "tcp.kernel.get", []string{""})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sockstat":{"sockets_used":931,"tcp_inuse":12,"tcp_orphan":3,"tcp_tw":110,"tcp_alloc":40,"tcp_mem":7},` +
		`"Tcp":{"RtoAlgorithm":1,"RtoMin":200,"RtoMax":120000,"MaxConn":-1,"ActiveOpens":`
	if !strings.HasPrefix(v, want) {
		t.Errorf("output starts\n%s\nwant\n%s", v[:min(len(v), len(want)+20)], want)
	}
	if !strings.Contains(v, `},"TcpExt":{"SyncookiesSent":`) || !strings.HasSuffix(v, "}}") {
		t.Errorf("TcpExt not last or not closed: %s", v)
	}
}

func TestKernelKeysErrors(t *testing.T) {
	cases := []struct {
		name, root, key string
		params          []string
		want            string
	}{
		{"-too many parameters", kernFixture("basic"), "tcp.kernel.get", []string{"x"}, "Too many parameters."},
		{"-limits too many parameters", kernFixture("basic"), "tcp.limits.get", []string{"a", "b"}, "Too many parameters."},
		{"-snmp columns", kernFixture("broken-snmp-columns"), "tcp.kernel.get", nil,
			"Cannot obtain kernel TCP counters. Parse ../../testdata/kernel/broken-snmp-columns/proc/net/snmp: malformed kernel file: line 8: section Tcp has 15 names but 14 values."},
		{"-snmp value", kernFixture("broken-snmp-value"), "tcp.kernel.get", nil,
			`Cannot obtain kernel TCP counters. Parse ../../testdata/kernel/broken-snmp-value/proc/net/snmp: malformed kernel file: line 8: section Tcp: value "2x0" of RtoMin is not an integer.`},
		{"-netstat mismatch", kernFixture("broken-netstat-mismatch"), "tcp.kernel.get", nil,
			"Cannot obtain kernel TCP counters. Parse ../../testdata/kernel/broken-netstat-mismatch/proc/net/netstat: malformed kernel file: line 2: values line of section IpExt follows the names of section TcpExt (line 1)."},
		{"-sockstat", kernFixture("broken-sockstat"), "tcp.kernel.get", nil, `Cannot obtain kernel TCP counters. Malformed kernel file: ../../testdata/kernel/broken-sockstat/proc/net/sockstat: sockstat key/value pairs from "TCP: inuse 1 orphan 0 tw": Odd number of fields in key/value pairs ["inuse" "1" "orphan" "0" "tw"].`},
		{"-sysctl", kernFixture("broken-sysctl"), "tcp.limits.get", nil,
			"Cannot obtain TCP sysctls. Malformed kernel file: ../../testdata/kernel/broken-sysctl/proc/sys/net/ipv4/tcp_mem: expected 3 values, got \"287898\\t383866\"."},
		{"-no such root", "/nonexistent-tcpstatus", "tcp.kernel.get", nil, "Cannot obtain kernel TCP counters. Open proc root /nonexistent-tcpstatus:"},
		{"-no sysctls", "/nonexistent-tcpstatus", "tcp.limits.get", nil, "Cannot obtain TCP sysctls. No sysctls under /nonexistent-tcpstatus: stat /nonexistent-tcpstatus/sys/net: no such file or directory."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := kernExporter(t, tc.root).Export(context.Background(), tc.key, tc.params)
			if err == nil {
				t.Fatalf("no error, value %s", v)
			}
			if _, ok := err.(*ItemError); !ok {
				t.Errorf("error %T is not an ItemError", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.want) || !strings.HasSuffix(msg, ".") {
				t.Errorf("error\n%s\nwant prefix\n%s", msg, tc.want)
			}
		})
	}
}

// kernLimitsFromFiles reads the limit files the naive way.
func kernLimitsFromFiles(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, s := range kernel.LimitSysctls() {
		b, err := os.ReadFile(filepath.Join(root, s.Path))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range strings.Fields(string(b)) {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			out[s.Names[i]] = v
		}
	}
	return out
}

func kernLimits(t *testing.T, e *Exporter) map[string]int64 {
	t.Helper()
	v, err := e.Export(context.Background(), "tcp.limits.get", nil)
	if err != nil {
		t.Fatalf("tcp.limits.get: %v", err)
	}
	var got map[string]int64
	if err := json.Unmarshal([]byte(v), &got); err != nil {
		t.Fatalf("tcp.limits.get is not a JSON object of integers: %v\n%s", err, v)
	}
	return got
}

func TestLimitsGetFixtures(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		absent   []string
	}{{"basic", nil}, {"ipv6-off", []string{"tcp_tw_reuse", "tcp_max_orphans"}}} {
		t.Run(tc.scenario, func(t *testing.T) {
			root := kernFixture(tc.scenario)
			got := kernLimits(t, kernExporter(t, root))
			if want := kernLimitsFromFiles(t, root); !reflect.DeepEqual(got, want) {
				t.Errorf("(-want +got)\n-%v\n+%v", want, got)
			}
			if n := 15 - len(tc.absent); len(got) != n {
				t.Errorf("%d limits, want %d", len(got), n)
			}
			for _, a := range tc.absent {
				if _, ok := got[a]; ok {
					t.Errorf("%s present, its file is missing", a)
				}
			}
		})
	}
}

// kernBetween checks a key's value against the file read just before and
// after: equal when the file did not move, else between them for counters;
// a gauge that moved is not compared.
func kernBetween(t *testing.T, what string, before, got, after map[string]string, gauge map[string]bool) {
	t.Helper()
	if len(got) != len(before) {
		t.Errorf("%s: key has %d values, file %d", what, len(got), len(before))
	}
	for name, b := range before {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s.%s missing", what, name)
			continue
		}
		if b == after[name] {
			if g != b {
				t.Errorf("%s.%s = %s, file says %s", what, name, g, b)
			}
			continue
		}
		if gauge[name] {
			// A gauge that moved may have gone anywhere in between.
			t.Logf("%s.%s moved from %s to %s; not compared", what, name, b, after[name])
			continue
		}
		lo, _ := strconv.ParseInt(b, 10, 64)
		hi, _ := strconv.ParseInt(after[name], 10, 64)
		v, _ := strconv.ParseInt(g, 10, 64)
		if v < lo || v > hi {
			t.Errorf("%s.%s = %d, file said %d before and %d after", what, name, v, lo, hi)
		}
	}
}

var kernGauges = map[string]bool{"RtoAlgorithm": true, "RtoMin": true, "RtoMax": true, "MaxConn": true, "CurrEstab": true}

// TestIntegrationKernelGetMatchesProc compares tcp.kernel.get on this
// machine with /proc/net read just before and after.
func TestIntegrationKernelGetMatchesProc(t *testing.T) {
	if _, err := os.Stat("/proc/net/snmp"); err != nil {
		t.Skip("needs Linux /proc")
	}
	e := kernExporter(t, DefaultProcRoot)
	// Retry until the gauges (CurrEstab, sockstat) hold still around one
	// read, so they are compared too; counters are checked on every try.
	for try := 0; try < 50; try++ {
		bTcp := kernFileCounters(t, "/proc/net/snmp", "Tcp")
		bExt := kernFileCounters(t, "/proc/net/netstat", "TcpExt")
		bSock := kernFileSockstat(t, "/proc/net")
		got := kernGet(t, e)
		aTcp := kernFileCounters(t, "/proc/net/snmp", "Tcp")
		aExt := kernFileCounters(t, "/proc/net/netstat", "TcpExt")
		aSock := kernFileSockstat(t, "/proc/net")
		stable := reflect.DeepEqual(bSock, aSock)
		for g := range kernGauges {
			stable = stable && bTcp[g] == aTcp[g]
		}
		if !stable && try < 49 {
			kernBetween(t, "TcpExt", bExt, got["TcpExt"], aExt, nil)
			continue
		}
		allGauges := map[string]bool{}
		for k := range bSock {
			allGauges[k] = true
		}
		kernBetween(t, "Tcp", bTcp, got["Tcp"], aTcp, kernGauges)
		kernBetween(t, "TcpExt", bExt, got["TcpExt"], aExt, nil)
		kernBetween(t, "sockstat", bSock, got["sockstat"], aSock, allGauges)
		return
	}
}

// TestIntegrationLimitsGetMatchesSysctl compares tcp.limits.get with
// `sysctl -n` on this machine.
func TestIntegrationLimitsGetMatchesSysctl(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net/ipv4"); err != nil {
		t.Skip("needs Linux /proc")
	}
	if _, err := exec.LookPath("sysctl"); err != nil {
		testnet.Require(t, "sysctl")
	}
	got := kernLimits(t, kernExporter(t, DefaultProcRoot))
	want := kernSysctlCommand(t, func(key string) ([]byte, error) { return exec.Command("sysctl", "-n", key).Output() })
	// The host's conntrack entries may come and go between the two reads.
	if _, ok := want["nf_conntrack_count"]; ok {
		if _, ok := got["nf_conntrack_count"]; ok {
			want["nf_conntrack_count"] = got["nf_conntrack_count"]
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("(-sysctl +key)\n-%v\n+%v", want, got)
	}
	if len(got) < 12 {
		t.Errorf("only %d limits: %v", len(got), got)
	}
}

// kernSysctlCommand asks sysctl(8) (through run) for every limit.
func kernSysctlCommand(t *testing.T, run func(key string) ([]byte, error)) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	for _, s := range kernel.LimitSysctls() {
		out, err := run(s.Key())
		if err != nil {
			continue // absent on this kernel
		}
		for i, f := range strings.Fields(string(out)) {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil || i >= len(s.Names) {
				t.Fatalf("sysctl -n %s = %q", s.Key(), out)
			}
			want[s.Names[i]] = v
		}
	}
	return want
}

// TestKernelKeysInNetns runs the keys against a fresh network namespace:
// its counters start from zero, a listener with backlog 1 that never
// accepts makes ListenOverflows rise, and the sysctls are the namespace's.
func TestKernelKeysInNetns(t *testing.T) {
	ns := testnet.New(t)
	// /proc/<pid>/task/<tid> of a thread inside the namespace: its net
	// directory is the namespace's, readable from this goroutine.
	e := kernExporter(t, filepath.Dir(ns.NetDir()))
	netDir := ns.NetDir()

	before := kernGet(t, e)
	if before["Tcp"]["ActiveOpens"] != "0" || before["TcpExt"]["ListenOverflows"] != "0" {
		t.Fatalf("fresh namespace: ActiveOpens %s, ListenOverflows %s; want 0 (reading another namespace?)",
			before["Tcp"]["ActiveOpens"], before["TcpExt"]["ListenOverflows"])
	}

	const clients = 8
	var port int
	if err := ns.Do(func() error {
		var err error
		port, err = kernOverflowListener(t, clients)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Two connections fill the accept queue of backlog 1; the other SYNs
	// are dropped, each counted in ListenOverflows (and retransmitted).
	deadline := time.Now().Add(5 * time.Second)
	var got map[string]map[string]string
	for {
		got = kernGet(t, e)
		n, _ := strconv.Atoi(got["TcpExt"]["ListenOverflows"])
		if n >= clients-3 || time.Now().After(deadline) {
			t.Logf("port %d: ListenOverflows %d, ListenDrops %s, ActiveOpens %s", port, n, got["TcpExt"]["ListenDrops"], got["Tcp"]["ActiveOpens"])
			if n < clients-3 {
				t.Fatalf("ListenOverflows = %d after %d connects to a backlog-1 listener, want >= %d", n, clients, clients-3)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a, _ := strconv.Atoi(got["Tcp"]["ActiveOpens"]); a < clients {
		t.Errorf("ActiveOpens = %d, want >= %d", a, clients)
	}
	if d, _ := strconv.Atoi(got["TcpExt"]["ListenDrops"]); d < 1 {
		t.Errorf("ListenDrops = %d, want >= 1", d)
	}
	// The namespace's files, read around the key, agree with it.
	b := kernFileCounters(t, filepath.Join(netDir, "netstat"), "TcpExt")
	g := kernGet(t, e)
	a := kernFileCounters(t, filepath.Join(netDir, "netstat"), "TcpExt")
	kernBetween(t, "TcpExt", b, g["TcpExt"], a, nil)
	if s := kernFileSockstat(t, netDir); g["sockstat"]["tcp_inuse"] != s["tcp_inuse"] {
		t.Errorf("sockstat.tcp_inuse = %s, namespace file says %s", g["sockstat"]["tcp_inuse"], s["tcp_inuse"])
	}

	// tcp.limits.get on a thread inside the namespace shows its sysctls
	// (testnet sets tcp_fin_timeout 3600 and somaxconn 65535 there).
	var limits map[string]int64
	if err := ns.Do(func() error {
		limits = kernLimits(t, kernExporter(t, DefaultProcRoot))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := kernSysctlCommand(t, func(key string) ([]byte, error) { return ns.Run("sysctl", "-n", key) })
	if !reflect.DeepEqual(limits, want) {
		t.Errorf("limits in namespace (-ip netns exec sysctl +key)\n-%v\n+%v", want, limits)
	}
	if limits["tcp_fin_timeout"] != 3600 || limits["somaxconn"] != 65535 {
		t.Errorf("tcp_fin_timeout %d, somaxconn %d: not the namespace's values", limits["tcp_fin_timeout"], limits["somaxconn"])
	}
}

// kernOverflowListener, on a thread in the namespace, listens on 127.0.0.1
// with backlog 1, never accepts, and starts n non-blocking connects to it.
// Every socket is closed when the test ends.
func kernOverflowListener(t *testing.T, n int) (int, error) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	t.Cleanup(func() { unix.Close(lfd) })
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(lfd, lo); err != nil {
		return 0, err
	}
	if err := unix.Listen(lfd, 1); err != nil {
		return 0, err
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		return 0, err
	}
	lo.Port = sa.(*unix.SockaddrInet4).Port
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Connect(fd, lo); err != nil && err != unix.EINPROGRESS {
			return 0, err
		}
	}
	return lo.Port, nil
}

// TestAgentKernelKeys asks real agents 2 (6.0 and 7.0, plugin built from
// this tree) for tcp.kernel.get, tcp.limits.get, tcp.remote.top and
// tcp.ephemeral.get through
// zabbix_get, and checks the answers against this machine: counters between
// the file read before and after, sysctls equal to `sysctl -n`, and the
// zabbix_get connection itself among the remote addresses of the agent's
// port.
func TestAgentKernelKeys(t *testing.T) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			a := agenttest.Start(t, v, agenttest.WithConf("Plugins.TCPStatus.CacheTTL=0"))

			bTcp := kernFileCounters(t, "/proc/net/snmp", "Tcp")
			bExt := kernFileCounters(t, "/proc/net/netstat", "TcpExt")
			raw, err := a.Get("tcp.kernel.get")
			if err != nil {
				t.Fatalf("tcp.kernel.get: %v", err)
			}
			aTcp := kernFileCounters(t, "/proc/net/snmp", "Tcp")
			aExt := kernFileCounters(t, "/proc/net/netstat", "TcpExt")
			t.Logf("tcp.kernel.get: %.400s...", raw)
			got := kernDecode(t, raw)
			// The request's own connection is open (CurrEstab +2) only
			// while the key is read: gauges are checked for presence only.
			for g := range kernGauges {
				if _, ok := got["Tcp"][g]; !ok {
					t.Errorf("Tcp.%s missing", g)
				}
				delete(bTcp, g)
				delete(aTcp, g)
				delete(got["Tcp"], g)
			}
			kernBetween(t, "Tcp", bTcp, got["Tcp"], aTcp, nil)
			kernBetween(t, "TcpExt", bExt, got["TcpExt"], aExt, nil)
			for _, f := range []string{"sockets_used", "tcp_inuse", "tcp_orphan", "tcp_tw", "tcp_alloc", "tcp_mem"} {
				if _, ok := got["sockstat"][f]; !ok {
					t.Errorf("sockstat.%s missing: %s", f, raw)
				}
			}

			raw, err = a.Get("tcp.limits.get")
			if err != nil {
				t.Fatalf("tcp.limits.get: %v", err)
			}
			t.Logf("tcp.limits.get: %s", raw)
			var limits map[string]int64
			if err := json.Unmarshal([]byte(raw), &limits); err != nil {
				t.Fatalf("tcp.limits.get: %v: %s", err, raw)
			}
			if _, err := exec.LookPath("sysctl"); err == nil {
				want := kernSysctlCommand(t, func(key string) ([]byte, error) { return exec.Command("sysctl", "-n", key).Output() })
				if !reflect.DeepEqual(limits, want) {
					t.Errorf("tcp.limits.get (-sysctl +agent)\n-%v\n+%v", want, limits)
				}
			}

			key := fmt.Sprintf("tcp.remote.top[5,established,%d]", a.Port())
			raw, err = a.Get(key)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			t.Logf("%s: %s", key, raw)
			var top []remoteEntry
			if err := json.Unmarshal([]byte(raw), &top); err != nil {
				t.Fatalf("%s: %v: %s", key, err, raw)
			}
			if len(top) == 0 || top[0].Address != "127.0.0.1" || top[0].Count < 1 {
				t.Errorf("%s = %s, want zabbix_get's own connection from 127.0.0.1 first", key, raw)
			}

			// zabbix_get's own socket, from an ephemeral port to the
			// agent's, is open while the agent reads the table.
			raw, err = a.Get("tcp.ephemeral.get[1000]")
			if err != nil {
				t.Fatalf("tcp.ephemeral.get: %v", err)
			}
			t.Logf("tcp.ephemeral.get[1000]: %.600s", raw)
			var eph ephemeralAnswer
			if err := json.Unmarshal([]byte(raw), &eph); err != nil {
				t.Fatalf("tcp.ephemeral.get: %v: %s", err, raw)
			}
			if int64(eph.Min) != limits["ip_local_port_range_min"] || int64(eph.Max) != limits["ip_local_port_range_max"] {
				t.Errorf("tcp.ephemeral.get range %d-%d, tcp.limits.get %d-%d", eph.Min, eph.Max, limits["ip_local_port_range_min"], limits["ip_local_port_range_max"])
			}
			own := false
			for _, d := range eph.Top {
				own = own || (d.Local == "127.0.0.1" && d.Remote == "127.0.0.1" && d.Port == int(a.Port()) && d.Count >= 1)
			}
			if !own && eph.Exact == 1 {
				t.Errorf("tcp.ephemeral.get lists no 127.0.0.1 -> 127.0.0.1:%d (zabbix_get's connection): %s", a.Port(), raw)
			}

			_, err = a.Get("tcp.remote.top[0]")
			var ns *agenttest.NotSupported
			if !errors.As(err, &ns) || !strings.Contains(ns.Text, `Invalid first parameter: expected a number from 1 to 1000, got "0".`) {
				t.Errorf("tcp.remote.top[0]: %v, want ZBX_NOTSUPPORTED with the parameter error", err)
			}
			if err := a.Alive(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
