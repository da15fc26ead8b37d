package faults

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	kitagent "zabbix-agent2-plugin-tcpstatus/testkit/agent"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// passive asks the agent at 127.0.0.1:port for key with the passive-check
// protocol, without a zabbix_get process per request. With timeout > 0 it
// uses the JSON request of agent 7.0, which carries the item timeout the
// agent hands to the plugin; else the plain key (what zabbix_get 6.0 sends).
// A ZBX_NOTSUPPORTED answer is an *agenttest.NotSupported error.
func passive(port int, key string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	wait := 30 * time.Second
	if timeout > 0 {
		wait = timeout + 10*time.Second
	}
	conn.SetDeadline(time.Now().Add(wait))
	payload := []byte(key)
	if timeout > 0 {
		payload, _ = json.Marshal(map[string]any{"request": "passive checks",
			"data": []map[string]string{{"key": key, "timeout": fmt.Sprintf("%ds", int(timeout.Seconds()))}}})
	}
	msg := append([]byte("ZBXD\x01"), binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, uint32(len(payload))), 0)...)
	if _, err := conn.Write(append(msg, payload...)); err != nil {
		return "", err
	}
	resp, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("passive %s: %w", key, err)
	}
	if len(resp) < 13 || !bytes.HasPrefix(resp, []byte("ZBXD")) {
		return "", fmt.Errorf("passive %s: bad answer %q", key, resp)
	}
	data := resp[13:]
	if timeout > 0 {
		var r struct {
			Data []struct {
				Value *string `json:"value"`
				Error *string `json:"error"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &r); err != nil || len(r.Data) != 1 {
			return "", fmt.Errorf("passive %s: bad JSON answer %q", key, data)
		}
		if e := r.Data[0].Error; e != nil {
			return "", &agenttest.NotSupported{Text: *e}
		}
		if r.Data[0].Value == nil {
			return "", fmt.Errorf("passive %s: answer without value: %q", key, data)
		}
		return *r.Data[0].Value, nil
	}
	if rest, ok := bytes.CutPrefix(data, []byte("ZBX_NOTSUPPORTED\x00")); ok {
		return "", &agenttest.NotSupported{Text: string(rest)}
	}
	return string(data), nil
}

// notSupported reports whether err is the agent's ZBX_NOTSUPPORTED with a
// reason containing want.
func notSupported(err error, want string) bool {
	var ns *agenttest.NotSupported
	return errors.As(err, &ns) && strings.Contains(ns.Text, want)
}

// pluginProcs returns the pids of plugin processes serving the agent whose
// private directory is dir (their socket argument lies in it), with their
// phase argument ("true": registration, "false": operational).
func pluginProcs(dir string) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && filepath.Base(args[0]) != "setpriv" && strings.HasPrefix(args[1], dir+"/") &&
			(args[2] == "true" || args[2] == "false") && !isZombie(pid) {
			out[pid] = args[2]
		}
	}
	return out
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] == "Z"
}

// operational returns the pid of the agent's one operational plugin
// process, failing the test if there is not exactly one.
func operational(t testing.TB, a *agenttest.Agent) int {
	t.Helper()
	var pids []int
	for pid, phase := range pluginProcs(a.Dir()) {
		if phase == "false" {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("%s: %d operational plugin processes (%v), want 1", a.Name(), len(pids), pids)
	}
	return pids[0]
}

// processUID returns the real and effective uid of pid.
func processUID(t testing.TB, pid int) (string, string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
			return f[1], f[2]
		}
	}
	t.Fatalf("no Uid line for pid %d", pid)
	return "", ""
}

// privateSpec is a private agent 2 of series v for rows that stop, kill or
// restart the agent themselves (testkit/agent, not the cleanup-managed
// agenttest.Start): own directory, port, sockets and log, a copy of the
// plugin, user zabbix, plus lines.
func privateSpec(t testing.TB, v agenttest.Version, lines ...string) kitagent.Spec {
	t.Helper()
	if testing.Short() {
		t.Skip("agents are not started in -short mode")
	}
	requireRoot(t)
	dir := testutil.WorldDir(t)
	os.Chmod(dir, 0o777)
	// The plugin must be reachable by zabbix: copy it next to the config.
	plugin := testutil.CopyExecutable(t, dir, agenttest.PluginBinary(t), agenttest.PluginName)
	s := kitagent.Spec{Bin: v.Binary(), Version: v, Dir: dir, User: agenttest.AgentUser, Port: freePort(t),
		Hostname: "tcpstatus-faults", DebugLevel: 3, Conf: append([]string{kitagent.PluginConf(plugin)}, lines...),
		Logf: t.Logf}
	missing := kitagent.Missing(s)
	require(t, len(missing) == 0, "%s", strings.Join(missing, "; "))
	return s
}

// runAgentOnce runs zabbix_agent2 of series v in the foreground as user
// zabbix with a private configuration plus lines, expecting it to refuse to
// start; it returns what the agent printed and logged, and its exit error.
func runAgentOnce(t testing.TB, v agenttest.Version, lines ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := kitagent.Run(ctx, privateSpec(t, v, lines...))
	if ctx.Err() != nil {
		t.Fatalf("zabbix_agent2 %s still running after 60 s with a bad configuration:\n%s", v, out)
	}
	return out, err
}

// freePort returns a loopback TCP port in the agent's ListenPort range
// (1024-32767) that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		p := 20000 + int(time.Now().UnixNano()/7%12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// newNetns creates a network namespace with lo up, deleted at the end of
// the test; sysctls are set inside it.
func newNetns(t testing.TB, sysctls ...string) string {
	t.Helper()
	requireRoot(t)
	_, err := exec.LookPath("ip")
	require(t, err == nil, "ip (iproute2) not found")
	name := fmt.Sprintf("tcpstatus-faults-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	for _, s := range sysctls {
		if out, err := exec.Command("ip", "netns", "exec", name, "sysctl", "-q", "-w", s).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s in %s: %v: %s", s, name, err, out)
		}
	}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	return name
}

// versions runs f for every agent 2 series as subtests.
func versions(t *testing.T, f func(t *testing.T, v agenttest.Version)) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) { f(t, v) })
	}
}
