package agenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Version is an agent 2 release series the plugin is tested with.
type Version string

// Tested agent 2 series.
const (
	V60 Version = "6.0" // Debian bookworm's zabbix-agent2, installed
	V70 Version = "7.0" // bookworm-backports' zabbix-agent2, unpacked under the cache
)

// Versions returns every tested agent 2 series, oldest first.
func Versions() []Version { return []Version{V60, V70} }

// Environment variables the harness reads.
const (
	// EnvCache names the directory scripts/install-deps.sh unpacks the 7.0
	// agent and zabbix_get into.
	EnvCache = "TCPSTATUS_CACHE"
	// EnvRequire set to 1 turns every skip for a missing requirement (root,
	// agent, zabbix_get, ...) into a failure.
	EnvRequire = "TCPSTATUS_REQUIRE_AGENT"
)

// DefaultCache is the cache directory when $TCPSTATUS_CACHE is unset.
const DefaultCache = "/var/cache/tcpstatus-test"

// ClassicBinary is the classic agent of Debian's zabbix-agent package.
const ClassicBinary = "/usr/sbin/zabbix_agentd"

// AgentUser is the user the agents run as, as the Debian services do.
const AgentUser = "zabbix"

// CacheDir returns $TCPSTATUS_CACHE or DefaultCache.
func CacheDir() string {
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	return DefaultCache
}

// Binary returns the zabbix_agent2 executable of the series.
func (v Version) Binary() string {
	if v == V60 {
		return "/usr/sbin/zabbix_agent2"
	}
	return filepath.Join(CacheDir(), "agent2-"+string(v), "usr/sbin/zabbix_agent2")
}

// ZabbixGet returns the zabbix_get executable.
func ZabbixGet() string { return filepath.Join(CacheDir(), "zabbix-get/usr/bin/zabbix_get") }

// Option changes how an agent is started.
type Option func(*options)

type options struct {
	netns string
	conf  []string
}

// InNetns runs the agent, its -t runs and zabbix_get inside the existing
// network namespace name (/run/netns/<name>, as `ip netns add` creates it),
// so the plugin sees that namespace's sockets. Commands enter it with
// nsenter --net, which is lighter than ip netns exec (no mount namespace).
func InNetns(name string) Option { return func(o *options) { o.netns = name } }

// WithConf appends lines to the agent configuration, e.g.
// "Plugins.TCPStatus.CacheTTL=0".
func WithConf(lines ...string) Option {
	return func(o *options) { o.conf = append(o.conf, lines...) }
}

// Agent is one running private agent.
type Agent struct {
	t       testing.TB
	name    string // for messages: "zabbix_agent2 6.0", "zabbix_agentd"
	bin     string
	version Version // empty for the classic agent
	plugin  string  // System.Path of the plugin (agent 2)
	opts    options
	// base returns the configuration without the per-instance files.
	base func() []string
	dir  string
	port int

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	waitErr error
	tests   atomic.Int64 // numbers the -t configurations
}

// errPortBusy means the agent could not listen on its port.
var errPortBusy = errors.New("port in use")

var busyRe = regexp.MustCompile(`(?i)address already in use|cannot bind`)

// errStartRace is one of agent 2 6.0's races around the exit of the
// plugin's registration process (the process the agent starts first, to
// learn the plugin's keys, and ends at once). The agent watches for that exit
// in a goroutine of its own, and the process may end late:
//
//   - after the agent's main loop has started listening for SIGCHLD: both
//     reap it and the loser panics ("failed to obtain PID of dead child
//     process: no child processes"); the daemon dies at startup;
//   - in -t mode, while the agent is already starting the operational process:
//     the watcher reads the half-built process handle and panics (nil
//     pointer dereference in (*Plugin).CheckPid).
//
// Neither depends on what the plugin answers, only on scheduling (seen a few
// times in a hundred starts on a loaded machine). 7.0 reaps differently.
// The harness retries such a start.
var errStartRace = errors.New("agent 2 6.0 race at the plugin's registration exit")

var startRaceRe = regexp.MustCompile(`panic: failed to obtain PID of dead child process.*|(?s)panic: runtime error: invalid memory address or nil pointer dereference.*?\(\*Plugin\)\.CheckPid`)

// crashRe finds what a crashed or dying agent or plugin leaves in the log.
var crashRe = regexp.MustCompile(`(?i)panic|\bdied\b`)

