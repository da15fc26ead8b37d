package agent

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

// Spec says how to run one private agent.
type Spec struct {
	// Name describes the agent in messages, e.g. "zabbix_agent2 7.0".
	Name string
	// Bin is the agent executable.
	Bin string
	// Version is the agent 2 series; empty for the classic agent.
	Version Version
	// Dir is the agent's private directory (configuration, log, PID file,
	// sockets); it must exist and be writable by User.
	Dir string
	// User runs the agent, its -t runs and -R commands as this user
	// (setpriv, with a parent-death signal); empty: as the caller.
	User string
	// Netns runs the agent, its -t runs and zabbix_get inside the network
	// namespace of that name (/run/netns/<name>), entered with nsenter.
	Netns string
	// Port is the loopback port to listen on; 0 picks a free one below the
	// ephemeral range and tries another when it turns out taken.
	Port int
	// Hostname, Timeout and DebugLevel are the agent's options of those
	// names; defaults tcpstatus-test, 3 and 4.
	Hostname   string
	Timeout    int
	DebugLevel int
	// Conf holds further configuration lines: the plugin's
	// Plugins.TCPStatus.System.Path, an Include, plugin options.
	Conf []string
	// ZabbixGet is the zabbix_get that Get and the readiness ping use;
	// default ZabbixGet().
	ZabbixGet string
	// ReadyOnListen makes Start wait for the port to accept connections
	// instead of for agent.ping to answer 1 (no zabbix_get needed).
	ReadyOnListen bool
	// Logf, if set, is told about starts that are tried again.
	Logf func(format string, args ...any)
}

