package kernel

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// liveNetFS opens the running kernel's /proc, skipping off Linux.
func liveNetFS(t *testing.T) NetFS {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	nfs, err := NewNetFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return nfs
}

// gauges are the snmp/sockstat values that may go down; every other counter
// only grows.
var gauges = map[string]bool{"RtoAlgorithm": true, "RtoMin": true, "RtoMax": true, "MaxConn": true, "CurrEstab": true}

// checkBetween compares what the reader returned (got) with two readings of
// the file taken just before and just after it. When both readings agree
// the value must be equal; otherwise a counter must lie between them, and a
// gauge that moved is not compared. It returns whether the file was stable;
// an unstable one is only checked on the final try.
func checkBetween(t *testing.T, what string, before, got, after map[string]string, gauge func(string) bool, final bool) bool {
	t.Helper()
	stable := true
	for name, b := range before {
		if after[name] != b {
			stable = false
		}
	}
	if !stable && !final {
		return false
	}
	if len(got) != len(before) {
		t.Errorf("%s: %d values, the file has %d", what, len(got), len(before))
	}
	for name, b := range before {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %s missing", what, name)
			continue
		}
		if stable {
			if g != b {
				t.Errorf("%s: %s = %s, file says %s", what, name, g, b)
			}
			continue
		}
		if gauge(name) && after[name] != b {
			// A gauge that moved may have gone anywhere in between.
			t.Logf("%s: %s moved from %s to %s; not compared", what, name, b, after[name])
			continue
		}
		lo, hi, v := mustInt(t, b), mustInt(t, after[name]), mustInt(t, g)
		if v < lo || v > hi {
			t.Errorf("%s: %s = %d, file said %d before and %d after", what, name, v, lo, hi)
		}
	}
	return stable
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("value %q: %v", s, err)
	}
	return v
}

// TestIntegrationCountersMatchProc compares SNMP and Netstat with the live
// files, read just before and after.
func TestIntegrationCountersMatchProc(t *testing.T) {
	nfs := liveNetFS(t)
	for _, c := range []struct {
		file, section string
		read          func() (Sections, error)
	}{{"snmp", "Tcp", nfs.SNMP}, {"netstat", "TcpExt", nfs.Netstat}} {
		path := filepath.Join("/proc/net", c.file)
		for try := 0; ; try++ {
			before := naiveCounters(t, path)[c.section]
			ss, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			after := naiveCounters(t, path)[c.section]
			sec, ok := ss.Section(c.section)
			if !ok {
				t.Fatalf("%s: no %s section", c.file, c.section)
			}
			if len(before) < 10 {
				t.Fatalf("%s: only %d %s counters in the file", c.file, len(before), c.section)
			}
			if checkBetween(t, c.section, before, sectionMap(sec), after, func(n string) bool { return gauges[n] }, try == 20) {
				break
			}
			if try == 20 {
				t.Logf("%s kept moving; compared by ordering", c.file)
				break
			}
		}
	}
}

// naiveSockstat reads sockstat and sockstat6 as "PROTO_key" -> value for the
// lines Sockstat reports.
func naiveSockstat(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"/proc/net/sockstat", "/proc/net/sockstat6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			p := strings.TrimSuffix(fs[0], ":")
			if p != "sockets" && p != "TCP" && p != "TCP6" {
				continue
			}
			for i := 1; i+1 < len(fs); i += 2 {
				if p == "TCP6" && fs[i] != "inuse" {
					continue
				}
				out[p+"_"+fs[i]] = fs[i+1]
			}
		}
	}
	return out
}

func sockstatMap(s Sockstat) map[string]string {
	out := map[string]string{}
	for k, p := range map[string]*int{"sockets_used": s.SocketsUsed, "TCP_inuse": s.TCPInUse, "TCP_orphan": s.TCPOrphan,
		"TCP_tw": s.TCPTW, "TCP_alloc": s.TCPAlloc, "TCP_mem": s.TCPMem, "TCP6_inuse": s.TCP6InUse} {
		if p != nil {
			out[k] = strconv.Itoa(*p)
		}
	}
	return out
}

