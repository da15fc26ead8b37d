package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseCounters(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    Sections
		wantErr string // fragment of the error; "" for success
	}{
		{name: "+valid empty", in: "", want: nil},
		{
			name: "+valid two sections, kernel order kept",
			in:   "Tcp: RtoAlgorithm MaxConn CurrEstab\nTcp: 1 -1 7\nUdp: InDatagrams NoPorts\nUdp: 30 2\n",
			want: Sections{
				{Name: "Tcp", Counters: []Counter{{"RtoAlgorithm", "1"}, {"MaxConn", "-1"}, {"CurrEstab", "7"}}},
				{Name: "Udp", Counters: []Counter{{"InDatagrams", "30"}, {"NoPorts", "2"}}},
			},
		},
		{
			name: "+valid unsigned long above int64 kept exactly",
			in:   "TcpExt: A B\nTcpExt: 18446744073709551615 9223372036854775808\n",
			want: Sections{{Name: "TcpExt", Counters: []Counter{{"A", "18446744073709551615"}, {"B", "9223372036854775808"}}}},
		},
		{
			name: "+valid blank lines and tabs ignored",
			in:   "\nTcpExt:\tA  B\n\nTcpExt: 1\t2\n\n",
			want: Sections{{Name: "TcpExt", Counters: []Counter{{"A", "1"}, {"B", "2"}}}},
		},
		{name: "-fewer values than names", in: "Tcp: A B C\nTcp: 1 2\n", wantErr: "line 2: section Tcp has 3 names but 2 values"},
		{name: "-more values than names", in: "Tcp: A B\nTcp: 1 2 3\n", wantErr: "line 2: section Tcp has 2 names but 3 values"},
		{name: "-names without values at end", in: "Tcp: A\nTcp: 1\nTcpExt: X Y\n", wantErr: "line 3: section TcpExt has a names line but no values line"},
		{name: "-values of another section", in: "TcpExt: A B\nIpExt: C D\n", wantErr: "line 2: values line of section IpExt follows the names of section TcpExt (line 1)"},
		{name: "-value not an integer", in: "Tcp: A B\nTcp: 1 2x0\n", wantErr: `line 2: section Tcp: value "2x0" of B is not an integer`},
		{name: "-value beyond uint64", in: "Tcp: A\nTcp: 18446744073709551616\n", wantErr: "is not an integer"},
		{name: "-no prefix", in: "Tcp A B\n", wantErr: `line 1: no section prefix in "Tcp A B"`},
		{name: "-empty names line", in: "Tcp:\nTcp:\n", wantErr: "line 1: section Tcp has no names"},
		{name: "-section twice", in: "Tcp: A\nTcp: 1\nTcp: A\nTcp: 2\n", wantErr: "line 3: section Tcp appears twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCounters(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("(-want +got)\n-%v\n+%v", tc.want, got)
			}
		})
	}
}

// fixtureNetFS opens testdata/kernel/<scenario>/proc as a NetFS.
func fixtureNetFS(t *testing.T, scenario string) NetFS {
	t.Helper()
	nfs, err := NewNetFS(fixtureRoot(scenario))
	if err != nil {
		t.Fatalf("NewNetFS(%s): %v", scenario, err)
	}
	return nfs
}

func fixtureRoot(scenario string) string {
	return filepath.Join("..", "..", "testdata", "kernel", scenario, "proc")
}

func ptr(v int) *int { return &v }

func TestSockstatFixtures(t *testing.T) {
	cases := []struct {
		scenario string
		want     Sockstat
	}{
		// basic: the real 6.18 capture "sockets: used 17 / TCP: inuse 1 orphan 0 tw 5 alloc 1 mem 0 / TCP6: inuse 0".
		{"basic", Sockstat{SocketsUsed: ptr(17), TCPInUse: ptr(1), TCPOrphan: ptr(0), TCPTW: ptr(5), TCPAlloc: ptr(1), TCPMem: ptr(0), TCP6InUse: ptr(0)}},
		{"ipv6-off", Sockstat{SocketsUsed: ptr(931), TCPInUse: ptr(12), TCPOrphan: ptr(3), TCPTW: ptr(110), TCPAlloc: ptr(40), TCPMem: ptr(7)}},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := fixtureNetFS(t, tc.scenario).Sockstat()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("(-want +got)\n-%s\n+%s", fmtSockstat(tc.want), fmtSockstat(got))
			}
		})
	}
}

func fmtSockstat(s Sockstat) string {
	var b strings.Builder
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		fmt.Fprintf(&b, "%s=", v.Type().Field(i).Name)
		if p := v.Field(i).Interface().(*int); p != nil {
			fmt.Fprintf(&b, "%d ", *p)
		} else {
			b.WriteString("nil ")
		}
	}
	return b.String()
}

// naiveCounters is an independent reading of a snmp/netstat file for
// comparisons: line pairs split on white space, section -> name -> value.
func naiveCounters(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	out := map[string]map[string]string{}
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		sec := map[string]string{}
		for j := 1; j < len(names) && j < len(values); j++ {
			sec[names[j]] = values[j]
		}
		out[strings.TrimSuffix(names[0], ":")] = sec
	}
	return out
}

func sectionMap(s Section) map[string]string {
	m := map[string]string{}
	for _, c := range s.Counters {
		m[c.Name] = c.Value
	}
	return m
}

