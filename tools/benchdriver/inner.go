package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/disks"
)

// The inner subcommand runs inside the load namespace (`ip netns exec`), so
// every tool, agent and reference program it starts sees the load.

// Result is one measured method at one load size: CPU, wall time and peak RSS
// per collection interval (Calls requests), medians over Reps intervals.
type Result struct {
	N        int     `json:"n"`
	Method   string  `json:"method"`
	Label    string  `json:"label"`
	Calls    int     `json:"calls"`
	Reps     int     `json:"reps"`
	CPUms    float64 `json:"cpu_ms"`
	CPUMinMs float64 `json:"cpu_min_ms"`
	CPUMaxMs float64 `json:"cpu_max_ms"`
	UserMs   float64 `json:"user_ms"` // -1: not measured separately
	SysMs    float64 `json:"sys_ms"`
	WallMs   float64 `json:"wall_ms"`
	RSSkB    int64   `json:"rss_kb"`
	Value    string  `json:"value"`           // what the method reported (TIME_WAIT count where it reports one)
	Ports    int     `json:"ports,omitempty"` // template intervals: the ports the template polls (old) or the load listens on (new)
	// Template intervals: the reference (ref mode) measured right after
	// each interval, its median CPU ms, and the median of the intervals'
	// ratios to the reference measured after them. Pairing each interval
	// with its own reference keeps the machine's drift out of the ratio.
	PairedRef   string  `json:"paired_ref,omitempty"`
	PairedRefMs float64 `json:"paired_ref_ms,omitempty"`
	PairedRatio float64 `json:"paired_ratio,omitempty"`
}

// sample is one measured interval.
type sample struct {
	cpu, user, sys, wall time.Duration
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func summarize(method, label string, calls int, ss []sample, rss int64, value string, splitKnown bool) Result {
	r := Result{Method: method, Label: label, Calls: calls, Reps: len(ss), RSSkB: rss, Value: value, UserMs: -1, SysMs: -1}
	var cpu, user, sys, wall []float64
	for _, s := range ss {
		cpu, user, sys, wall = append(cpu, ms(s.cpu)), append(user, ms(s.user)), append(sys, ms(s.sys)), append(wall, ms(s.wall))
	}
	r.CPUms, r.WallMs = median(cpu), median(wall)
	if len(cpu) > 0 {
		sort.Float64s(cpu)
		r.CPUMinMs, r.CPUMaxMs = cpu[0], cpu[len(cpu)-1]
	}
	if splitKnown {
		r.UserMs, r.SysMs = median(user), median(sys)
	}
	return r
}

type inner struct {
	light, heavy int
	tmplReps     int // measured intervals of the new template (0: light)
	port         int
	bin          string // directory with the built binaries
	agentBin     string
	zget         string
	self         string
	tmp          string
	profileDir   string
	gap          time.Duration // pause before every measured interval (longer than CacheTTL: each interval starts with an expired cache)
	templateOld  string        // template export of the "before" interval
	templateNew  string        // template export of the "after" interval, or "contract"
	binOld       string        // directory of the plugin built from the old template's release
	listenPorts  []string      // the load's listening ports
	tmplPorts    []int         // numbers of ports the old template polls
	results      []Result
	logf         func(string, ...any)
}

func innerMain(args []string) int {
	fs := flag.NewFlagSet("inner", flag.ExitOnError)
	in := &inner{}
	fs.IntVar(&in.light, "reps", 5, "measured intervals of the cheap methods")
	fs.IntVar(&in.heavy, "heavy-reps", 1, "measured intervals of the per-item tools (x11)")
	fs.IntVar(&in.tmplReps, "template-reps", 0, "measured intervals of the new template, each paired with a reference (0: -reps)")
	fs.IntVar(&in.port, "port", 22000, "the busy local port (tcp.port.get, port filters)")
	fs.StringVar(&in.bin, "bin", "bin", "directory of the built plugin")
	fs.StringVar(&in.agentBin, "agent", "/usr/sbin/zabbix_agent2", "zabbix_agent2 binary")
	fs.StringVar(&in.zget, "zabbix-get", "", "zabbix_get binary")
	fs.StringVar(&in.tmp, "tmp", os.TempDir(), "directory for agent configs and logs")
	fs.StringVar(&in.profileDir, "profile-dir", "", "write CPU profiles of the plugin's key handlers here (group profile)")
	only := fs.String("only", "", "comma-separated method groups to run (ref,core,plugin,template,builtin,tools); empty: all")
	fs.StringVar(&in.templateOld, "template-old", "", "template export whose interval is measured as before")
	fs.StringVar(&in.templateNew, "template-new", "", "template export whose interval is measured as after (contract: the bulk keys' contract)")
	listen := fs.String("listen-ports", "", "the load's listening ports, comma-separated")
	fs.StringVar(&in.binOld, "bin-old", "", "directory of the plugin the old template's interval runs (default: -bin)")
	tmplPorts := fs.String("template-ports", "1,30,100", "numbers of ports the old template polls")
	fs.Parse(args)
	if *listen != "" {
		in.listenPorts = strings.Split(*listen, ",")
	}
	var perr error
	if in.tmplPorts, perr = intList(*tmplPorts); perr != nil {
		fmt.Fprintf(os.Stderr, "benchdriver inner: %v\n", perr)
		return 2
	}
	in.logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "benchdriver: "+f+"\n", a...) }
	var err error
	if in.self, err = os.Executable(); err != nil {
		in.logf("%v", err)
		return 1
	}
	groups := map[string]bool{}
	for _, g := range strings.Split(*only, ",") {
		if g != "" {
			groups[g] = true
		}
	}
	want := func(g string) bool { return len(groups) == 0 || groups[g] }
	steps := []struct {
		group string
		f     func() error
	}{
		{"ref", in.refs},
		{"core", in.core},
		{"plugin", in.plugin},
		{"template", in.template},
		{"builtin", in.builtin},
		{"tools", in.tools},
		{"profile", in.profiles},
		{"ref", in.refAgain},
	}
	failed := false
	for _, s := range steps {
		if !want(s.group) {
			continue
		}
		if err := s.f(); err != nil {
			in.logf("%s: %v", s.group, err)
			failed = true
		}
	}
	json.NewEncoder(os.Stdout).Encode(in.results)
	if failed {
		return 1
	}
	return 0
}