// TestIntegrationSockstatMatchesProc compares Sockstat with the live files.
// Every sockstat value is a gauge.
func TestIntegrationSockstatMatchesProc(t *testing.T) {
	nfs := liveNetFS(t)
	for try := 0; ; try++ {
		before := naiveSockstat(t)
		s, err := nfs.Sockstat()
		if err != nil {
			t.Fatal(err)
		}
		after := naiveSockstat(t)
		if len(before) < 6 {
			t.Fatalf("only %v in sockstat", before)
		}
		if checkBetween(t, "sockstat", before, sockstatMap(s), after, func(string) bool { return true }, try == 50) || try == 50 {
			break
		}
	}
}

// TestIntegrationLimitsMatchSysctl compares ReadLimits("/proc") with
// `sysctl -n` for every sysctl of the table.
func TestIntegrationLimitsMatchSysctl(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	sysctl, err := exec.LookPath("sysctl")
	if err != nil {
		if os.Getenv("TCPSTATUS_REQUIRE_AGENT") == "1" {
			t.Fatal("sysctl (procps) not installed")
		}
		t.Skip("sysctl (procps) not installed")
	}
	got, err := ReadLimits("/proc")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, l := range got {
		m[l.Name] = l.Value
	}
	seen := 0
	for _, s := range LimitSysctls() {
		out, err := exec.Command(sysctl, "-n", s.Key()).Output()
		if err != nil {
			if _, ok := m[s.Names[0]]; ok {
				t.Errorf("sysctl -n %s failed (%v) but ReadLimits has %s", s.Key(), err, s.Names[0])
			}
			continue
		}
		fields := strings.Fields(string(out))
		if len(fields) != len(s.Names) {
			t.Fatalf("sysctl -n %s = %q, want %d fields", s.Key(), out, len(s.Names))
		}
		for i, f := range fields {
			seen++
			if s.Names[i] == "nf_conntrack_count" {
				// A gauge of live connections: it may move between the two
				// reads (TestIntegrationConntrackInNetns compares it where
				// it holds still).
				if _, ok := m[s.Names[i]]; !ok {
					t.Errorf("%s missing, sysctl -n %s says %s", s.Names[i], s.Key(), f)
				}
				continue
			}
			if g, ok := m[s.Names[i]]; !ok || strconv.FormatInt(g, 10) != f {
				t.Errorf("%s: ReadLimits %d (present %v), sysctl -n %s says %s", s.Names[i], g, ok, s.Key(), f)
			}
		}
	}
	if seen != len(got) || seen < 12 {
		t.Errorf("compared %d values, ReadLimits returned %d", seen, len(got))
	}
}

// TestIntegrationConntrackInNetns: in a private namespace whose nftables
// ruleset uses conntrack, held connections make entries; ReadLimits run in
// the namespace reports the namespace's nf_conntrack_count (what its file
// says: one entry per held connection, as nothing else runs there) and
// nf_conntrack_max. Without a ct rule a fresh namespace tracks nothing.
func TestIntegrationConntrackInNetns(t *testing.T) {
	ns := testnet.New(t)
	read := func() (map[string]int64, string) {
		var lim []Limit
		var file []byte
		err := ns.Do(func() error {
			var err error
			if lim, err = ReadLimits("/proc"); err != nil {
				return err
			}
			file, err = os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
			if os.IsNotExist(err) {
				return nil
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, l := range lim {
			m[l.Name] = l.Value
		}
		return m, strings.TrimSpace(string(file))
	}
	if err := ns.Nft("table inet ct_test { chain out { type filter hook output priority 0; ct state new,established accept; }; }"); err != nil {
		t.Fatalf("ct rule: %v", err)
	}
	if _, err := ns.Established("127.0.0.1", 7); err != nil {
		t.Fatal(err)
	}
	for try := 0; ; try++ {
		got, file := read()
		n, ok := got["nf_conntrack_count"]
		if !ok {
			t.Fatalf("nf_conntrack_count missing while a ct rule is loaded: %v", got)
		}
		if strconv.FormatInt(n, 10) == file && n == 7 {
			if got["nf_conntrack_max"] <= 0 {
				t.Errorf("nf_conntrack_max %d", got["nf_conntrack_max"])
			}
			break
		}
		if try == 20 {
			t.Fatalf("nf_conntrack_count %d, the namespace's file says %s (want the 7 held connections)", n, file)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
