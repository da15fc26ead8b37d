// Command benchdriver measures what one collection interval of TCP state
// monitoring costs at several load sizes: the plugin inside a real agent 2
// daemon, agent 2's built-in net.tcp.socket.count, the netstat and ss
// UserParameter pipelines, the plugin's /proc fallback and socket core in
// process, prometheus/procfs, and a minimal netlink dump as the kernel
// reference (plus kernel-filtered dumps for single-state and single-port
// queries). For every size it starts tools/loadgen (which builds the socket
// mix in its own network namespace), runs every method inside that namespace,
// stops the load, and finally writes results.json, results.csv and
// results.md to -out. Needs root.
//
//	benchdriver -n 10000,100000,1000000 -loadgen /tmp/loadgen -out docs/bench
//
// Subcommands used by the driver itself: `inner` (the measurements, run in
// the namespace) and `ref` (one in-process counting method).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"zabbix-agent2-plugin-tcpstatus/tools/loadgen/ready"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "inner":
			os.Exit(innerMain(os.Args[2:]))
		case "ref":
			os.Exit(refMain(os.Args[2:]))
		case "templates":
			os.Exit(templatesMain(os.Args[2:]))
		case "report":
			os.Exit(reportMain(os.Args[2:]))
		}
	}
	os.Exit(outerMain(os.Args[1:]))
}

// Run is one load size.
type Run struct {
	Nominal       int          `json:"n_nominal"`
	Sockets       uint64       `json:"sockets"`
	Load          ready.Report `json:"load"`
	LoadAvgBefore string       `json:"loadavg_before"`
	LoadAvgAfter  string       `json:"loadavg_after"`
	Seconds       float64      `json:"seconds"`
	Results       []Result     `json:"results"`
	Error         string       `json:"error,omitempty"`
}

// Report is results.json.
type Report struct {
	Started time.Time         `json:"started"`
	Machine map[string]string `json:"machine"`
	Runs    []Run             `json:"runs"`
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(l)
}

func machine(agentBin string) map[string]string {
	m := map[string]string{
		"kernel":  firstLine("uname", "-r"),
		"cpus":    strconv.Itoa(runtime.NumCPU()),
		"go":      runtime.Version(),
		"agent":   firstLine(agentBin, "-V"),
		"ss":      firstLine("ss", "-V"),
		"netstat": firstLine("netstat", "-V"),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		m["memory"] = strings.Join(strings.Fields(l)[1:], " ")
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		m["debian"] = strings.TrimSpace(string(b))
	}
	return m
}

func findZabbixGet(flagged string) (string, error) {
	cands := []string{flagged, os.Getenv("ZABBIX_GET")}
	cache := os.Getenv("TCPSTATUS_CACHE")
	if cache == "" {
		cache = "/var/cache/tcpstatus-test"
	}
	cands = append(cands, filepath.Join(cache, "zabbix-get/usr/bin/zabbix_get"))
	if p, err := exec.LookPath("zabbix_get"); err == nil {
		cands = append(cands, p)
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return filepath.Abs(c)
		}
	}
	return "", errors.New("zabbix_get not found (set -zabbix-get or $ZABBIX_GET, or run scripts/install-deps.sh)")
}