func (in *inner) add(r Result) {
	in.logf("%-22s cpu %9.1f ms  wall %9.1f ms  rss %7d kB  value %s", r.Method, r.CPUms, r.WallMs, r.RSSkB, r.Value)
	in.results = append(in.results, r)
}

// ref runs `benchdriver ref` in mode reps times.
func (in *inner) ref(mode string, reps int) (refReport, error) {
	var rep refReport
	out, err := exec.Command(in.self, "ref", "-mode", mode, "-port", strconv.Itoa(in.port), "-reps", strconv.Itoa(reps)).Output()
	if err != nil {
		return rep, fmt.Errorf("ref %s: %w", mode, err)
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return rep, fmt.Errorf("ref %s: %w", mode, err)
	}
	return rep, nil
}

// runRef runs `benchdriver ref` and turns its report into a Result.
func (in *inner) runRef(method, label, mode string, reps int) error {
	rep, err := in.ref(mode, reps)
	if err != nil {
		return err
	}
	var ss []sample
	for _, r := range rep.Runs {
		ss = append(ss, sample{time.Duration(r.CPUNs), time.Duration(r.UserNs), time.Duration(r.SysNs), time.Duration(r.WallNs)})
	}
	v := ""
	if len(rep.Runs) > 0 {
		v = strconv.FormatUint(rep.Runs[0].Value, 10)
	}
	in.add(summarize(method, label, 1, ss, rep.MaxRSSkB, v, true))
	return nil
}

