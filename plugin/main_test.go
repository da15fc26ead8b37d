package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/agentproto"
	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/version"
	"zabbix-agent2-plugin-tcpstatus/testkit/agentprototest"
)

func noDial(string, time.Duration) (io.ReadWriteCloser, error) {
	return nil, errors.New("dial must not be called")
}

func TestRunArgs(t *testing.T) {
	e, err := metrics.New(metrics.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     string
		emptyOther bool
	}{
		{"+no argument: usage", []string{progName}, 0, []string{"Usage: " + progName, "Plugins.TCPStatus.System.Path="}, "", true},
		{"+-V", []string{progName, "-V"}, 0, []string{progName + " " + version.String() + "\n", "accepts any agent protocol version"}, "", true},
		{"+--version", []string{progName, "--version"}, 0, []string{progName + " " + version.String() + "\n"}, "", true},
		{"+-h", []string{progName, "-h"}, 0, []string{"Usage: ", "Keys:", "Options (Plugins.TCPStatus.<Option>=<value>):"}, "", true},
		{"+--help", []string{progName, "--help"}, 0, []string{"Keys:"}, "", true},
		{"-unknown flag", []string{progName, "-x"}, 2, nil, "Error: unknown flag -x\nUsage: ", false},
		{"-bad phase", []string{progName, "/tmp/s.sock", "maybe"}, 2, nil, `Error: second argument must be true or false, got "maybe"`, false},
		{"-too many", []string{progName, "/tmp/s.sock", "true", "x"}, 2, nil, "Error: too many arguments", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(c.args, &stdout, &stderr, noDial); code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			for _, s := range c.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			if c.stderr != "" && !strings.HasPrefix(stderr.String(), c.stderr) {
				t.Errorf("stderr %q, want prefix %q", stderr.String(), c.stderr)
			}
			if c.emptyOther && stderr.Len() > 0 {
				t.Errorf("stderr not empty: %q", stderr.String())
			}
			if strings.Contains(c.name, "-h") || strings.Contains(c.name, "--help") {
				for _, m := range e.Metrics() {
					if !strings.Contains(stdout.String(), m.Synopsis()+" ") || !strings.Contains(stdout.String(), m.Description) {
						t.Errorf("help lacks key %s", m.Synopsis())
					}
				}
				for _, o := range metrics.Options() {
					if !regexp.MustCompile(`(?m)^  ` + o.Name + ` +` + regexp.QuoteMeta(o.Help) + `$`).MatchString(stdout.String()) {
						t.Errorf("help lacks option %s", o.Name)
					}
				}
			}
		})
	}
}

func TestRunDialFails(t *testing.T) {
	var stderr bytes.Buffer
	var asked time.Duration
	dial := func(path string, within time.Duration) (io.ReadWriteCloser, error) {
		asked = within
		return nil, fmt.Errorf("cannot connect to %s", path)
	}
	if code := run([]string{progName, "/run/x.sock", "false"}, io.Discard, &stderr, dial); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if stderr.String() != "Error: cannot connect to /run/x.sock\n" || asked != 3*time.Second {
		t.Errorf("stderr %q, dial time %v", stderr.String(), asked)
	}
}

// agent is the test kit's fake agent on the other end of run's
// connection; its methods fail the test instead of returning errors.
type agent struct {
	t    *testing.T
	a    *agentprototest.Agent
	code chan int
}

// startRun runs the plugin program against a fake agent over net.Pipe.
func startRun(t *testing.T, phase string) *agent {
	fake, pluginEnd := agentprototest.Pipe()
	t.Cleanup(func() {
		fake.Close()
		pluginEnd.Close()
		if err := fake.Err(); err != nil {
			t.Errorf("fake agent: %v", err)
		}
	})
	a := &agent{t: t, a: fake, code: make(chan int, 1)}
	dials := 0
	dial := func(path string, within time.Duration) (io.ReadWriteCloser, error) {
		if dials++; dials > 1 || path != "/run/agent.plugin.sock" {
			t.Errorf("dial #%d of %s", dials, path)
		}
		return pluginEnd, nil
	}
	go func() {
		var stderr bytes.Buffer
		a.code <- run([]string{progName, "/run/agent.plugin.sock", phase}, io.Discard, &stderr, dial)
		if stderr.Len() > 0 {
			t.Logf("plugin stderr: %s", stderr.String())
		}
	}()
	return a
}