func outerMain(args []string) int {
	fs := flag.NewFlagSet("benchdriver", flag.ExitOnError)
	sizes := fs.String("n", "10000,100000,1000000", "comma-separated load sizes (sockets)")
	out := fs.String("out", "docs/bench", "directory for results.json, results.csv, results.md")
	bin := fs.String("bin", "bin", "directory of the built plugin")
	loadgen := fs.String("loadgen", "bin/loadgen", "the tools/loadgen binary")
	agentBin := fs.String("agent", "/usr/sbin/zabbix_agent2", "zabbix_agent2 (6.0) binary")
	zget := fs.String("zabbix-get", "", "zabbix_get binary (default: $ZABBIX_GET, the test cache, PATH)")
	quick := fs.Bool("quick", false, "one interval per method (smoke run)")
	only := fs.String("only", "", "method groups to run (ref,core,plugin,builtin,tools,profile); empty: all")
	check := fs.Bool("check", false, "fail when a method's TIME_WAIT or total count disagrees with the load (smoke test)")
	profiles := fs.Bool("profiles", true, "keep CPU profiles of the plugin's key handlers at the largest size in -out/pprof")
	tmplOld := fs.String("template-old", "", "template export (6.0 XML) whose interval is measured as \"before\" (e.g. the 0.1.0 template from git)")
	tmplNew := fs.String("template-new", "", "template export whose interval is measured as \"after\" (several, comma-separated, add up: the templates of one host), or \"contract\" for the bulk keys' contract")
	tmplPorts := fs.String("template-ports", "1,30,100", "numbers of ports the old template polls (its per-port items)")
	listeners := fs.Int("listeners", 100, "extra listening ports of the load (loadgen -listeners), beyond its 3 per worker")
	tmplReps := fs.Int("template-reps", 0, "measured intervals of the new template, each paired with a reference measured after it (0: as the size's other methods)")
	dests := fs.Int("destinations", 0, "IPv4 destination addresses of the load's clients (loadgen -destinations); 0: 127.0.0.1 only")
	binOld := fs.String("bin-old", "", "directory of the plugin built from the old template's release, for the \"before\" interval (default: -bin)")
	fs.Parse(args)
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "benchdriver: "+f+"\n", a...) }
	for _, p := range []*string{tmplOld, tmplNew, binOld} {
		if *p != "" && *p != "contract" {
			*p, _ = filepath.Abs(*p)
		}
	}
	ps, err := intList(*tmplPorts)
	if err != nil || len(ps) == 0 {
		logf("-template-ports: %v", err)
		return 2
	}
	tmplMax := slices.Max(ps)
	if os.Geteuid() != 0 {
		logf("needs root (network namespaces)")
		return 2
	}
	zg, err := findZabbixGet(*zget)
	if err != nil {
		logf("%v", err)
		return 2
	}
	self, _ := os.Executable()
	lg, _ := filepath.Abs(*loadgen)
	binDir, _ := filepath.Abs(*bin)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "benchdriver-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	rep := Report{Started: time.Now().UTC().Truncate(time.Second), Machine: machine(*agentBin)}
	failed := false
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			logf("bad size %q", s)
			return 2
		}
		light, heavy := 9, 3
		switch {
		case *quick:
			light, heavy = 1, 1
		case n > 200000:
			light, heavy = 5, 1
		case n > 20000:
			light, heavy = 7, 2
		}
		pdir := ""
		if *profiles && n == largest(*sizes) {
			pdir, _ = filepath.Abs(filepath.Join(*out, "pprof"))
			os.MkdirAll(pdir, 0o755)
		}
		tm := templateRun{old: *tmplOld, new: *tmplNew, ports: *tmplPorts, listeners: *listeners, dests: *dests, reps: *tmplReps, need: tmplMax, binOld: *binOld}
		r, interrupted := runSize(n, lg, self, binDir, *agentBin, zg, tmp, *only, pdir, light, heavy, tm, sigs, logf)
		if *check && r.Error == "" {
			if errs := checkValues(r); len(errs) > 0 {
				r.Error = "check: " + strings.Join(errs, "; ")
			}
		}
		rep.Runs = append(rep.Runs, r)
		if r.Error != "" {
			failed = true
			logf("n=%d: %s", n, r.Error)
		}
		if err := writeReport(*out, rep); err != nil {
			logf("%v", err)
			return 1
		}
		if interrupted {
			return 130
		}
	}
	logf("results in %s", *out)
	if failed {
		return 1
	}
	return 0
}