// profiles runs the plugin's key handlers in process (no agent) with a CPU
// profile each: where the plugin path spends its time.
func (in *inner) profiles() error {
	port := strconv.Itoa(in.port)
	for _, k := range []struct {
		name, key string
		cold      bool // profile the process's first call, without warm-up
	}{
		{"status-get", "tcp.status.get", false},
		{"sockets-get", "tcp.sockets.get", false},
		{"port-get", "tcp.port.get[" + port + "]", false},
		{"discovery-first", "tcp.port.discovery", true},
		{"discovery", "tcp.port.discovery", false},
		{"state", "tcp.status[time_wait]", false},
		{"port", "tcp.status[all," + port + "]", false},
	} {
		args := []string{"ref", "-mode", "export", "-key", k.key, "-reps", strconv.Itoa(in.light)}
		label := k.key + " handler in process, CacheTTL=0 (no agent)"
		if k.cold {
			args = []string{"ref", "-mode", "export", "-key", k.key, "-reps", "1", "-cold"}
			label = k.key + " handler in process, first call of the process (no agent)"
		}
		if in.profileDir != "" {
			args = append(args, "-cpuprofile", filepath.Join(in.profileDir, "export-"+k.name+".pprof"))
		}
		out, err := exec.Command(in.self, args...).Output()
		if err != nil {
			return fmt.Errorf("export %s: %w", k.key, err)
		}
		var rep refReport
		if err := json.Unmarshal(out, &rep); err != nil {
			return fmt.Errorf("export %s: %w", k.key, err)
		}
		var ss []sample
		for _, r := range rep.Runs {
			ss = append(ss, sample{time.Duration(r.CPUNs), time.Duration(r.UserNs), time.Duration(r.SysNs), time.Duration(r.WallNs)})
		}
		in.add(summarize("export-"+k.name, label, 1, ss, rep.MaxRSSkB, "", true))
	}
	return nil
}

func (in *inner) refs() error {
	for _, m := range []struct{ method, label, mode string }{
		{"nl-ref", "netlink dump x1, counted in place (reference)", "nl-all"},
		{"nl-ref-state", "netlink dump, kernel state mask TIME_WAIT", "nl-state"},
		{"nl-ref-port", "netlink dump, kernel port bytecode", "nl-port"},
		{"nl-ref-listen", "netlink dump, kernel state mask LISTEN", "nl-listen"},
		{"nl-bare", "netlink walk matching nothing (kernel floor)", "nl-bare"},
	} {
		if err := in.runRef(m.method, m.label, m.mode, in.light); err != nil {
			return err
		}
	}
	return nil
}

// refAgain repeats the reference at the end, to show the drift of the run.
func (in *inner) refAgain() error {
	return in.runRef("nl-ref-end", "netlink dump x1 again at the end (noise check)", "nl-all", in.light)
}

func (in *inner) core() error {
	for _, m := range []struct{ method, label, mode string }{
		{"core-netlink", "plugin socket core, netlink, all states (in-process)", "core-netlink"},
		{"core-netlink-state", "plugin socket core, netlink, one state (in-process)", "core-netlink-state"},
		{"core-netlink-port", "plugin socket core, netlink, one port (in-process)", "core-netlink-port"},
		{"core-proc", "plugin /proc fallback, all states (in-process)", "core-proc"},
		{"procfs", "prometheus/procfs NetTCP+NetTCP6 (in-process)", "procfs"},
	} {
		if err := in.runRef(m.method, m.label, m.mode, in.light); err != nil {
			return err
		}
	}
	return nil
}

var timeWaitRe = regexp.MustCompile(`"time_wait":(\d+)`)

// pluginKeys measures, in the plugin process, the CPU of each key of one
// interval, reps times after one warm-up interval. It adds one Result per
// key and one for the whole interval.
func (in *inner) pluginKeys(a *agent, prefix, label string, keys []string, names []string, reps int) error {
	for _, k := range keys { // warm-up; starts the plugin process
		if _, err := a.get(k); err != nil {
			return err
		}
	}
	pid, err := a.pluginPID()
	if err != nil {
		return err
	}
	per := make([][]sample, len(keys))
	var total []sample
	values := make([]string, len(keys))
	for r := 0; r < reps; r++ {
		time.Sleep(in.gap)
		var sum sample
		for i, k := range keys {
			c0, err := readCPU(pid)
			if err != nil {
				return err
			}
			t0 := time.Now()
			v, err := a.get(k)
			wall := time.Since(t0)
			if err != nil {
				return err
			}
			c1, err := readCPU(pid)
			if err != nil {
				return err
			}
			s := sample{cpu: time.Duration(cpuDelta(c0, c1)), user: time.Duration(c1.userNs - c0.userNs),
				sys: time.Duration(c1.sysNs - c0.sysNs), wall: wall}
			per[i] = append(per[i], s)
			sum.cpu += s.cpu
			sum.user += s.user
			sum.sys += s.sys
			sum.wall += s.wall
			values[i] = v
		}
		total = append(total, sum)
	}
	rss := peakRSSkB(pid)
	if names != nil {
		for i := range keys {
			v := values[i]
			if m := timeWaitRe.FindStringSubmatch(v); m != nil {
				v = m[1]
			} else if len(v) > 40 {
				v = v[:40] + "..."
			}
			in.add(summarize(prefix+"-"+names[i], keys[i], 1, per[i], rss, v, false))
		}
	}
	tw := ""
	for _, v := range values {
		if m := timeWaitRe.FindStringSubmatch(v); m != nil {
			tw = m[1]
			break
		}
	}
	switch {
	case names == nil && len(keys) == 11:
		tw = values[5]
	case len(keys) == 1 && tw == "":
		tw = values[0]
	}
	in.add(summarize(prefix, label, len(keys), total, rss, tw, false))
	return nil
}