func (a *agent) send(body string) {
	a.t.Helper()
	if err := a.a.Send([]byte(body)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) recv() agentproto.Message {
	a.t.Helper()
	f, err := a.a.Next(10 * time.Second)
	if err != nil {
		a.t.Fatal(err)
	}
	m, err := agentproto.Decode(f.Body)
	if err != nil {
		a.t.Fatalf("plugin sent %q: %v", f.Body, err)
	}
	return m
}

// logs returns the log requests received so far.
func (a *agent) logs() []agentproto.LogRequest {
	var out []agentproto.LogRequest
	for _, f := range a.a.Logs() {
		if m, err := agentproto.Decode(f.Body); err == nil {
			out = append(out, *m.(*agentproto.LogRequest))
		}
	}
	return out
}

func (a *agent) export(id int, key string, params ...string) *agentproto.ExportResponse {
	a.t.Helper()
	req := map[string]any{"id": id, "type": 6, "key": key}
	if params != nil {
		req["parameters"] = params
	}
	b, _ := json.Marshal(req)
	a.send(string(b))
	r, ok := a.recv().(*agentproto.ExportResponse)
	if !ok || r.ID != uint32(id) {
		a.t.Fatalf("export %d: got %+v", id, r)
	}
	return r
}

func (a *agent) exitCode() int {
	a.t.Helper()
	select {
	case c := <-a.code:
		return c
	case <-time.After(5 * time.Second):
		a.t.Fatal("run did not return within 5 s")
	}
	return -1
}

// tree builds a configuration tree as the agent sends it.
func tree(opts ...string) string {
	nodes := []string{`{"Name":"System","Line":1,"Nodes":[{"Name":"Path","Line":1,"Nodes":[{"Value":"` +
		base64.StdEncoding.EncodeToString([]byte("/usr/libexec/zabbix-agent2-plugins/"+progName)) + `","Line":1}]}]}`}
	for i := 0; i+1 < len(opts); i += 2 {
		nodes = append(nodes, fmt.Sprintf(`{"Name":%q,"Line":%d,"Nodes":[{"Value":%q,"Line":%[2]d}]}`,
			opts[i], i+2, base64.StdEncoding.EncodeToString([]byte(opts[i+1]))))
	}
	return `{"Name":"TCPStatus","Line":1,"Nodes":[` + strings.Join(nodes, ",") + `]}`
}

// Registration process: the key table of the metrics package, all three
// interfaces, option errors from metrics.ParseConfig in Zabbix style.
func TestRunRegistration(t *testing.T) {
	e, err := metrics.New(metrics.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range e.Metrics() {
		want = append(want, m.Key, m.Description)
	}
	cases := []struct {
		name, tree, err string
	}{
		{"+valid", tree("Timeout", "5", "CacheTTL", "0.5", "Source", "proc"), ""},
		{"+System only", tree(), ""},
		{"-unknown option", tree("Foo", "bar"), "Unknown option Plugins.TCPStatus.Foo; known options: ProcRoot, SysRoot, Source, CacheTTL, Timeout."},
		{"-nested option", tree("Sessions.S1.Uri", "tcp://x"), "Unknown option Plugins.TCPStatus.Sessions.S1.Uri; known options: ProcRoot, SysRoot, Source, CacheTTL, Timeout."},
		{"-bad timeout", tree("Timeout", "99"), `Invalid option Plugins.TCPStatus.Timeout: expected seconds from 1 to 30, got "99".`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := startRun(t, "true")
			a.send(`{"id":1,"type":2,"version":"6.0.13"}`)
			r, ok := a.recv().(*agentproto.RegisterResponse)
			if !ok || r.ID != 1 || r.Name != "TCPStatus" || r.Interfaces != 7 || r.Error != "" || strings.Join(r.Metrics, "\n") != strings.Join(want, "\n") {
				t.Fatalf("register response %+v", r)
			}
			a.send(`{"id":2,"type":9,"private_options":` + c.tree + `}`)
			v, ok := a.recv().(*agentproto.ValidateResponse)
			if !ok || v.ID != 2 || v.Error != c.err {
				t.Errorf("validate: got %+v, want error %q", v, c.err)
			}
			a.send(`{"id":0,"type":5}`)
			a.a.Close() // agent 6.0 hangs up right after Terminate
			if code := a.exitCode(); code != 0 {
				t.Errorf("exit code %d after Terminate", code)
			}
		})
	}
}

// Operational process, agent 6.0 order, then the agent hangs up: parameter
// errors from the metrics package reach the agent as item errors; exit 0 on
// EOF.
func TestRunOperational(t *testing.T) {
	a := startRun(t, "false")
	a.send(`{"id":1,"type":8,"global_options":{"Timeout":3,"SourceIP":""},"private_options":` + tree("CacheTTL", "0") + `}`)
	a.send(`{"id":2,"type":4}`)
	if r := a.export(3, "tcp.status", "bogus"); !strings.HasPrefix(r.Error, `Invalid first parameter: unknown state "bogus"`) || r.Value != nil {
		t.Errorf("tcp.status[bogus]: %+v", r)
	}
	if r := a.export(4, "tcp.status", "all", "70000"); r.Error != "Invalid second parameter: port must be from 1 to 65535, got 70000." {
		t.Errorf("tcp.status[all,70000]: %+v", r)
	}
	if r := a.export(5, "tcp.status", "a", "b", "c", "d"); r.Error != "Too many parameters." {
		t.Errorf("four parameters: %+v", r)
	}
	if r := a.export(6, "no.such.key"); r.Error != "Unsupported metric." {
		t.Errorf("unknown key: %+v", r)
	}
	// A valid request: a count when the socket sources work, their error
	// otherwise; never anything else.
	r := a.export(7, "tcp.status", "timewait")
	if !(r.Error == "" && r.Value != nil && regexp.MustCompile(`^\d+$`).MatchString(*r.Value)) && !strings.HasPrefix(r.Error, "Cannot obtain socket table") {
		t.Errorf("tcp.status[timewait]: %+v (value %v)", r, r.Value)
	}
	a.a.Close()
	if code := a.exitCode(); code != 0 {
		t.Errorf("exit code %d after EOF", code)
	}
}

// Operational process without Configure (as if the agent skipped it): the
// defaults apply, with a warning in the agent's log; 7.0-style timeout and
// Terminate id.
func TestRunWithoutConfigure(t *testing.T) {
	a := startRun(t, "false")
	a.send(`{"id":1,"type":6,"key":"tcp.status","parameters":["bogus"],"timeout":5}`)
	if r, ok := a.recv().(*agentproto.ExportResponse); !ok || !strings.HasPrefix(r.Error, "Invalid first parameter") {
		t.Errorf("export: %+v", r)
	}
	a.send(`{"id":2,"type":5}`)
	if code := a.exitCode(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	found := false
	for _, l := range a.logs() {
		if l.Severity == agentproto.SeverityWarning && strings.Contains(l.Message, "using the defaults") {
			found = true
		}
	}
	if !found {
		t.Error("no warning about the missing configuration")
	}
}

func TestDialUnix(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.plugin.sock")
	// The socket appears 300 ms after the plugin starts dialing.
	accepted := make(chan int, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Error(err)
			accepted <- 0
			return
		}
		defer l.Close()
		n := 0
		for {
			l.(*net.UnixListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
			c, err := l.Accept()
			if err != nil {
				accepted <- n
				return
			}
			n++
			defer c.Close()
		}
	}()
	start := time.Now()
	c, err := dialUnix(sock, 3*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if took := time.Since(start); took < 300*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("connected after %v", took)
	}
	if n := <-accepted; n != 1 {
		t.Errorf("%d connections, want exactly 1", n)
	}

	start = time.Now()
	if _, err := dialUnix(filepath.Join(dir, "none.sock"), 200*time.Millisecond); err == nil || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("dial of a missing socket: %v", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 1*time.Second {
		t.Errorf("gave up after %v, want about 200ms", took)
	}
}

// The real program (main, via this test binary): ignores SIGTERM and SIGINT
// while connected, exits 0 when the agent hangs up.
func TestMainIgnoresSignals(t *testing.T) {
	if os.Getenv("TCPSTATUS_PLUGIN_MAIN") == "1" {
		os.Args = append([]string{progName}, strings.Split(os.Getenv("TCPSTATUS_PLUGIN_ARGS"), " ")...)
		main()
		return
	}
	sock := filepath.Join(t.TempDir(), "agent.plugin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainIgnoresSignals$")
	cmd.Env = append(os.Environ(), "TCPSTATUS_PLUGIN_MAIN=1", "TCPSTATUS_PLUGIN_ARGS="+sock+" false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second // Wait returns even if the stderr pipe lingers
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // no effect once it has exited
		<-exited
	})
	l.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// A full exchange first, so the signal handlers are surely in place.
	frame, _ := agentproto.AppendFrame(nil, []byte(`{"id":1,"type":6,"key":"tcp.status","parameters":["bogus"]}`))
	c.Write(frame)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		body, err := agentproto.ReadFrame(c)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if m, _ := agentproto.Decode(body); m != nil && m.Header().Type == agentproto.TypeExportResponse {
			break
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("plugin ended by a signal: %v, stderr %s", err, stderr.String())
	case <-time.After(300 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after EOF: %v, stderr %s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("plugin still running 5 s after the agent hung up")
	}
}

// The request streams captured from agents 6.0.14 and 7.0.9 (see
// testdata/frames/README.md) replayed through the plugin program with the
// real metrics exporter: the captured options validate and configure, the
// bad parameter gets the metrics package's error, the others a count or the
// socket-table error, and the program exits 0.
func TestRunCapturedSessions(t *testing.T) {
	for _, agentVersion := range []string{"6.0.14", "7.0.9"} {
		for _, phase := range []string{"registration", "operational"} {
			t.Run(agentVersion+"/"+phase, func(t *testing.T) {
				raw, err := os.ReadFile(filepath.Join("..", "testdata", "frames", "agent-"+agentVersion, phase+".bin"))
				if err != nil {
					t.Fatal(err)
				}
				a := startRun(t, map[string]string{"registration": "true", "operational": "false"}[phase])
				for r := bytes.NewReader(raw); r.Len() > 0; {
					body, err := agentproto.ReadFrame(r)
					if err != nil {
						t.Fatal(err)
					}
					m, err := agentproto.Decode(body)
					if err != nil {
						t.Fatal(err)
					}
					a.send(string(body))
					switch m := m.(type) {
					case *agentproto.RegisterRequest:
						if r, ok := a.recv().(*agentproto.RegisterResponse); !ok || r.Error != "" || r.Name != "TCPStatus" {
							t.Errorf("register: %+v", r)
						}
					case *agentproto.ValidateRequest:
						if r, ok := a.recv().(*agentproto.ValidateResponse); !ok || r.Error != "" {
							t.Errorf("validate of the captured options: %+v", r)
						}
					case *agentproto.ExportRequest:
						r, ok := a.recv().(*agentproto.ExportResponse)
						switch {
						case !ok || r.ID != m.ID:
							t.Errorf("export %d: %+v", m.ID, r)
						case len(m.Params) > 0 && (m.Params[0] == "bogus" || m.Params[0] == `a"b`):
							if !strings.HasPrefix(r.Error, "Invalid first parameter: unknown state") {
								t.Errorf("%s%q: %+v", m.Key, m.Params, r)
							}
						case r.Error == "" && r.Value != nil && m.Key == "tcp.status" && regexp.MustCompile(`^\d+$`).MatchString(*r.Value):
						case r.Error == "" && r.Value != nil && m.Key == "tcp.status.get" && json.Valid([]byte(*r.Value)):
						case strings.HasPrefix(r.Error, "Cannot obtain socket table"):
						default:
							t.Errorf("%s%q: %+v (value %v)", m.Key, m.Params, r, r.Value)
						}
					case *agentproto.TerminateRequest:
						if m.ID == 0 {
							a.a.Close() // as agent 6.0 does
						}
					}
				}
				if code := a.exitCode(); code != 0 {
					t.Errorf("exit code %d", code)
				}
			})
		}
	}
}