// runSize builds the load of size n, measures, and tears the load down.
// Methods whose Value is the TIME_WAIT count, and those whose Value is the
// total number of sockets.
var (
	timeWaitMethods = []string{"plugin", "plugin-status-get", "plugin-state", "plugin-cached", "plugin-cached-x11",
		"plugin-proc", "builtin-x11", "netstat-x11", "ss-x11", "ss-x1", "ss-state", "nl-ref-state", "core-netlink-state"}
	totalMethods = []string{"nl-ref", "nl-ref-end", "core-netlink", "core-proc", "procfs"}
)

// checkValues compares what every method reported with the load: the
// agents' own connections leave a few hundred TIME_WAIT sockets at most.
func checkValues(r Run) []string {
	var errs []string
	cmp := func(methods []string, want uint64) {
		for _, m := range methods {
			res, ok := find(r.Results, m)
			if !ok {
				errs = append(errs, m+": not measured")
				continue
			}
			got, err := strconv.ParseUint(res.Value, 10, 64)
			if err != nil || got+50 < want || got > want+want/50+500 {
				errs = append(errs, fmt.Sprintf("%s: reported %q, load has %d", m, res.Value, want))
			}
		}
	}
	cmp(timeWaitMethods, r.Load.Counts["time_wait"])
	cmp(totalMethods, r.Load.Counts["total"])
	// Template intervals, when measured: each reports the TIME_WAIT count
	// of its tcp.sockets.get or tcp.status.get.
	var tmpl []string
	for _, x := range r.Results {
		if strings.HasPrefix(x.Method, "tmpl-") {
			tmpl = append(tmpl, x.Method)
		}
	}
	cmp(tmpl, r.Load.Counts["time_wait"])
	return errs
}

func largest(sizes string) int {
	m := 0
	for _, s := range strings.Split(sizes, ",") {
		n, _ := strconv.Atoi(strings.TrimSpace(s))
		m = max(m, n)
	}
	return m
}

// templateRun says which template intervals to measure.
type templateRun struct {
	old, new  string // template exports (new may be "contract")
	ports     string // numbers of ports the old template polls
	listeners int    // extra listening ports of the load
	dests     int    // destination addresses of the load's IPv4 clients
	reps      int    // measured intervals of the new template (0: as the others)
	need      int    // the most ports the old template polls
	binOld    string // plugin of the old template's release
}