func TestCountersFixtures(t *testing.T) {
	cases := []struct {
		scenario          string
		tcpLen, tcpExtLen int
	}{
		{"basic", 15, 135},
		{"ipv6-off", 14, 100},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			nfs := fixtureNetFS(t, tc.scenario)
			snmp, err := nfs.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			netstat, err := nfs.Netstat()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				ss      Sections
				file    string
				section string
				n       int
			}{{snmp, "snmp", "Tcp", tc.tcpLen}, {netstat, "netstat", "TcpExt", tc.tcpExtLen}} {
				sec, ok := c.ss.Section(c.section)
				if !ok {
					t.Fatalf("no %s section", c.section)
				}
				if len(sec.Counters) != c.n {
					t.Errorf("%s has %d counters, want %d", c.section, len(sec.Counters), c.n)
				}
				want := naiveCounters(t, filepath.Join(fixtureRoot(tc.scenario), "net", c.file))
				if got := sectionMap(sec); !reflect.DeepEqual(got, want[c.section]) {
					t.Errorf("%s: (-want +got)\n-%v\n+%v", c.section, want[c.section], got)
				}
				// Every section of the file is kept, in file order.
				if len(c.ss) != len(want) {
					t.Errorf("%s: %d sections, want %d", c.file, len(c.ss), len(want))
				}
			}
			tcp, _ := snmp.Section("Tcp")
			if v, _ := tcp.Get("MaxConn"); v != "-1" {
				t.Errorf("MaxConn = %q, want -1", v)
			}
			ext, _ := netstat.Section("TcpExt")
			for _, name := range []string{"SyncookiesSent", "ListenOverflows", "ListenDrops", "TCPAbortOnData"} {
				if _, ok := ext.Get(name); !ok {
					t.Errorf("TcpExt lacks %s", name)
				}
			}
		})
	}
}

func TestBrokenFixtures(t *testing.T) {
	cases := []struct {
		scenario string
		read     func(NetFS) error
		want     string
	}{
		{"broken-snmp-columns", func(n NetFS) error { _, err := n.SNMP(); return err }, "snmp: malformed kernel file: line 8: section Tcp has 15 names but 14 values"},
		{"broken-snmp-value", func(n NetFS) error { _, err := n.SNMP(); return err }, `section Tcp: value "2x0" of RtoMin is not an integer`},
		{"broken-netstat-mismatch", func(n NetFS) error { _, err := n.Netstat(); return err }, "line 2: values line of section IpExt follows the names of section TcpExt (line 1)"},
		{"broken-sockstat", func(n NetFS) error { _, err := n.Sockstat(); return err }, `broken-sockstat/proc/net/sockstat: sockstat key/value pairs from "TCP: inuse 1 orphan 0 tw": Odd number of fields in key/value pairs`},
		{"broken-sysctl", func(n NetFS) error { _, err := ReadLimits(fixtureRoot("broken-sysctl")); return err }, `tcp_mem: expected 3 values, got "287898`},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			err := tc.read(fixtureNetFS(t, tc.scenario))
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrMalformed containing %q", err, tc.want)
			}
		})
	}
}

func TestMissingFiles(t *testing.T) {
	if _, err := NewNetFS(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("NewNetFS of a missing root: no error")
	}
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	nfs, err := NewNetFS(empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nfs.SNMP(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SNMP on empty dir: %v, want fs.ErrNotExist", err)
	}
	if _, err := nfs.Netstat(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Netstat on empty dir: %v, want fs.ErrNotExist", err)
	}
	if _, err := nfs.Sockstat(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Sockstat on empty dir: %v, want fs.ErrNotExist", err)
	}
	// sockstat present without a TCP line.
	if err := os.WriteFile(filepath.Join(empty, "net", "sockstat"), []byte("sockets: used 3\nUDP: inuse 0 mem 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := nfs.Sockstat(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "has no TCP line") {
		t.Errorf("Sockstat without TCP line: %v", err)
	}
	if _, err := ReadLimits(empty); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no sysctls under") {
		t.Errorf("ReadLimits without sys/net: %v, want fs.ErrNotExist", err)
	}
}

// fixtureLimits reads the fixture's sysctl files the naive way.
func fixtureLimits(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, s := range LimitSysctls() {
		b, err := os.ReadFile(filepath.Join(root, s.Path))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range strings.Fields(string(b)) {
			var v int64
			if _, err := fmt.Sscan(f, &v); err != nil {
				t.Fatal(err)
			}
			out[s.Names[i]] = v
		}
	}
	return out
}

func TestReadLimitsFixtures(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		n        int
		missing  []string
	}{
		{"basic", 15, nil},
		{"ipv6-off", 13, []string{"tcp_tw_reuse", "tcp_max_orphans"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := ReadLimits(fixtureRoot(tc.scenario))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n {
				t.Errorf("%d limits, want %d: %v", len(got), tc.n, got)
			}
			m := map[string]int64{}
			var order []string
			for _, l := range got {
				m[l.Name] = l.Value
				order = append(order, l.Name)
			}
			if want := fixtureLimits(t, fixtureRoot(tc.scenario)); !reflect.DeepEqual(m, want) {
				t.Errorf("(-want +got)\n-%v\n+%v", want, m)
			}
			for _, name := range tc.missing {
				if _, ok := m[name]; ok {
					t.Errorf("%s present although its file is missing", name)
				}
			}
			// Table order: port range min before max, tcp_mem min/pressure/max.
			joined := strings.Join(order, ",")
			if !strings.Contains(joined, "ip_local_port_range_min,ip_local_port_range_max,tcp_mem_min,tcp_mem_pressure,tcp_mem_max,somaxconn") {
				t.Errorf("order %s", joined)
			}
		})
	}
}

func TestSysctlKey(t *testing.T) {
	for _, s := range LimitSysctls() {
		k := s.Key()
		if !strings.HasPrefix(k, "net.ipv4.") && !strings.HasPrefix(k, "net.core.") && !strings.HasPrefix(k, "net.netfilter.") || strings.Contains(k, "/") {
			t.Errorf("%s: key %q", s.Path, k)
		}
	}
}
