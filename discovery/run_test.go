package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
)

func fixture(scenario, tree string) string {
	return filepath.Join("..", "testdata", "discovery", scenario, tree)
}

// runCmd runs the command and returns its exit status and outputs.
func runCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// keysFor lists at least one invocation of every key the plugin declares
// (so a new key without a case here fails the test).
var keyCases = map[string][]string{
	"tcp.status":         {"tcp.status", "tcp.status[timewait]", "tcp.status[estab,22]", "tcp.status[listen,,6]", "tcp.status[all,80,4]", "tcp.status[bogus]"},
	"tcp.status.get":     {"tcp.status.get", "tcp.status.get[80]", "tcp.status.get[,6]"},
	"tcp.sockets.get":    {"tcp.sockets.get", "tcp.sockets.get[]", "tcp.sockets.get[22]"},
	"tcp.cgroups.get":    {"tcp.cgroups.get", "tcp.cgroups.get[x]"},
	"tcp.port.discovery": {"tcp.port.discovery", "tcp.port.discovery[]"},
	"udp.port.discovery": {"udp.port.discovery"},
	"tcp.port.get":       {"tcp.port.get[22]", "tcp.port.get[80]", "tcp.port.get", "tcp.port.get[22,4]"},
	"tcp.remote.top":     {"tcp.remote.top", "tcp.remote.top[5]", "tcp.remote.top[3,estab,80]"},
	"tcp.ephemeral.get":  {"tcp.ephemeral.get", "tcp.ephemeral.get[3]", "tcp.ephemeral.get[0]"},
	"tcp.kernel.get":     {"tcp.kernel.get"},
	"tcp.limits.get":     {"tcp.limits.get"},
	"disk.discovery":     {"disk.discovery"},
	"disk.get":           {"disk.get[sda]", "disk.get[cciss/c0d0]", `disk.get["nvme0n1"]`, "disk.get[nope]", "disk.get"},
	"disk.get.all":       {"disk.get.all", "disk.get.all[sda]"},
}

// TestRunMatchesExporter checks that the command prints exactly what the
// exporter returns, for every key, over the fixture trees.
func TestRunMatchesExporter(t *testing.T) {
	for _, scenario := range []string{"ports", "disks"} {
		t.Run(scenario, func(t *testing.T) {
			proc, sys := fixture(scenario, "proc"), fixture(scenario, "sys")
			cfg := metrics.DefaultConfig()
			cfg.ProcRoot, _ = filepath.Abs(proc)
			cfg.SysRoot, _ = filepath.Abs(sys)
			cfg.Timeout = defaultTimeout
			e, err := metrics.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range e.Metrics() {
				if len(keyCases[m.Key]) == 0 {
					t.Errorf("no test case for key %s", m.Key)
				}
			}
			for _, cases := range keyCases {
				for _, key := range cases {
					name, params, err := parseKey(key)
					if err != nil {
						t.Fatalf("%s: %v", key, err)
					}
					want, werr := e.Export(context.Background(), name, params)
					wantCode, wantOut := exitOK, want+"\n"
					if werr != nil {
						wantCode, wantOut = exitUnsupported, "ZBX_NOTSUPPORTED: "+werr.Error()+"\n"
					}
					code, out, errOut := runCmd("--path.procfs", cfg.ProcRoot, "--path.sysfs="+cfg.SysRoot, key)
					if code != wantCode || out != wantOut || errOut != "" {
						t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", key, code, out, errOut, wantCode, wantOut)
					}
				}
			}
		})
	}
}