func runSize(n int, loadgen, self, binDir, agentBin, zget, tmp, only, profileDir string, light, heavy int, tm templateRun, sigs chan os.Signal, logf func(string, ...any)) (r Run, interrupted bool) {
	r = Run{Nominal: n}
	t0 := time.Now()
	defer func() { r.Seconds = time.Since(t0).Seconds() }()
	ns := fmt.Sprintf("tcpbench-%d-%d", os.Getpid(), n)
	ready := filepath.Join(tmp, fmt.Sprintf("ready-%d.json", n))
	lcmd := exec.Command(loadgen, "-n", strconv.Itoa(n), "-hold", "90m", "-netns", ns, "-ready-file", ready, "-listeners", strconv.Itoa(tm.listeners), "-destinations", strconv.Itoa(tm.dests))
	lcmd.Stderr = os.Stderr
	lcmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // our SIGINT handling decides
	if err := lcmd.Start(); err != nil {
		r.Error = err.Error()
		return r, false
	}
	lexit := make(chan struct{})
	var lerr error
	go func() { lerr = lcmd.Wait(); close(lexit) }()
	stopLoad := func() {
		lcmd.Process.Signal(syscall.SIGINT)
		select {
		case <-lexit:
		case <-time.After(5 * time.Minute):
			logf("loadgen did not stop in 5 minutes; killing it (namespace %s may be left)", ns)
			lcmd.Process.Kill()
			<-lexit
		}
		if lerr != nil {
			logf("loadgen: %v", lerr)
		}
	}
	defer stopLoad()
	logf("n=%d: building the load", n)
	deadline := time.After(15 * time.Minute)
	for {
		b, err := os.ReadFile(ready)
		if err == nil {
			if err := json.Unmarshal(b, &r.Load); err != nil {
				r.Error = "loadgen ready file: " + err.Error()
				return r, false
			}
			break
		}
		select {
		case <-lexit:
			r.Error = fmt.Sprintf("loadgen exited before ready: %v", lerr)
			return r, false
		case <-sigs:
			r.Error = "interrupted"
			return r, true
		case <-deadline:
			r.Error = "loadgen not ready after 15 minutes"
			return r, false
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.Sockets = r.Load.Counts["total"]
	logf("n=%d: %d sockets in %s, built in %.1fs; measuring (%d/%d reps)", n, r.Sockets, ns, r.Load.BuildSeconds, light, heavy)
	r.LoadAvgBefore = loadavg()
	var listen []string
	for _, p := range r.Load.ListenPorts {
		listen = append(listen, strconv.Itoa(int(p)))
	}
	if (tm.old != "" || tm.new != "") && len(listen) < tm.need {
		r.Error = fmt.Sprintf("the load listens on %d ports, the template intervals need %d (raise -listeners)", len(listen), tm.need)
		return r, false
	}
	icmd := exec.Command("ip", "netns", "exec", ns, self, "inner",
		"-reps", strconv.Itoa(light), "-heavy-reps", strconv.Itoa(heavy), "-template-reps", strconv.Itoa(tm.reps),
		"-port", strconv.Itoa(int(r.Load.BusyPort)), "-bin", binDir, "-agent", agentBin,
		"-zabbix-get", zget, "-tmp", filepath.Join(tmp, fmt.Sprintf("n%d", n)), "-only", only, "-profile-dir", profileDir,
		"-template-old", tm.old, "-template-new", tm.new, "-template-ports", tm.ports, "-listen-ports", strings.Join(listen, ","), "-bin-old", tm.binOld)
	icmd.Stderr = os.Stderr
	icmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, _ := icmd.StdoutPipe()
	if err := icmd.Start(); err != nil {
		r.Error = err.Error()
		return r, false
	}
	type innerOut struct {
		res []Result
		err error
	}
	done := make(chan innerOut, 1)
	go func() {
		var res []Result
		err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&res)
		werr := icmd.Wait()
		if err == nil {
			err = werr
		}
		done <- innerOut{res, err}
	}()
	var o innerOut
	select {
	case o = <-done:
	case <-sigs:
		syscall.Kill(-icmd.Process.Pid, syscall.SIGTERM)
		<-done
		r.Error = "interrupted"
		return r, true
	}
	r.LoadAvgAfter = loadavg()
	for i := range o.res {
		o.res[i].N = int(r.Sockets)
	}
	r.Results = o.res
	if o.err != nil {
		r.Error = "measurements: " + o.err.Error()
	}
	return r, false
}

// templatesMain prints the agent requests and stored values per minute of
// two template exports (before and after) for several numbers of ports.
func templatesMain(args []string) int {
	fs := flag.NewFlagSet("templates", flag.ExitOnError)
	oldT := fs.String("old", "", "template export before")
	newT := fs.String("new", "", "template export after")
	ports := fs.String("ports", "1,30,100", "numbers of discovered ports")
	disks := fs.Int("disks", 4, "number of discovered disks")
	fs.Parse(args)
	ps, err := intList(*ports)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver templates: %v\n", err)
		return 2
	}
	t, err := costTable(*oldT, *newT, ps, *disks)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver templates: %v\n", err)
		return 1
	}
	fmt.Print(t)
	return 0
}

// intList parses "1,30,100".
func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// reportMain rewrites results.csv and results.md of a directory from its
// results.json (after a change to the report's layout).
func reportMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchdriver report <dir with results.json>")
		return 2
	}
	b, err := os.ReadFile(filepath.Join(args[0], "results.json"))
	var rep Report
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err == nil {
		err = writeReport(args[0], rep)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver report: %v\n", err)
		return 1
	}
	return 0
}