// Start runs a private zabbix_agent2 of series v with the plugin built from
// this tree (PluginBinary) on a free loopback port, and waits until it
// answers agent.ping. The agent is stopped when the test ends, and the test
// fails if it crashed or logged a panic or a dead plugin.
func Start(t testing.TB, v Version, opts ...Option) *Agent {
	t.Helper()
	if v != V60 && v != V70 {
		t.Fatalf("agenttest: unknown agent version %q", v)
	}
	a := newAgent(t, "zabbix_agent2 "+string(v), v.Binary(), opts)
	a.version = v
	plugin := PluginBinary(t)
	if !reachable(plugin) {
		// A checkout user zabbix cannot enter (under /root): run a copy.
		plugin = copyExecutable(t, plugin, filepath.Join(a.dir, filepath.Base(plugin)))
	}
	a.plugin = plugin
	a.base = func() []string {
		return []string{
			"Plugins.TCPStatus.System.Path=" + plugin,
		}
	}
	a.launch()
	return a
}

// StartClassic runs a private classic zabbix_agentd with userParamConf (the
// text of a UserParameter file, e.g. scripts/userparameter_tcpstatus.conf)
// included, on a free loopback port, and waits until it answers agent.ping.
// It is stopped when the test ends, and the test fails if it crashed.
func StartClassic(t testing.TB, userParamConf string, opts ...Option) *Agent {
	t.Helper()
	a := newAgent(t, "zabbix_agentd", ClassicBinary, opts)
	up := filepath.Join(a.dir, "userparameter.conf")
	if err := os.WriteFile(up, []byte(userParamConf), 0o644); err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	a.base = func() []string { return []string{"Include=" + up} }
	a.launch()
	return a
}

// newAgent checks the requirements and prepares the agent's directory.
func newAgent(t testing.TB, name, bin string, opt []Option) *Agent {
	t.Helper()
	if testing.Short() {
		t.Skipf("agenttest: %s not started in -short mode", name)
	}
	var o options
	for _, f := range opt {
		f(&o)
	}
	need(t, os.Geteuid() == 0, "running %s as user %s needs root", name, AgentUser)
	need(t, executable(bin), "%s not found at %s (run scripts/install-deps.sh as root)", name, bin)
	need(t, executable(ZabbixGet()), "zabbix_get not found at %s (run scripts/install-deps.sh as root)", ZabbixGet())
	_, err := exec.LookPath("setpriv")
	need(t, err == nil, "setpriv (util-linux) not found")
	u, err := user.Lookup(AgentUser)
	need(t, err == nil, "user %s missing (installed with zabbix-agent2)", AgentUser)
	if o.netns != "" {
		_, err := exec.LookPath("nsenter")
		need(t, err == nil, "nsenter (util-linux) not found")
		if _, err := os.Stat(filepath.Join("/run/netns", o.netns)); err != nil {
			t.Fatalf("agenttest: network namespace %q: %v", o.netns, err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "tcpstatus-agent-")
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	return &Agent{t: t, name: name, bin: bin, opts: o, dir: dir}
}

// need skips the test, or fails it under TCPSTATUS_REQUIRE_AGENT=1, when ok
// is false.
func need(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("agenttest: %s (%s=1 forbids skipping)", msg, EnvRequire)
	}
	t.Skipf("agenttest: %s", msg)
}

// reachable reports whether every directory above path can be entered by
// any user, so the agent's user can run it.
func reachable(path string) bool {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// copyExecutable copies the executable src to dst (mode 0755) and returns dst.
func copyExecutable(t testing.TB, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o755)
	}
	if err != nil {
		t.Fatalf("agenttest: copy %s: %v", src, err)
	}
	return dst
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// conf builds the configuration of the daemon (prefix "agent") or of one
// -t run (prefix "test-N"): every file and socket of its own.
func (a *Agent) conf(prefix string) []string {
	lines := []string{
		"# private agent of a test (internal/agenttest)",
		"LogType=file",
		"LogFile=" + filepath.Join(a.dir, prefix+".log"),
		"LogFileSize=0",
		"DebugLevel=4",
		"PidFile=" + filepath.Join(a.dir, prefix+".pid"),
		"ListenIP=127.0.0.1",
		"ListenPort=" + strconv.Itoa(a.port),
		"Server=127.0.0.1",
		"Hostname=tcpstatus-test",
		"Timeout=3",
	}
	if a.version != "" {
		lines = append(lines,
			"ControlSocket="+filepath.Join(a.dir, prefix+".ctl"),
			"PluginSocket="+filepath.Join(a.dir, prefix+".plugin.sock"))
	}
	lines = append(lines, a.base()...)
	return append(lines, a.opts.conf...)
}

func (a *Agent) writeConf(prefix string) (string, error) {
	path := filepath.Join(a.dir, prefix+".conf")
	return path, os.WriteFile(path, []byte(strings.Join(a.conf(prefix), "\n")+"\n"), 0o644)
}

// command builds a command run in the agent's network namespace, if any,
// and as AgentUser when asAgent is set (dying with the test binary).
func (a *Agent) command(ctx context.Context, asAgent bool, bin string, args ...string) *exec.Cmd {
	var argv []string
	if a.opts.netns != "" {
		argv = append(argv, "nsenter", "--net="+filepath.Join("/run/netns", a.opts.netns), "--")
	}
	if asAgent {
		argv = append(argv, "setpriv", "--reuid="+AgentUser, "--regid="+AgentUser, "--init-groups", "--pdeathsig=KILL", "--")
	}
	argv = append(argv, bin)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = a.dir
	return cmd
}

// launch starts the daemon, retrying on another port when the chosen one is
// taken, and registers its stop.
func (a *Agent) launch() {
	t := a.t
	t.Helper()
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		a.port = pickPort(a.opts.netns == "")
		if err = a.spawn(); err == nil {
			err = a.waitReady(30 * time.Second)
		}
		if err == nil {
			t.Cleanup(a.cleanup)
			return
		}
		a.kill()
		if errors.Is(err, errStartRace) {
			t.Logf("agenttest: %s hit its SIGCHLD race at startup (%v); starting it again", a.name, err)
			continue
		}
		if !errors.Is(err, errPortBusy) {
			break
		}
	}
	t.Fatalf("agenttest: %s did not start: %v\n%s", a.name, err, tail(a.Log(), 60))
}

