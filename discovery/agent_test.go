package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// childListenEnv makes the test binary a helper process (see TestMain): it
// listens on 127.0.0.1, prints the port, and exits when its standard input
// closes or after two minutes.
const childListenEnv = "TCPSTATUS_DISCOVERY_CHILD_LISTEN"

func TestMain(m *testing.M) {
	if os.Getenv(childListenEnv) == "1" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const installedHelper = "/usr/bin/tcpstatus-discovery"

// userParameterArgs is how every UserParameter line hands on the key's
// parameters: all nine the classic agent can, each as one argument.
const userParameterArgs = `'$1' '$2' '$3' '$4' '$5' '$6' '$7' '$8' '$9'`

// TestUserParameterFileCoversEveryKey checks the UserParameter file maps
// every plugin key to the helper, the key's parameters handed on one per
// argument, all nine, so that the helper reports too many.
func TestUserParameterFileCoversEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "conf", "userparameter_tcpstatus.conf"))
	if err != nil {
		t.Fatal(err)
	}
	lineRe := regexp.MustCompile(`^UserParameter=([a-z.]+)\[\*\],` + regexp.QuoteMeta(installedHelper) + ` (.+)$`)
	mapped := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := lineRe.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("unexpected line %q", line)
			continue
		}
		mapped[m[1]] = m[2]
		if want := "-- " + m[1] + " " + userParameterArgs; m[2] != want {
			t.Errorf("%s: runs %s, want %s", m[1], m[2], want)
		}
	}
	e, err := metrics.New(metrics.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.Metrics() {
		if _, ok := mapped[m.Key]; !ok {
			t.Errorf("key %s has no UserParameter line", m.Key)
		}
		delete(mapped, m.Key)
	}
	for k := range mapped {
		t.Errorf("UserParameter %s is not a plugin key", k)
	}
}

// heldListener is a listener of this (root) process with a chosen backlog
// and connections waiting in its accept queue.
type heldListener struct {
	fd      int
	port    int
	clients []net.Conn
}

func holdListener(t *testing.T, backlog, queued int) *heldListener {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := &heldListener{fd: fd}
	t.Cleanup(h.close)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	h.port = sa.(*unix.SockaddrInet4).Port
	for range queued {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		h.clients = append(h.clients, c)
	}
	return h
}

