package faults

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agentprototest"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// Message types of the agent 2 plugin protocol
// (/work/shared/docs/agent2-plugin-protocol.md, section 4).
const (
	typeLog          = 1
	typeRegister     = 2
	typeRegisterResp = 3
	typeStart        = 4
	typeTerminate    = 5
	typeExport       = 6
	typeExportResp   = 7
	typeConfigure    = 8
	typeValidate     = 9
	typeValidateResp = 10
)

// Texts the plugin answers with (internal/agentproto).
const (
	timeoutText  = "Timeout occurred while gathering data."
	internalText = "Internal error while gathering data."
)

// require skips the test when ok is false, or fails it under
// TCPSTATUS_REQUIRE_AGENT=1.
func require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(agenttest.EnvRequire) == "1" {
		t.Fatalf("%s (%s=1 forbids skipping)", msg, agenttest.EnvRequire)
	}
	t.Skip(msg)
}

// requireRoot skips (or fails in CI) unless running as root.
func requireRoot(t testing.TB) {
	t.Helper()
	require(t, os.Geteuid() == 0, "needs root")
}

// frame returns the wire frame of body with the given payload type.
func frame(typ uint32, body []byte) []byte { return agentprototest.AppendFrame(nil, typ, body) }

// header returns a frame header announcing n bytes.
func header(typ, n uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, typ)
	return binary.LittleEndian.AppendUint32(b, n)
}

// reply is one frame the plugin sent, decoded loosely.
type reply struct {
	ID       uint32          `json:"id"`
	Type     uint32          `json:"type"`
	Value    json.RawMessage `json:"value"`
	Error    string          `json:"error"`
	Message  string          `json:"message"`
	Severity uint32          `json:"severity"`
	Name     string          `json:"name"`
	Metrics  []string        `json:"metrics"`
	at       time.Time
}

// decode decodes a frame from the plugin loosely.
func decode(f agentprototest.Frame) reply {
	var r reply
	json.Unmarshal(f.Body, &r)
	r.at = f.At
	return r
}

// lockedBuffer collects the plugin's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pluginProc is the plugin binary run in its operational phase against a
// fake agent: the test.
type pluginProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	conn   *net.UnixConn
	fake   *agentprototest.Agent // the test kit's fake agent on conn
	out    *lockedBuffer
	exited chan struct{}
	state  *os.ProcessState
}

type pluginOpts struct {
	asUser string   // run as this user (setpriv), "" for the test's user
	env    []string // extra environment
	bin    string   // the executable, default agenttest.PluginBinary
	wrap   []string // command the plugin runs under (e.g. strace ...)
}

// panicRe finds a Go panic or runtime crash in the plugin's output.
var panicRe = regexp.MustCompile(`panic:|fatal error:|goroutine \d+ \[`)