// stateKeys are the 11 states in kernel order (index 5: time_wait).
var stateKeys = []string{"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close", "close_wait", "last_ack", "listen", "closing"}

func (in *inner) pluginBinary() (string, error) {
	p, err := filepath.Abs(filepath.Join(in.bin, "zabbix-agent2-plugin-tcpstatus"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// discovery measures tcp.port.discovery on an agent whose plugin has not
// run a discovery yet: the first call (cold owner cache) as prefix+"-first",
// then reps later calls as prefix. The template asks it once an hour.
func (in *inner) discovery(a *agent, prefix, label string, reps int) error {
	pid, err := a.pluginPID()
	if err != nil {
		return err
	}
	var first, later []sample
	value := ""
	for r := 0; r <= reps; r++ {
		c0, err := readCPU(pid)
		if err != nil {
			return err
		}
		t0 := time.Now()
		v, err := a.get("tcp.port.discovery")
		wall := time.Since(t0)
		if err != nil {
			return err
		}
		c1, err := readCPU(pid)
		if err != nil {
			return err
		}
		s := sample{cpu: time.Duration(cpuDelta(c0, c1)), user: time.Duration(c1.userNs - c0.userNs),
			sys: time.Duration(c1.sysNs - c0.sysNs), wall: wall}
		if r == 0 {
			first = append(first, s)
		} else {
			later = append(later, s)
		}
		value = v
	}
	if len(value) > 40 {
		value = value[:40] + "..."
	}
	rss := peakRSSkB(pid)
	in.add(summarize(prefix+"-first", label+": first call after the plugin started (cold owner cache)", 1, first, rss, value, false))
	in.add(summarize(prefix, label+": later calls (owner cache warm)", 1, later, rss, value, false))
	return nil
}

func (in *inner) plugin() error {
	plugin, err := in.pluginBinary()
	if err != nil {
		return err
	}
	port := strconv.Itoa(in.port)
	// The template's polled keys: tcp.status.get (master of the state items)
	// and tcp.port.get[{#PORT}] (master of one discovered port's items), both
	// at the item delay; tcp.port.discovery runs once an hour and is measured
	// on its own.
	interval := []string{"tcp.status.get", "tcp.port.get[" + port + "]"}
	names := []string{"status-get", "port-get"}
	configs := []struct {
		name string
		opts map[string]string
		run  func(a *agent) error
	}{
		{"ttl0", map[string]string{"CacheTTL": "0"}, func(a *agent) error {
			if err := in.pluginKeys(a, "plugin", "plugin in agent 2, CacheTTL=0 (every key reads): tcp.status.get + tcp.port.get", interval, names, in.light); err != nil {
				return err
			}
			if err := in.discovery(a, "plugin-discovery", "tcp.port.discovery", in.light); err != nil {
				return err
			}
			if err := in.pluginKeys(a, "plugin-state", "plugin tcp.status[time_wait], CacheTTL=0", []string{"tcp.status[time_wait]"}, nil, in.light); err != nil {
				return err
			}
			return in.pluginKeys(a, "plugin-port", "plugin tcp.status[all,"+port+"], CacheTTL=0", []string{"tcp.status[all," + port + "]"}, nil, in.light)
		}},
		{"cached", map[string]string{"CacheTTL": "1"}, func(a *agent) error {
			in.gap = 1100 * time.Millisecond // every interval's first key reads
			defer func() { in.gap = 0 }()
			if err := in.pluginKeys(a, "plugin-cached", "plugin in agent 2, CacheTTL=1 (default), keys back to back: the same interval", interval, names, in.light); err != nil {
				return err
			}
			var keys []string
			for _, s := range stateKeys {
				keys = append(keys, "tcp.status["+s+"]")
			}
			return in.pluginKeys(a, "plugin-cached-x11", "plugin tcp.status[<state>] x11, CacheTTL=1 (default)", keys, nil, in.light)
		}},
		{"proc", map[string]string{"CacheTTL": "0", "Source": "proc"}, func(a *agent) error {
			return in.pluginKeys(a, "plugin-proc", "plugin in agent 2, Source=proc, CacheTTL=0: the same interval", interval, nil, in.light)
		}},
	}
	for _, c := range configs {
		a, err := startAgent(in.agentBin, in.zget, plugin, filepath.Join(in.tmp, "agent-"+c.name), 10050, c.opts)
		if err != nil {
			return fmt.Errorf("agent %s: %w", c.name, err)
		}
		err = c.run(a)
		a.stop()
		if err != nil {
			return fmt.Errorf("agent %s: %w", c.name, err)
		}
	}
	return nil
}

// builtin measures agent 2's own net.tcp.socket.count[,,,,<state>] for the
// 11 states, as the agent process's CPU.
func (in *inner) builtin() error {
	a, err := startAgent(in.agentBin, in.zget, "", filepath.Join(in.tmp, "agent-builtin"), 10050, nil)
	if err != nil {
		return err
	}
	defer a.stop()
	if _, err := a.get("net.tcp.socket.count[,,,,listen]"); err != nil { // warm-up
		return err
	}
	var ss []sample
	tw := ""
	for r := 0; r < in.heavy; r++ {
		var sum sample
		for i, st := range stateKeys {
			c0, err := readCPU(a.pid())
			if err != nil {
				return err
			}
			t0 := time.Now()
			v, err := a.get("net.tcp.socket.count[,,,," + st + "]")
			wall := time.Since(t0)
			if err != nil {
				return err
			}
			c1, err := readCPU(a.pid())
			if err != nil {
				return err
			}
			sum.cpu += time.Duration(cpuDelta(c0, c1))
			sum.user += time.Duration(c1.userNs - c0.userNs)
			sum.sys += time.Duration(c1.sysNs - c0.sysNs)
			sum.wall += wall
			if i == 5 {
				tw = v
			}
		}
		ss = append(ss, sum)
	}
	in.add(summarize("builtin-x11", "agent 2 net.tcp.socket.count[,,,,<state>] x11", 11, ss, peakRSSkB(a.pid()), tw, false))
	return nil
}

// shell runs a pipeline and returns its CPU (the shell and every process it
// waited for), wall time, peak RSS and output.
func shell(script string) (sample, int64, string, error) {
	cmd := exec.Command("sh", "-c", script)
	t0 := time.Now()
	out, err := cmd.Output()
	wall := time.Since(t0)
	if err != nil {
		return sample{}, 0, "", fmt.Errorf("%s: %w", script, err)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return sample{}, 0, "", fmt.Errorf("%s: no rusage", script)
	}
	u, s := time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
	return sample{cpu: u + s, user: u, sys: s, wall: wall}, ru.Maxrss, strings.TrimSpace(string(out)), nil
}

// perItem runs one pipeline per state (the UserParameter way) and sums them.
func (in *inner) perItem(method, label string, script func(state int) string, reps int) error {
	var ss []sample
	var rss int64
	tw := ""
	for r := 0; r < reps; r++ {
		var sum sample
		for i := range stateKeys {
			s, m, out, err := shell(script(i))
			if err != nil {
				return err
			}
			sum.cpu += s.cpu
			sum.user += s.user
			sum.sys += s.sys
			sum.wall += s.wall
			rss = max(rss, m)
			if i == 5 {
				tw = out
			}
		}
		ss = append(ss, sum)
	}
	in.add(summarize(method, label, 11, ss, rss, tw, true))
	return nil
}

var (
	netstatNames = []string{"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"}
	ssNames      = []string{"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING"}
)

func (in *inner) tools() error {
	if err := in.perItem("netstat-x11", "seed UserParameter: netstat -an | awk, x11 states",
		func(i int) string {
			return fmt.Sprintf(`netstat -an | awk '/^tcp/ && $NF == "%s" {n++} END {print n+0}'`, netstatNames[i])
		}, in.heavy); err != nil {
		return err
	}
	if err := in.perItem("ss-x11", "ss -tan | awk, x11 states",
		func(i int) string {
			return fmt.Sprintf(`ss -tan | awk '$1 == "%s" {n++} END {print n+0}'`, ssNames[i])
		}, in.heavy); err != nil {
		return err
	}
	var ss []sample
	var rss int64
	tw := ""
	for r := 0; r < in.light; r++ {
		s, m, out, err := shell(`ss -tan | awk 'NR > 1 {c[$1]++} END {for (s in c) print s, c[s]}'`)
		if err != nil {
			return err
		}
		ss, rss = append(ss, s), max(rss, m)
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "TIME-WAIT" {
				tw = f[1]
			}
		}
	}
	in.add(summarize("ss-x1", "ss -tan | awk, all states in one run", 1, ss, rss, tw, true))
	ss, rss = nil, 0
	for r := 0; r < in.light; r++ {
		s, m, out, err := shell(`ss -tanH state time-wait | wc -l`)
		if err != nil {
			return err
		}
		ss, rss, tw = append(ss, s), max(rss, m), out
	}
	in.add(summarize("ss-state", "ss -tanH state time-wait | wc -l (kernel-filtered)", 1, ss, rss, tw, true))
	return nil
}

// intervalGap separates two requests of a template interval: Zabbix spreads
// a host's items over their delay at whole seconds by item id, so two
// requests of one host are at least about a second apart, and no request
// rides on another's read beyond what the default CacheTTL (1 s, counted
// from the start of a read) gives.
const intervalGap = 1050 * time.Millisecond

// templateInterval measures one interval of a template as a server polls
// it: every polled key once, intervalGap apart, the plugin's CPU read
// around each request and summed with the key's weight (its polls per
// minute: 0.2 for a 5-minute item). The plugin runs in a fresh agent 2
// with default options but opts. One warm-up interval is not measured.
//
// After each interval it measures one reference of refMode (the netlink
// dump, or one /proc parse for Source=proc) and reports the median of the
// intervals' ratios to their own reference.
func (in *inner) templateInterval(method, label, plugin string, opts map[string]string, polled []Polled, ports, reps int, refMode string) error {
	a, err := startAgent(in.agentBin, in.zget, plugin, filepath.Join(in.tmp, "agent-"+method), 10050, opts)
	if err != nil {
		return fmt.Errorf("agent %s: %w", method, err)
	}
	defer a.stop()
	for _, p := range polled { // warm-up; starts the plugin process
		if _, err := a.get(p.Key); err != nil {
			return err
		}
	}
	pid, err := a.pluginPID()
	if err != nil {
		return err
	}
	perKey := map[string][]float64{}
	var order []string
	var total []sample
	var calls float64
	var refs, ratios []float64
	tw := ""
	for r := 0; r < reps; r++ {
		var sum sample
		calls = 0
		for _, p := range polled {
			time.Sleep(intervalGap)
			c0, err := readCPU(pid)
			if err != nil {
				return err
			}
			t0 := time.Now()
			v, err := a.get(p.Key)
			wall := time.Since(t0)
			if err != nil {
				return err
			}
			c1, err := readCPU(pid)
			if err != nil {
				return err
			}
			cpu := float64(cpuDelta(c0, c1))
			sum.cpu += time.Duration(cpu * p.Weight)
			sum.user += time.Duration(float64(c1.userNs-c0.userNs) * p.Weight)
			sum.sys += time.Duration(float64(c1.sysNs-c0.sysNs) * p.Weight)
			sum.wall += time.Duration(float64(wall) * p.Weight)
			calls += p.Weight
			name := p.Key
			if p.What == "prototype" {
				name = prototypeName(p.Key)
			}
			if _, ok := perKey[name]; !ok {
				order = append(order, name)
			}
			perKey[name] = append(perKey[name], cpu*p.Weight/1e6)
			if m := timeWaitRe.FindStringSubmatch(v); m != nil && tw == "" {
				tw = m[1]
			}
		}
		total = append(total, sum)
		rep, err := in.ref(refMode, 1)
		if err != nil {
			return err
		}
		if len(rep.Runs) == 0 || rep.Runs[0].CPUNs <= 0 {
			return fmt.Errorf("ref %s: no run", refMode)
		}
		refs = append(refs, float64(rep.Runs[0].CPUNs)/1e6)
		ratios = append(ratios, ms(sum.cpu)/refs[len(refs)-1])
	}
	// The label lists what the interval is made of: CPU ms per minute by
	// key (summed over a prototype's instances), medians over reps.
	var parts []string
	for _, k := range order {
		v := perKey[k]
		per := make([]float64, 0, reps)
		n := len(v) / reps
		for r := 0; r < reps; r++ {
			s := 0.0
			for _, x := range v[r*n : (r+1)*n] {
				s += x
			}
			per = append(per, s)
		}
		parts = append(parts, fmt.Sprintf("%s %s", k, fmtMs(median(per))))
	}
	res := summarize(method, label+": "+strings.Join(parts, ", "), int(calls+0.5), total, peakRSSkB(pid), tw, false)
	res.Ports = ports
	res.PairedRef, res.PairedRefMs, res.PairedRatio = refMode, median(refs), median(ratios)
	in.logf("%-22s paired with %s after each interval: reference %s ms, ratios %v, median %.2f×", method, refMode, fmtMs(res.PairedRefMs), ratios, res.PairedRatio)
	in.add(res)
	return nil
}

// prototypeName replaces the parameters of a key with "*"
// (tcp.port.get[22] → tcp.port.get[*]), to sum a prototype's instances.
func prototypeName(key string) string {
	if i := strings.IndexByte(key, '['); i >= 0 {
		return key[:i] + "[*]"
	}
	return key
}

// template runs the template intervals: the new template once (its
// requests do not depend on the ports), the old one for each number of
// ports, each with the default source (netlink) and with Source=proc.
func (in *inner) template() error {
	if in.templateNew == "" && in.templateOld == "" {
		return nil
	}
	disks, err := benchDisks(4)
	if err != nil {
		return err
	}
	plugin, err := in.pluginBinary()
	if err != nil {
		return err
	}
	// The "before" interval runs the plugin of the old template's release
	// when given.
	oldPlugin, oldCode := plugin, "this plugin"
	if in.binOld != "" {
		if oldPlugin, err = filepath.Abs(filepath.Join(in.binOld, "zabbix-agent2-plugin-tcpstatus")); err != nil {
			return err
		}
		oldCode = "its plugin"
	}
	for _, src := range []struct {
		suffix, label string
		opts          map[string]string
		ref           string // the reference each interval is paired with
	}{{"", "default options", nil, "nl-all"}, {"-proc", "Source=proc", map[string]string{"Source": "proc"}, "core-proc"}} {
		if in.templateNew != "" {
			var polled []Polled
			if in.templateNew == "contract" {
				polled = contractPolled()
			} else {
				c, err := templateCost(in.templateNew, in.listenPorts, disks)
				if err != nil {
					return err
				}
				polled = c.Polled
			}
			label := fmt.Sprintf("new template, one interval (%d listening ports, %d disks), %s", len(in.listenPorts), len(disks), src.label)
			reps := in.light
			if in.tmplReps > 0 {
				reps = in.tmplReps
			}
			if err := in.templateInterval("tmpl-new"+src.suffix, label, plugin, src.opts, polled, len(in.listenPorts), reps, src.ref); err != nil {
				return err
			}
		}
		if in.templateOld == "" {
			continue
		}
		for _, p := range in.tmplPorts {
			if p > len(in.listenPorts) {
				return fmt.Errorf("%d ports asked, the load listens on %d", p, len(in.listenPorts))
			}
			c, err := templateCost(in.templateOld, in.listenPorts[:p], disks)
			if err != nil {
				return err
			}
			label := fmt.Sprintf("0.1.0 template and %s, one interval with %d ports, %d disks, %s", oldCode, p, len(disks), src.label)
			if err := in.templateInterval(fmt.Sprintf("tmpl-old-p%d%s", p, src.suffix), label, oldPlugin, src.opts, c.Polled, p, in.heavy, src.ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// benchDisks names up to n block devices that have counters, as the
// template's disk items would poll them: devices the template discovers
// first, then loop, RAM and similar devices (each costs a read of
// /proc/diskstats like a disk) when the machine has fewer disks.
func benchDisks(n int) ([]string, error) {
	fs, err := disks.NewFS("", "")
	if err != nil {
		return nil, err
	}
	all, err := fs.All()
	if err != nil {
		return nil, err
	}
	var real, other []string
	for _, d := range all {
		switch {
		case !d.InDiskstats:
		case virtualDisk.MatchString(d.Name):
			other = append(other, d.Name)
		default:
			real = append(real, d.Name)
		}
	}
	out := append(real, other...)
	return out[:min(n, len(out))], nil
}

// virtualDisk is what the 0.1.0 template's disk discovery skips by default.
var virtualDisk = regexp.MustCompile(`^(loop|ram|zram|sr|fd|nbd|dm-)[0-9]+$`)