func (h *heldListener) close() {
	for _, c := range h.clients {
		c.Close()
	}
	h.clients = nil
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

// childListener starts a copy of the test binary listening on 127.0.0.1,
// as the agents' user when asAgentUser (else as root), directly inside the
// cgroup directory cgroupDir (clone3 CLONE_INTO_CGROUP; "" for this
// process's cgroup), and returns its port and process name.
func childListener(t *testing.T, cgroupDir string, asAgentUser bool) (int, string) {
	t.Helper()
	name := "rootlistener"
	if asAgentUser {
		name = "zbxlistener"
	}
	bin := testutil.CopyExecutable(t, testutil.WorldDir(t), "", name)
	cmd := exec.Command(bin)
	if asAgentUser {
		cmd = exec.Command("setpriv", "--reuid="+agenttest.AgentUser, "--regid="+agenttest.AgentUser, "--init-groups", "--pdeathsig=KILL", "--", bin)
	}
	cmd.Env = append(os.Environ(), childListenEnv+"=1")
	if cgroupDir != "" {
		cg, err := os.Open(cgroupDir)
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	port, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("listener child: %q, %v", line, err)
	}
	return port, name
}

// childCgroups creates, under the cgroup v2 root, a cgroup of the test's
// own with the given children, and returns their directories and their
// paths as the kernel names them ("/tcpstatus-discovery-<pid>/<child>").
// Without a cgroup v2 mount the test is skipped.
func childCgroups(t *testing.T, children ...string) (dirs, paths []string) {
	t.Helper()
	root, err := sockets.NewCgroupPaths().Root()
	if err != nil {
		t.Skip(err)
	}
	base := "tcpstatus-discovery-" + strconv.Itoa(os.Getpid())
	testutil.Cgroup(t, root, base)
	for _, c := range children {
		dirs = append(dirs, testutil.Cgroup(t, root, base+"/"+c))
		paths = append(paths, "/"+base+"/"+c)
	}
	return dirs, paths
}

// ssListener returns the accept queue and backlog ss shows for the
// listener on port.
func ssListener(t *testing.T, port int) (uint64, uint64) {
	t.Helper()
	out, err := exec.Command("ss", "-ltnH", "sport", "=", ":"+strconv.Itoa(port)).Output()
	if err != nil {
		t.Fatalf("ss -ltnH: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[0])
	if len(lines) != 1 || len(f) < 3 {
		t.Fatalf("ss -ltnH sport = :%d: %q", port, out)
	}
	q, _ := strconv.ParseUint(f[1], 10, 64)
	b, _ := strconv.ParseUint(f[2], 10, 64)
	return q, b
}

// ssStates counts the TCP sockets with local port port by state, per ss.
func ssStates(t *testing.T, port int) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("ss", "-tanH", "sport", "=", ":"+strconv.Itoa(port)).Output()
	if err != nil {
		t.Fatalf("ss -tanH: %v", err)
	}
	c := map[string]uint64{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			s, ok := sockets.ParseState(f[0])
			if !ok {
				t.Fatalf("ss state %q", f[0])
			}
			c[s.String()]++
			c["total"]++
		}
	}
	return c
}

// agentGetter is what the tests need of a running agent.
type agentGetter interface{ Get(string) (string, error) }

func discoveredPort(t *testing.T, a agentGetter, key string, port int) map[string]string {
	t.Helper()
	v, err := a.Get(key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	var rows []map[string]string
	if err := json.Unmarshal([]byte(v), &rows); err != nil {
		t.Fatalf("%s: %v: %s", key, err, v)
	}
	for _, r := range rows {
		if r["{#PORT}"] == strconv.Itoa(port) {
			return r
		}
	}
	return nil
}

// checkAgentPorts runs the port checks against one agent: discovery of a
// root listener (process hidden from the agent's user) and of a listener of
// the agent's user (process shown), tcp.port.get against ss, then both gone
// once closed.
func checkAgentPorts(t *testing.T, a agentGetter) {
	h := holdListener(t, 7, 3)
	// Two listeners in child cgroups of the test's own: a process of
	// root's, which the agent's user cannot see, and one of its own user.
	dirs, paths := childCgroups(t, "root.service", "zbx.service")
	rport, _ := childListener(t, dirs[0], false)
	zport, zname := childListener(t, dirs[1], true)
	// Let the kernel finish the handshakes before comparing.
	time.Sleep(50 * time.Millisecond)

	// {#SERVICE} is the listener's cgroup, which needs no privilege to
	// read, whoever holds the socket; {#PROCESS} only where the agent's
	// user may look into the process's descriptors.
	for _, c := range []struct {
		what          string
		port          int
		process, cgrp string
	}{
		{"listener of this root process", h.port, "", selfCgroup(t)},
		{"root listener in " + paths[0], rport, "", paths[0]},
		{"listener of user " + agenttest.AgentUser + " in " + paths[1], zport, zname, paths[1]},
	} {
		want := map[string]string{"{#PORT}": strconv.Itoa(c.port), "{#ADDRESS}": "127.0.0.1", "{#FAMILY}": "4", "{#PROCESS}": c.process, "{#LOOPBACK}": "1", "{#SERVICE}": c.cgrp}
		if r := discoveredPort(t, a, "tcp.port.discovery", c.port); fmt.Sprint(r) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", c.what, r, want)
		}
	}

	v, err := a.Get(fmt.Sprintf("tcp.port.get[%d]", h.port))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal([]byte(v), &got); err != nil {
		t.Fatalf("%v: %s", err, v)
	}
	q, b := ssListener(t, h.port)
	states := ssStates(t, h.port)
	if q != 3 || b != 7 {
		t.Errorf("ss shows queue %d backlog %d, want 3 and 7", q, b)
	}
	wantGet := map[string]float64{"port": float64(h.port), "listening": 1, "listeners": 1, "accept_queue": float64(q), "backlog": float64(b),
		"accept_queue_pused": float64(int(10000*float64(q)/float64(b)+0.5)) / 100, "total": float64(states["total"])}
	for _, s := range sockets.States() {
		wantGet[s.String()] = float64(states[s.String()])
	}
	if fmt.Sprint(got) != fmt.Sprint(wantGet) {
		t.Errorf("tcp.port.get[%d]\n got %v\nwant %v (ss)", h.port, got, wantGet)
	}

	if _, err := a.Get("tcp.port.get[0]"); !isNotSupported(err, "Invalid first parameter: port must be from 1 to 65535, got 0.") {
		t.Errorf("tcp.port.get[0]: %v", err)
	}

	h.close()
	if r := discoveredPort(t, a, "tcp.port.discovery", h.port); r != nil {
		t.Errorf("closed listener still discovered: %v", r)
	}
	v, err = a.Get(fmt.Sprintf("tcp.port.get[%d]", h.port))
	if err != nil || !strings.Contains(v, `"listening":0,"listeners":0,`) {
		t.Errorf("tcp.port.get after close: %s, %v", v, err)
	}
}

func isNotSupported(err error, text string) bool {
	var ns *agenttest.NotSupported
	return errors.As(err, &ns) && ns.Text == text
}

// TestIntegrationAgent2Ports runs the port keys through real agents 2 (6.0
// and 7.0) running the plugin as user zabbix.
func TestIntegrationAgent2Ports(t *testing.T) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			a := agenttest.Start(t, v, agenttest.WithConf("Plugins.TCPStatus.CacheTTL=0"))
			checkAgentPorts(t, a)
		})
	}
}