func TestRunFixtureValues(t *testing.T) {
	procfs, sysfs := "--path.procfs="+abs(t, fixture("ports", "proc")), "--path.sysfs="+abs(t, fixture("disks", "sys"))
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{procfs, "tcp.status[timewait,80]"}, 0, "2\n"},
		{[]string{procfs, "tcp.status[listen]"}, 0, "10\n"},
		// Flags may follow the key.
		{[]string{"tcp.status[estab,22]", procfs, "--source", "proc"}, 0, "2\n"},
		{[]string{procfs, "tcp.status[bogus]"}, 1, "ZBX_NOTSUPPORTED: Invalid first parameter: unknown state \"bogus\"; expected "},
		{[]string{procfs, "tcp.port.get[0]"}, 1, "ZBX_NOTSUPPORTED: Invalid first parameter: port must be from 1 to 65535, got 0.\n"},
		{[]string{procfs, "no.such.key"}, 1, "ZBX_NOTSUPPORTED: Unsupported metric.\n"},
		{[]string{procfs, "tcp.status[a"}, 1, "ZBX_NOTSUPPORTED: Invalid item key format.\n"},
		{[]string{procfs, "tcp.status[a,b,c,d]"}, 1, "ZBX_NOTSUPPORTED: Too many parameters.\n"},
		// Arrays as agent 2 hands them on.
		{[]string{procfs, "tcp.status[[timewait],[80]]"}, 0, "2\n"},
		{[]string{procfs, "tcp.status[[timewait, 80]]"}, 1, `ZBX_NOTSUPPORTED: Invalid first parameter: unknown state "timewait,80"; expected `},
		// Parameters as arguments (the UserParameter lines): as they are,
		// a comma included; trailing empty ones dropped; flags before or
		// after; none after -- taken for a flag.
		{[]string{procfs, "tcp.status", "timewait", "80"}, 0, "2\n"},
		{[]string{"--", "tcp.status", "timewait", procfs}, 1, `ZBX_NOTSUPPORTED: Invalid second parameter: port must be a number from 1 to 65535, got "--path.procfs=`},
		{[]string{procfs, "--", "tcp.status", "timewait", "80", "", "", "", "", "", "", ""}, 0, "2\n"},
		{[]string{"tcp.status", "estab", procfs, "22", "--source=proc"}, 0, "2\n"},
		{[]string{procfs, "--", "tcp.port.get", "-1"}, 1, `ZBX_NOTSUPPORTED: Invalid first parameter: port must be a number from 1 to 65535, got "-1".` + "\n"},
		{[]string{procfs, "--", "tcp.port.get", "80,81", "", "", "", "", "", "", "", ""}, 1, `ZBX_NOTSUPPORTED: Invalid first parameter: port must be a number from 1 to 65535, got "80,81".` + "\n"},
		{[]string{procfs, "--", "tcp.port.get", "80", "81", "", "", "", "", "", "", ""}, 1, "ZBX_NOTSUPPORTED: Too many parameters.\n"},
		{[]string{procfs, "--", "tcp.port.discovery", "", "", "", "", "", "", "", "", ""}, 0, "[{"},
		{[]string{procfs, "--", "tcp.port.discovery", "", "", "x", "", "", "", "", "", ""}, 1, "ZBX_NOTSUPPORTED: Too many parameters.\n"},
		{[]string{procfs, "--", "tcp status", "x"}, 1, "ZBX_NOTSUPPORTED: Invalid item key format.\n"},
		{[]string{procfs, "--timeout=1500ms", "tcp.status[timewait,80]"}, 0, "2\n"},
		{[]string{procfs, "--timeout", "2.5", "tcp.status[timewait,80]"}, 0, "2\n"},
		{[]string{"--path.procfs=" + abs(t, fixture("disks", "proc")), sysfs, "disk.get[nope]"}, 1, "ZBX_NOTSUPPORTED: Invalid first parameter: unknown device \"nope\".\n"},
	} {
		code, out, errOut := runCmd(tc.args...)
		if code != tc.code || !strings.HasPrefix(out, tc.out) || errOut != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", tc.args, code, out, errOut, tc.code, tc.out)
		}
	}
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRunHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		code, out, errOut := runCmd(arg)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: tcpstatus-discovery") {
			t.Errorf("%s: exit %d, stderr %q, stdout %q", arg, code, errOut, out)
		}
		for _, want := range []string{"--path.procfs", "--path.sysfs", "--source", "--timeout", "-V, --version",
			"tcp.status[<state>,<local port>,<family>]", "tcp.port.get[<port>]", "disk.get[<device>]", "udp.port.discovery"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: help lacks %q", arg, want)
			}
		}
	}
	for _, arg := range []string{"-V", "--version", "-V=true"} {
		code, out, errOut := runCmd(arg)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "tcpstatus-discovery 0") && !strings.HasPrefix(out, "tcpstatus-discovery ") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Error: no item key given"},
		{[]string{"--"}, "Error: no item key given"},
		{[]string{"--nope", "tcp.status"}, `Error: unknown flag "--nope"`},
		{[]string{"tcp.status", "-x\x1b[2J\u200b"}, `Error: unknown flag "-x\x1B[2J<U+200B>"`},
		{[]string{"---timeout=2", "tcp.status"}, `Error: unknown flag "---timeout=2"`},
		{[]string{"--source=ebpf", "tcp.status"}, `Error: invalid --source: expected auto, netlink or proc, got "ebpf"`},
		{[]string{"--source=\u200bproc", "tcp.status"}, `Error: invalid --source: expected auto, netlink or proc, got "<U+200B>proc"`},
		{[]string{"--path.procfs=relative", "tcp.status"}, `Error: invalid --path.procfs: expected an absolute path, got "relative"`},
		{[]string{"--path.sysfs=/nonexistent-dir", "disk.discovery"}, `Error: invalid --path.sysfs: cannot use "/nonexistent-dir": no such file or directory`},
		// --timeout: the operator's text, not a number of seconds made of it.
		{[]string{"--timeout=0s", "tcp.status"}, `Error: invalid --timeout: expected a duration from 1s to 30s (e.g. 2.5s), got "0s"`},
		{[]string{"--timeout=1h", "tcp.status"}, `Error: invalid --timeout: expected a duration from 1s to 30s (e.g. 2.5s), got "1h"`},
		{[]string{"--timeout", "31", "tcp.status"}, `Error: invalid --timeout: expected a duration from 1s to 30s (e.g. 2.5s), got "31"`},
		{[]string{"--timeout=0x5", "tcp.status"}, `Error: invalid --timeout: expected a duration from 1s to 30s (e.g. 2.5s), got "0x5"`},
		{[]string{"--timeout=x", "tcp.status"}, `Error: invalid --timeout: expected a duration from 1s to 30s (e.g. 2.5s), got "x"`},
		{[]string{"-V", "extra"}, `Error: -V/--version takes no arguments, got "extra"`},
		{[]string{"tcp.status", "--version"}, `Error: -V/--version takes no arguments, got "tcp.status"`},
		{[]string{"-V=maybe"}, `Error: invalid value "maybe" for flag -V: expected true or false`},
		{[]string{"tcp.status[timewait]", "80"}, "Error: parameters given both in the key and as arguments"},
	} {
		code, out, errOut := runCmd(tc.args...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestIntegrationRunLive answers tcp.port.discovery and tcp.port.get from
// the machine's own socket table (netlink): a listener of this process
// shows with its process name, then disappears once closed.
func TestIntegrationRunLive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	comm, _ := os.ReadFile("/proc/self/comm")
	find := func() map[string]string {
		code, out, errOut := runCmd("tcp.port.discovery")
		if code != 0 || errOut != "" {
			t.Fatalf("tcp.port.discovery: exit %d, %s %s", code, out, errOut)
		}
		var rows []map[string]string
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, r := range rows {
			if r["{#PORT}"] == strconv.Itoa(port) {
				return r
			}
		}
		return nil
	}
	r := find()
	want := map[string]string{"{#PORT}": strconv.Itoa(port), "{#ADDRESS}": "127.0.0.1", "{#FAMILY}": "4",
		"{#PROCESS}": strings.TrimSpace(string(comm)), "{#LOOPBACK}": "1", "{#SERVICE}": selfCgroup(t)}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("row of port %d = %v, want %v", port, r, want)
	}
	code, out, _ := runCmd(fmt.Sprintf("tcp.port.get[%d]", port))
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf(`{"port":%d,"listening":1,"listeners":1,"accept_queue":0,`, port)) {
		t.Errorf("tcp.port.get[%d]: exit %d, %s", port, code, out)
	}
	l.Close()
	if r := find(); r != nil {
		t.Errorf("closed listener still discovered: %v", r)
	}
}

// selfCgroup returns the cgroup v2 path of this process (the "0::" line of
// /proc/self/cgroup): the {#SERVICE} of the listeners it opens.
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

// A panic in answering a key is an item error, as the plugin answers it.
func TestExportPanicIsItemError(t *testing.T) {
	boom := func(context.Context, string, []string) (string, error) {
		var m map[string]int
		m["x"]++ // nil map write: a runtime panic
		return "", nil
	}
	v, err := export(context.Background(), boom, "tcp.status", nil)
	if v != "" || err == nil || err.Error() != "Internal error while gathering data." {
		t.Errorf("got %q, %v", v, err)
	}
	fine := func(_ context.Context, key string, p []string) (string, error) {
		return key + strings.Join(p, ","), nil
	}
	if v, err := export(context.Background(), fine, "k", []string{"a", "b"}); v != "ka,b" || err != nil {
		t.Errorf("got %q, %v", v, err)
	}
}