// Agent is one running private agent.
type Agent struct {
	spec Spec
	name string

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
// Start and Test try such a start again; this is the one place that knows
// the race.
var errStartRace = errors.New("agent 2 6.0 race at the plugin's registration exit")

var startRaceRe = regexp.MustCompile(`panic: failed to obtain PID of dead child process.*|(?s)panic: runtime error: invalid memory address or nil pointer dereference.*?\(\*Plugin\)\.CheckPid`)

// crashRe finds what a crashed or dying agent or plugin leaves in the log.
var crashRe = regexp.MustCompile(`(?i)panic|\bdied\b`)

// Missing lists what the machine lacks to run the agent of s: the
// executables, zabbix_get, setpriv and the user, nsenter and the namespace.
// Empty when s can run.
func Missing(s Spec) []string {
	var out []string
	need := func(ok bool, format string, args ...any) {
		if !ok {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	need(executable(s.Bin), "%s not found at %s (run scripts/install-deps.sh as root)", s.name(), s.Bin)
	if !s.ReadyOnListen {
		zget := s.zabbixGet()
		need(executable(zget), "zabbix_get not found at %s (run scripts/install-deps.sh as root)", zget)
	}
	if s.User != "" {
		need(os.Geteuid() == 0, "running %s as user %s needs root", s.name(), s.User)
		_, err := exec.LookPath("setpriv")
		need(err == nil, "setpriv (util-linux) not found")
		_, err = user.Lookup(s.User)
		need(err == nil, "user %s missing (installed with zabbix-agent2)", s.User)
	}
	if s.Netns != "" {
		_, err := exec.LookPath("nsenter")
		need(err == nil, "nsenter (util-linux) not found")
		_, err = os.Stat(filepath.Join("/run/netns", s.Netns))
		need(err == nil, "network namespace %q: %v", s.Netns, err)
	}
	return out
}

// NewDir makes a private directory for an agent run as user (the caller
// when empty): mode 0755, owned by that user. The caller removes it.
func NewDir(user string) (string, error) {
	dir, err := os.MkdirTemp("", "tcpstatus-agent-")
	if err == nil && user != "" {
		err = chownTo(dir, user)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func chownTo(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

func (s Spec) name() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Version != "":
		return "zabbix_agent2 " + string(s.Version)
	}
	return "zabbix_agentd"
}

func (s Spec) withDefaults() Spec {
	if s.Hostname == "" {
		s.Hostname = "tcpstatus-test"
	}
	if s.Timeout == 0 {
		s.Timeout = 3
	}
	if s.DebugLevel == 0 {
		s.DebugLevel = 4
	}
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	if s.Port == 0 {
		s.Port = pickPort(s.Netns == "")
	}
	return s
}

func (s Spec) zabbixGet() string {
	if s.ZabbixGet != "" {
		return s.ZabbixGet
	}
	return ZabbixGet()
}

// Start runs the agent of s and waits until it is ready (agent.ping answers
// 1, or with ReadyOnListen its port accepts), within 30 s. A start that hits
// agent 2 6.0's start race, or finds a port it picked taken, is tried again
// (5 starts at most). Stop ends it.
func Start(s Spec) (*Agent, error) {
	pick := s.Port == 0
	s = s.withDefaults()
	a := &Agent{spec: s, name: s.name()}
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if pick && attempt > 1 {
			a.spec.Port = pickPort(s.Netns == "")
		}
		if err = a.spawn(); err == nil {
			err = a.waitReady(30 * time.Second)
		}
		if err == nil {
			return a, nil
		}
		a.kill()
		if errors.Is(err, errStartRace) {
			s.Logf("%s hit its SIGCHLD race at startup (%v); starting it again", a.name, err)
			continue
		}
		if !pick || !errors.Is(err, errPortBusy) {
			break
		}
	}
	return nil, fmt.Errorf("%s did not start: %w\n%s", a.name, err, tail(a.Log(), 60))
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// conf builds the configuration of the daemon (prefix "agent") or of one
// -t run (prefix "test-N"): every file and socket of its own.
func (a *Agent) conf(prefix string) []string {
	dir := a.spec.Dir
	lines := []string{
		"# private agent of a test (testkit/agent)",
		"LogType=file",
		"LogFile=" + filepath.Join(dir, prefix+".log"),
		"LogFileSize=0",
		"DebugLevel=" + strconv.Itoa(a.spec.DebugLevel),
		"PidFile=" + filepath.Join(dir, prefix+".pid"),
		"ListenIP=127.0.0.1",
		"ListenPort=" + strconv.Itoa(a.spec.Port),
		"Server=127.0.0.1",
		"Hostname=" + a.spec.Hostname,
		"Timeout=" + strconv.Itoa(a.spec.Timeout),
	}
	if a.spec.Version != "" {
		lines = append(lines,
			"ControlSocket="+filepath.Join(dir, prefix+".ctl"),
			"PluginSocket="+filepath.Join(dir, prefix+".plugin.sock"))
	}
	return append(lines, a.spec.Conf...)
}

func (a *Agent) writeConf(prefix string) (string, error) {
	path := filepath.Join(a.spec.Dir, prefix+".conf")
	return path, os.WriteFile(path, []byte(strings.Join(a.conf(prefix), "\n")+"\n"), 0o644)
}

// command builds a command run in the agent's network namespace, if any,
// and as the agent's user when asAgent is set (dying with the caller).
func (a *Agent) command(ctx context.Context, asAgent bool, bin string, args ...string) *exec.Cmd {
	var argv []string
	if a.spec.Netns != "" {
		argv = append(argv, "nsenter", "--net="+filepath.Join("/run/netns", a.spec.Netns), "--")
	}
	if asAgent && a.spec.User != "" {
		u := a.spec.User
		argv = append(argv, "setpriv", "--reuid="+u, "--regid="+u, "--init-groups", "--pdeathsig=KILL", "--")
	}
	argv = append(argv, bin)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = a.spec.Dir
	return cmd
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
		os.Remove(filepath.Join(a.spec.Dir, f))
	}
	conf, err := a.writeConf("agent")
	if err != nil {
		return err
	}
	console, err := os.Create(filepath.Join(a.spec.Dir, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	cmd := a.command(context.Background(), true, a.spec.Bin, "-f", "-c", conf)
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

// waitReady waits until the agent is ready or exits.
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
		if a.spec.ReadyOnListen {
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.spec.Port)), time.Second)
			if err == nil {
				c.Close()
				return nil
			}
			last = err
		} else {
			v, err := a.GetWithin("agent.ping", 2)
			if err == nil && v == "1" {
				return nil
			}
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v (last: %v)", limit, last)
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

// Stop ends the agent: SIGTERM, then SIGKILL to its process group after
// 15 s. It returns an error if the agent had exited on its own before, did
// not stop, or logged a crash (a panic, a dead plugin).
func (a *Agent) Stop() error {
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
			return fmt.Errorf("%s did not stop within 15 s of SIGTERM; killed\n%s", a.name, tail(a.Log(), 60))
		}
	}
	log := a.Log()
	crash := crashRe.FindString(log)
	switch {
	case early && crash != "":
		return fmt.Errorf("%s exited before it was stopped (%v); its log shows a crash (%q):\n%s",
			a.name, a.waitErr, crash, around(log, crashRe, 30))
	case early:
		return fmt.Errorf("%s exited before it was stopped (%v):\n%s", a.name, a.waitErr, tail(log, 60))
	case crash != "":
		return fmt.Errorf("%s log shows a crash (%q):\n%s", a.name, crash, around(log, crashRe, 30))
	}
	return nil
}

// Kill sends SIGKILL to the agent process alone, not to its plugin
// processes (as the OOM killer ends an agent), and waits for it to end.
func (a *Agent) Kill() error {
	if err := a.cmd.Process.Kill(); err != nil {
		return err
	}
	<-a.exited
	return nil
}

// Run runs the agent of s in the foreground until it exits by itself (an
// agent expected to refuse its configuration), at most until ctx ends. It
// returns what the agent printed followed by its log, and its exit error.
func Run(ctx context.Context, s Spec) (string, error) {
	a := &Agent{spec: s.withDefaults(), name: s.name()}
	conf, err := a.writeConf("agent")
	if err != nil {
		return "", err
	}
	out, runErr := a.command(ctx, true, a.spec.Bin, "-f", "-c", conf).CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s still running: %w", a.name, ctx.Err())
	}
	log, _ := os.ReadFile(filepath.Join(a.spec.Dir, "agent.log"))
	return string(out) + string(log), runErr
}

// Exited reports whether the agent process has ended, and how.
func (a *Agent) Exited() (bool, error) {
	select {
	case <-a.exited:
		return true, a.waitErr
	default:
		return false, nil
	}
}

// LogTail is the end of the agent's log, repeated lines folded.
func (a *Agent) LogTail(lines int) string { return tail(a.Log(), lines) }

// Get asks the agent for key through zabbix_get (15 s). A ZBX_NOTSUPPORTED
// answer is returned as a *NotSupported error holding the agent's reason; a
// failure to talk to the agent as another error.
func (a *Agent) Get(key string) (string, error) { return a.GetWithin(key, 15) }

// GetWithin is Get with zabbix_get's timeout in seconds.
func (a *Agent) GetWithin(key string, timeoutSec int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutSec+10)*time.Second)
	defer cancel()
	cmd := a.command(ctx, false, a.spec.zabbixGet(), "-s", "127.0.0.1", "-p", strconv.Itoa(a.spec.Port),
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
		if err != nil && attempt < 3 && a.spec.Version == V60 && startRaceRe.MatchString(out) {
			a.spec.Logf("%s -t %s hit its race at the plugin's registration exit; running it again", a.name, key)
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
	cmd := a.command(ctx, true, a.spec.Bin, "-c", conf, "-t", key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = runCmd(cmd)
	return out.String(), out.String() + errOut.String(), err
}

// Runtime sends a runtime control command (zabbix_agent2 -R, e.g.
// "metrics") to the daemon through its control socket and returns the
// answer. Agent 2 only.
func (a *Agent) Runtime(command string) (string, error) {
	if a.spec.Version == "" {
		return "", errors.New("runtime commands: agent 2 only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := a.command(ctx, true, a.spec.Bin, "-c", filepath.Join(a.spec.Dir, "agent.conf"), "-R", command)
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
	if log, err := os.ReadFile(filepath.Join(a.spec.Dir, "agent.log")); err == nil {
		b.Write(log)
	}
	if console, err := os.ReadFile(filepath.Join(a.spec.Dir, "console.log")); err == nil && len(console) > 0 {
		b.WriteString("--- standard output and error ---\n")
		b.Write(console)
	}
	return b.String()
}

// PID is the agent's process id.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// PluginPath is the plugin executable the agent runs (its
// Plugins.TCPStatus.System.Path line); empty when it has none.
func (a *Agent) PluginPath() string {
	for _, l := range a.spec.Conf {
		if p, ok := strings.CutPrefix(l, pluginPathOption+"="); ok {
			return p
		}
	}
	return ""
}

// pluginPathOption is where the agent finds the plugin's executable.
const pluginPathOption = "Plugins.TCPStatus.System.Path"

// PluginConf is the configuration line that loads the plugin at path.
func PluginConf(path string) string { return pluginPathOption + "=" + path }

// Port is the loopback TCP port the agent listens on.
func (a *Agent) Port() int { return a.spec.Port }

// Version is the agent 2 series, empty for the classic agent.
func (a *Agent) Version() Version { return a.spec.Version }

// Dir is the agent's private directory (configuration, log, sockets).
func (a *Agent) Dir() string { return a.spec.Dir }

// Netns is the network namespace the agent runs in, empty for the host's.
func (a *Agent) Netns() string { return a.spec.Netns }

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