// startPlugin runs the plugin in its operational phase against the test as
// agent and accepts its connection. At the end of the test the connection
// is closed and the plugin must exit with status 0 within 10 s and without
// a panic.
func startPlugin(t testing.TB, o pluginOpts) *pluginProc {
	t.Helper()
	bin := o.bin
	if bin == "" {
		bin = agenttest.PluginBinary(t)
	}
	dir, err := os.MkdirTemp("", "tcpstatus-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "agent.plugin.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(sock, 0o777)

	argv := append(append([]string{}, o.wrap...), bin, sock, "false")
	if o.asUser != "" {
		argv = append([]string{"setpriv", "--reuid=" + o.asUser, "--regid=" + o.asUser, "--init-groups", "--pdeathsig=KILL", "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Dir = "/"
	p := &pluginProc{t: t, cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	go func() {
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	l.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := l.AcceptUnix()
	if err != nil {
		cmd.Process.Kill()
		<-p.exited
		t.Fatalf("plugin did not connect: %v\n%s", err, p.out.String())
	}
	p.conn = conn
	p.fake = agentprototest.New(conn)
	t.Cleanup(p.finish)
	return p
}

// pid is the plugin's process id (setpriv execs, so the same process).
func (p *pluginProc) pid() int { return p.cmd.Process.Pid }

// send writes raw bytes as one write.
func (p *pluginProc) send(b []byte) error { return p.fake.Write(b) }

// sendMsg writes one JSON message as a frame.
func (p *pluginProc) sendMsg(m any) error { return p.fake.SendJSON(m) }

// id returns the next request id (the agent numbers from 1).
func (p *pluginProc) id() uint32 { return p.fake.NextID() }

// configTree builds private_options from option lines (name → value).
func configTree(opts map[string]string) map[string]any {
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
	var nodes []any
	for i, k := range names {
		nodes = append(nodes, map[string]any{"Name": k, "Line": i + 1,
			"Nodes": []any{map[string]any{"Value": base64.StdEncoding.EncodeToString([]byte(opts[k])), "Line": i + 1}}})
	}
	return map[string]any{"Name": "TCPStatus", "Line": 1, "Nodes": nodes}
}

// configure sends Configure (agent Timeout 3 s) and Start, as the agent
// does first in the operational phase.
func (p *pluginProc) configure(opts map[string]string) {
	p.t.Helper()
	err := p.sendMsg(map[string]any{"id": p.id(), "type": typeConfigure,
		"global_options": map[string]any{"Timeout": 3, "SourceIP": ""}, "private_options": configTree(opts)})
	if err == nil {
		err = p.sendMsg(map[string]any{"id": p.id(), "type": typeStart})
	}
	if err != nil {
		p.t.Fatalf("configure: %v", err)
	}
}

// export sends an Export request and returns the channel its response
// arrives on.
func (p *pluginProc) export(key string, params []string, timeout int) (uint32, <-chan agentprototest.Frame, error) {
	return p.fake.Export(key, params, timeout)
}

// get exports key and waits up to wait for the answer: the value, or the
// item error as an error of type *itemError.
func (p *pluginProc) get(wait time.Duration, key string, params ...string) (string, error) {
	_, ch, err := p.export(key, params, 0)
	if err != nil {
		return "", fmt.Errorf("send export %s: %w", key, err)
	}
	return p.await(ch, wait, key)
}

func (p *pluginProc) await(ch <-chan agentprototest.Frame, wait time.Duration, key string) (string, error) {
	select {
	case f := <-ch:
		return f.Result()
	case <-p.exited:
		return "", fmt.Errorf("export %s: plugin exited (%v)", key, p.state)
	case <-time.After(wait):
		return "", fmt.Errorf("export %s: no answer within %v", key, wait)
	}
}

// isItemError reports whether err is an item error whose text contains
// want.
func isItemError(err error, want string) bool {
	var ie *agentprototest.ItemError
	return errors.As(err, &ie) && strings.Contains(ie.Text, want)
}

// alive reports whether the plugin process is still running.
func (p *pluginProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitExit waits up to d for the plugin to exit and returns its status.
func (p *pluginProc) waitExit(d time.Duration) (*os.ProcessState, bool) {
	select {
	case <-p.exited:
		return p.state, true
	case <-time.After(d):
		return nil, false
	}
}

// checkCleanExit fails the test unless the plugin exited with status 0
// within d, without a panic.
func (p *pluginProc) checkCleanExit(d time.Duration) {
	p.t.Helper()
	st, ok := p.waitExit(d)
	if !ok {
		p.t.Errorf("plugin still running %v after the fault", d)
		return
	}
	if st.ExitCode() != 0 {
		p.t.Errorf("plugin exited with %v, want status 0\n%s", st, p.out.String())
	}
	if m := panicRe.FindString(p.out.String()); m != "" {
		p.t.Errorf("plugin output shows a crash (%q):\n%s", m, p.out.String())
	}
}

// logText returns every log message the plugin sent, one per line.
func (p *pluginProc) logText() string {
	var b strings.Builder
	for _, f := range p.fake.Logs() {
		l := decode(f)
		fmt.Fprintf(&b, "[%d] %s\n", l.Severity, l.Message)
	}
	return b.String()
}

// finish closes the connection (as an agent that stops) and checks the
// plugin exits cleanly; a plugin that does not is killed.
func (p *pluginProc) finish() {
	p.conn.Close()
	st, ok := p.waitExit(10 * time.Second)
	if !ok {
		p.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump into the output
		if _, ok := p.waitExit(2 * time.Second); !ok {
			p.cmd.Process.Kill()
			<-p.exited
		}
		p.t.Errorf("plugin did not exit within 10 s of the agent closing the connection\n%s", tail(p.out.String(), 80))
		return
	}
	if st.ExitCode() != 0 {
		p.t.Errorf("plugin exited with %v, want status 0\n%s", st, tail(p.out.String(), 80))
	}
	if m := panicRe.FindString(p.out.String()); m != "" {
		p.t.Errorf("plugin output shows a crash (%q):\n%s", m, tail(p.out.String(), 80))
	}
	if err := p.fake.Err(); err != nil {
		p.t.Errorf("plugin broke the protocol: %v", err)
	}
	for id, n := range p.fake.Answered() {
		if n > 1 {
			p.t.Errorf("request %d answered %d times", id, n)
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// atoi parses a decimal item value.
func atoi(t testing.TB, what, v string) int {
	t.Helper()
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s = %q, not an integer", what, v)
	}
	return n
}