// pickPort returns a random port below the ephemeral range (32768 and up),
// checked free on the host's loopback when the agent runs there.
func pickPort(check bool) int {
	for {
		p := 20000 + rand.IntN(12000)
		if !check {
			return p
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p
		}
	}
}

func (a *Agent) spawn() error {
	for _, f := range []string{"agent.log", "console.log", "agent.pid"} {
		os.Remove(filepath.Join(a.dir, f))
	}
	conf, err := a.writeConf("agent")
	if err != nil {
		return err
	}
	console, err := os.Create(filepath.Join(a.dir, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	cmd := a.command(context.Background(), true, a.bin, "-f", "-c", conf)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := startCmd(cmd); err != nil {
		return fmt.Errorf("start %s: %w", a.name, err)
	}
	a.cmd = cmd
	a.exited = make(chan struct{})
	go func() {
		a.waitErr = cmd.Wait()
		close(a.exited)
	}()
	return nil
}

// waitReady polls agent.ping until the agent answers 1 or exits.
func (a *Agent) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-a.exited:
			log := a.Log()
			if busyRe.MatchString(log) {
				return errPortBusy
			}
			if m := startRaceRe.FindString(log); m != "" {
				return fmt.Errorf("%w: %s", errStartRace, m)
			}
			return fmt.Errorf("exited: %v", a.waitErr)
		default:
		}
		v, err := a.get("agent.ping", 2)
		if err == nil && v == "1" {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer to agent.ping within %v (last: %v)", limit, last)
}

// kill stops the daemon at once (failed start).
func (a *Agent) kill() {
	if a.cmd == nil {
		return
	}
	select {
	case <-a.exited:
	default:
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exited
	}
}

// cleanup stops the agent (SIGTERM, then SIGKILL to its process group after
// 15 s) and fails the test if it had exited on its own, did not stop, or
// logged a crash.
func (a *Agent) cleanup() {
	t := a.t
	early := false
	select {
	case <-a.exited:
		early = true
	default:
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
			<-a.exited
			t.Errorf("agenttest: %s did not stop within 15 s of SIGTERM; killed\n%s", a.name, tail(a.Log(), 60))
			return
		}
	}
	log := a.Log()
	crash := crashRe.FindString(log)
	switch {
	case early && crash != "":
		t.Errorf("agenttest: %s exited before the end of the test (%v); its log shows a crash (%q):\n%s",
			a.name, a.waitErr, crash, around(log, crashRe, 30))
	case early:
		t.Errorf("agenttest: %s exited before the end of the test (%v):\n%s", a.name, a.waitErr, tail(log, 60))
	case crash != "":
		t.Errorf("agenttest: %s log shows a crash (%q):\n%s", a.name, crash, around(log, crashRe, 30))
	case t.Failed():
		t.Logf("agenttest: %s log (end):\n%s", a.name, tail(log, 40))
	}
}

// Get asks the agent for key through zabbix_get. A ZBX_NOTSUPPORTED answer
// is returned as a *NotSupported error holding the agent's reason; a failure
// to talk to the agent as another error.
func (a *Agent) Get(key string) (string, error) { return a.get(key, 15) }

func (a *Agent) get(key string, timeoutSec int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutSec+10)*time.Second)
	defer cancel()
	cmd := a.command(ctx, false, ZabbixGet(), "-s", "127.0.0.1", "-p", strconv.Itoa(a.port),
		"-t", strconv.Itoa(timeoutSec), "-k", key)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("zabbix_get -k %s: %w: %s", key, err, strings.TrimSpace(stderr.String()))
	}
	return parseGetOutput(stdout.String())
}