// classicAgent starts zabbix_agentd with conf/userparameter_tcpstatus.conf
// pointing at a freshly built helper the agent's user can run.
func classicAgent(t *testing.T) *agenttest.Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("agents are not started in -short mode")
	}
	conf, err := os.ReadFile(filepath.Join("..", "conf", "userparameter_tcpstatus.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		// Let agenttest decide between skip and failure.
		return agenttest.StartClassic(t, string(conf))
	}
	bin := agenttest.DiscoveryBinary(t)
	dir, err := os.MkdirTemp("", "tcpstatus-helper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "tcpstatus-discovery")
	b, err := os.ReadFile(bin)
	if err == nil {
		err = os.WriteFile(helper, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(conf), installedHelper, helper)
	return agenttest.StartClassic(t, text)
}

// TestIntegrationClassicAgentPorts runs the same checks through the classic
// agent and the UserParameter file.
func TestIntegrationClassicAgentPorts(t *testing.T) {
	checkAgentPorts(t, classicAgent(t))
}

// TestIntegrationClassicAgentKeys answers the other keys through the classic
// agent and compares with the helper run here (as root, so only values the
// agent's user sees the same are compared).
func TestIntegrationClassicAgentKeys(t *testing.T) {
	a := classicAgent(t)
	h := holdListener(t, 5, 0)
	for key, want := range map[string]string{
		fmt.Sprintf("tcp.status[listen,%d]", h.port):      "1",
		fmt.Sprintf("tcp.status[listen,%d,6]", h.port):    "0",
		fmt.Sprintf("tcp.status[LISTEN,%d,4]", h.port):    "1",
		fmt.Sprintf("tcp.status[timewait,%d,]", h.port):   "0",
		fmt.Sprintf(`tcp.status["listen", %d]`, h.port):   "1",
		fmt.Sprintf("tcp.status.get[%d]", h.port):         `{"established":0,"syn_sent":0,"syn_recv":0,"fin_wait1":0,"fin_wait2":0,"time_wait":0,"close":0,"close_wait":0,"last_ack":0,"listen":1,"closing":0,"total":1}`,
		fmt.Sprintf("tcp.remote.top[5,estab,%d]", h.port): "[]",
	} {
		got, err := a.Get(key)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
	// tcp.ephemeral.get through the helper: the range of tcp.limits.get,
	// and the request's own connection (zabbix_get, from an ephemeral port
	// to the agent's) among the destinations.
	if raw, err := a.Get("tcp.ephemeral.get[1000]"); err != nil {
		t.Errorf("tcp.ephemeral.get: %v", err)
	} else {
		var eph struct {
			Min int `json:"range_min"`
			Max int `json:"range_max"`
			Top []struct {
				Remote string `json:"remote"`
				Port   int    `json:"port"`
			} `json:"top"`
		}
		lp, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		own := false
		if err := json.Unmarshal([]byte(raw), &eph); err == nil {
			for _, d := range eph.Top {
				own = own || (d.Remote == "127.0.0.1" && d.Port == int(a.Port()))
			}
		}
		if fmt.Sprint(eph.Min, eph.Max) != strings.Join(strings.Fields(string(lp)), " ") || !own {
			t.Errorf("tcp.ephemeral.get[1000] = %.500s; want the range %q and 127.0.0.1:%d", raw, lp, a.Port())
		}
	}
	// Static values: the same as the helper run here.
	for _, key := range []string{"disk.discovery", "tcp.limits.get"} {
		got, err := a.Get(key)
		code, out, _ := runCmd(key)
		if code != 0 || err != nil || got != strings.TrimSuffix(out, "\n") {
			t.Errorf("%s through the agent = %q, %v; here %q (exit %d)", key, got, err, out, code)
		}
	}
	if ds, err := os.ReadFile("/proc/diskstats"); err == nil && len(strings.Fields(string(ds))) > 2 {
		dev := strings.Fields(string(ds))[2]
		v, err := a.Get("disk.get[" + dev + "]")
		if err != nil || !strings.HasPrefix(v, `{"read_ios":`) {
			t.Errorf("disk.get[%s] = %q, %v", dev, v, err)
		}
	}
	for key, want := range map[string]string{
		"tcp.status[bogus]": `Invalid first parameter: unknown state "bogus"; expected ` + "established (estab), syn_sent (synsent), syn_recv (synrecv), fin_wait1 (finwait1), " +
			"fin_wait2 (finwait2), time_wait (timewait), close (closed), close_wait (closewait), last_ack (lastack), listen, closing or all.",
		"tcp.port.get":         "Invalid first parameter: port is required.",
		"disk.get[nope]":       `Invalid first parameter: unknown device "nope".`,
		"disk.get[../../x]":    `Invalid first parameter: unknown device "../../x".`,
		"tcp.status[estab,0]":  "Invalid second parameter: port must be from 1 to 65535, got 0.",
		"tcp.status.get[,ipx]": `Invalid second parameter: unknown family "ipx"; expected 4, 6 or empty for both.`,
	} {
		if _, err := a.Get(key); !isNotSupported(err, want) {
			t.Errorf("%s: %v, want ZBX_NOTSUPPORTED: %s", key, err, want)
		}
	}
	// Parameters as the plugin gets them from agent 2 (parseKey follows its
	// grammar, testdata/keys.json): a comma inside one, too many, arrays.
	// The helper answers through the UserParameter lines with the plugin's
	// own error text.
	e, err := metrics.New(metrics.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		`tcp.port.get["80,81"]`, "tcp.port.get[80,81]", `tcp.status["listen,x"]`, "tcp.status[listen,1,4,x]",
		"tcp.status.get[80,4,x]", "tcp.port.discovery[x]", "udp.port.discovery[,x]", "tcp.kernel.get[x]",
		`disk.get["sda,sdb"]`, "disk.get[sda,sdb]", "tcp.remote.top[[5,estab]]", "tcp.status[[listen],[70000]]",
	} {
		name, params, err := parseKey(key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		_, perr := e.Export(context.Background(), name, params)
		if perr == nil {
			t.Fatalf("%s: the plugin accepts it", key)
		}
		if _, err := a.Get(key); !isNotSupported(err, perr.Error()) {
			t.Errorf("%s through the classic agent: %v; the plugin answers %q", key, err, perr.Error())
		}
	}
	for key, want := range map[string]string{
		fmt.Sprintf("tcp.status[[listen],%d]", h.port):    "1",
		fmt.Sprintf(`tcp.status[" listen",[%d]]`, h.port): "1",
		"tcp.port.discovery[]":                            "",
		"tcp.limits.get[,,]":                              "",
	} {
		got, err := a.Get(key)
		if err != nil || want != "" && got != want || want == "" && !strings.HasPrefix(got, "[") && !strings.HasPrefix(got, "{") {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
	// The agent refuses shell characters before anything runs.
	for _, key := range []string{`tcp.status["a'b"]`, "tcp.status[`id`]", "disk.get[$(id)]", `disk.get["a;b"]`} {
		_, err := a.Get(key)
		var ns *agenttest.NotSupported
		if !errors.As(err, &ns) || !strings.HasPrefix(ns.Text, "Special characters") {
			t.Errorf("%s: %v, want the agent's special characters refusal", key, err)
		}
	}
}