// Test runs `zabbix_agent2 -t key` (`zabbix_agentd -t key` for the classic
// agent) as user zabbix, in the agent's namespace, with a configuration of
// its own: own plugin and control sockets, PID and log files, never the
// daemon's. Results are returned like Get's.
func (a *Agent) Test(key string) (string, error) {
	prefix := fmt.Sprintf("test-%d", a.tests.Add(1))
	conf, err := a.writeConf(prefix)
	if err != nil {
		return "", err
	}
	for attempt := 1; ; attempt++ {
		stdout, out, err := a.runTest(conf, key)
		if err != nil && attempt < 3 && a.version == V60 && startRaceRe.MatchString(out) {
			a.t.Logf("agenttest: %s -t %s hit its race at the plugin's registration exit; running it again", a.name, key)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s -t %s: %w: %s", a.name, key, err, shorten(out))
		}
		return parseTestOutput(key, stdout)
	}
}

// runTest runs one -t and returns its standard output, and its standard
// output followed by its standard error.
func (a *Agent) runTest(conf, key string) (stdout, all string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := a.command(ctx, true, a.bin, "-c", conf, "-t", key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = runCmd(cmd)
	return out.String(), out.String() + errOut.String(), err
}

// Runtime sends a runtime control command (zabbix_agent2 -R, e.g.
// "metrics") to the daemon through its control socket and returns the
// answer. Agent 2 only.
func (a *Agent) Runtime(command string) (string, error) {
	if a.version == "" {
		return "", errors.New("runtime commands: agent 2 only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := a.command(ctx, true, a.bin, "-c", filepath.Join(a.dir, "agent.conf"), "-R", command)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := runCmd(cmd); err != nil {
		return "", fmt.Errorf("%s -R %s: %w: %s", a.name, command, err, out.String())
	}
	return out.String(), nil
}

// Alive returns nil when the agent process is running and answers
// agent.ping with 1.
func (a *Agent) Alive() error {
	select {
	case <-a.exited:
		return fmt.Errorf("%s has exited: %v", a.name, a.waitErr)
	default:
	}
	v, err := a.Get("agent.ping")
	if err != nil {
		return fmt.Errorf("%s: agent.ping: %w", a.name, err)
	}
	if v != "1" {
		return fmt.Errorf("%s: agent.ping returned %q", a.name, v)
	}
	return nil
}

// Log returns the agent's log so far, followed by what it wrote on its
// standard output and error (where a Go panic of agent 2 goes).
func (a *Agent) Log() string {
	var b strings.Builder
	if log, err := os.ReadFile(filepath.Join(a.dir, "agent.log")); err == nil {
		b.Write(log)
	}
	if console, err := os.ReadFile(filepath.Join(a.dir, "console.log")); err == nil && len(console) > 0 {
		b.WriteString("--- standard output and error ---\n")
		b.Write(console)
	}
	return b.String()
}

// PID is the agent's process id.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// PluginPath is the plugin executable the agent runs
// (Plugins.TCPStatus.System.Path); empty for the classic agent.
func (a *Agent) PluginPath() string { return a.plugin }

// Port is the loopback TCP port the agent listens on.
func (a *Agent) Port() int { return a.port }

// Version is the agent 2 series, empty for the classic agent.
func (a *Agent) Version() Version { return a.version }

// Dir is the agent's private directory (configuration, log, sockets).
func (a *Agent) Dir() string { return a.dir }

// Netns is the network namespace the agent runs in, empty for the host's.
func (a *Agent) Netns() string { return a.opts.netns }

// Name describes the agent for messages, e.g. "zabbix_agent2 7.0".
func (a *Agent) Name() string { return a.name }

// tail returns the last n lines of s, repeated lines folded.
func tail(s string, n int) string {
	lines := fold(strings.Split(strings.TrimRight(s, "\n"), "\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// around returns the lines around the first match of re in s, repeated
// lines folded.
func around(s string, re *regexp.Regexp, n int) string {
	lines := fold(strings.Split(s, "\n"))
	for i, l := range lines {
		if re.MatchString(l) {
			lo, hi := max(0, i-n/3), min(len(lines), i+n)
			return strings.Join(lines[lo:hi], "\n")
		}
	}
	return tail(s, n)
}

// fold replaces runs of lines that differ only in their log timestamp by
// the first one and a count (agent 2 6.0 logs the same read error hundreds
// of times when a plugin ends).
func fold(lines []string) []string {
	var out []string
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && untimed(lines[j]) == untimed(lines[i]) {
			j++
		}
		out = append(out, lines[i])
		if j-i > 1 {
			out = append(out, fmt.Sprintf("    (the line above %d times)", j-i))
		}
		i = j
	}
	return out
}

// untimed strips an agent log timestamp from the start of a line.
func untimed(l string) string {
	if loc := logLineRe.FindStringIndex(l); loc != nil {
		return l[loc[1]:]
	}
	return l
}
