// Command e2e proves the templates on real Zabbix servers. For each Zabbix
// version (6.0 from bookworm, 7.0 unpacked from bookworm-backports) it runs a
// private PostgreSQL cluster, the server, the frontend (PHP's built-in web
// server, for the API), agent 2 with the plugin and the classic agent with
// the UserParameter file and the helper; imports every template through
// configuration.import, links each to a host, forces checks and asserts that
// every item (discovered ones included) has a value and none is unsupported,
// that discovery found the test's ports and the machine's disks, and that
// triggers go to PROBLEM when the test creates their condition and back to OK
// when it removes it.
//
// Run as root: go run ./test/e2e (scripts/test.d/80-e2e.sh does, after
// unpacking 7.0; scripts/install-deps.sh installs the 6.0 packages listed in
// scripts/deps.d/e2e.txt). The run starts itself again in a network
// namespace of its own (netns.go): PostgreSQL, server, frontend, agents and
// the test's sockets all live on that namespace's loopback, so the socket
// counts the agents report, and the thresholds the run sets from them, are
// the run's own whatever the rest of the machine does (-host-noise proves
// it). Every process runs in its own process group and is stopped on exit,
// interrupt included; the work directory under /tmp holds configs, logs and
// the database.
//
// The 6.0 and 7.0 packages conflict, so 6.0 runs from the installed
// packages and 7.0 from a dpkg -x tree ($TCPSTATUS_CACHE/e2e-7.0), each with
// its own database in one private PostgreSQL cluster. The frontend (Debian
// reads its configuration from a fixed path under /etc) is copied into the
// work directory and pointed at a private configuration.
//
// -upgrade-from DIR starts the hosts on the previous release's template
// files in DIR, lets them collect, imports the new files over them and
// checks that every item whose key both define kept its id and history
// (upgrade.go). -shared adds a host linked to Zabbix's own "Linux by Zabbix
// agent" template (in every fresh database), then to ours; ours must
// collect there too and every discovery rule run without error.
// scripts/test.d/80-e2e.sh passes both (the previous release from git).
//
// -export-official writes the names (only) of Zabbix's own Linux agent
// templates, as each version's fresh database holds them, to
// testdata/official-templates/zabbix-<version>.json; every other run
// checks that those files still match its servers (official.go).
//
// -screenshots DIR photographs every page of the template dashboards on
// the first version's agent 2 host after the scenario, with headless
// Chromium (screens.go).
//
// -import-only only imports the templates (no agents); -serve leaves the
// first version running, templates imported and hosts linked, for manual
// inspection in a browser (through a port on the host's loopback) until
// interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

var start = time.Now()

// logf prints one timestamped progress line (seconds since start).
func logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

type options struct {
	versions   []string
	cache      string
	bin        string
	templates  string
	userParams string
	work       string
	keep       bool
	serve      bool
	importOnly bool
	require    bool
	hostNoise  bool
	official   string // stored names of the official templates
	exportOff  bool   // write them instead of checking them
	// upgradeFrom: directory with the previous release's template files
	upgradeFrom string
	// shared: also link ours to a host on the official Linux template
	shared bool
	// screenshots: directory for the dashboard pictures (screens.go)
	screenshots string
}

func main() {
	if os.Getenv(leakChildEnv) != "" {
		if err := runLeakChild(); err != nil {
			fmt.Fprintln(os.Stderr, "leaking process:", err)
			os.Exit(1)
		}
		return
	}
	if err := runMain(os.Args[1:], os.Stdout); err != nil {
		var rep errReported
		if errors.As(err, &rep) {
			os.Exit(rep.code)
		}
		if errors.Is(err, errSkip) {
			fmt.Println("SKIP:", err)
			return
		}
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}

func runMain(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var o options
	versions := fs.String("versions", "6.0,7.0", "Zabbix versions to test, comma-separated")
	fs.StringVar(&o.cache, "cache", envOr("TCPSTATUS_CACHE", "/var/cache/tcpstatus-test"), "directory with the unpacked 7.0 packages (e2e-7.0/)")
	fs.StringVar(&o.bin, "bin", "bin", "directory with zabbix-agent2-plugin-tcpstatus and tcpstatus-discovery (make build)")
	fs.StringVar(&o.templates, "templates", "templates", "directory with the template XML files")
	fs.StringVar(&o.userParams, "userparams", "conf/userparameter_tcpstatus.conf", "UserParameter file for the classic agent")
	fs.StringVar(&o.work, "work", "", "work directory (default: a new one under /tmp)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, configs, database) after the run")
	fs.BoolVar(&o.serve, "serve", false, "bring up the first version, import and link, print the URL and wait for Ctrl-C")
	fs.BoolVar(&o.importOnly, "import-only", false, "only import the templates into each version (no agents, no values)")
	fs.StringVar(&o.official, "official", "testdata/official-templates", "directory with the names of the official Linux templates (zabbix-<version>.json)")
	fs.BoolVar(&o.exportOff, "export-official", false, "write the names of the official Linux templates of each version's server to -official, then stop")
	fs.StringVar(&o.upgradeFrom, "upgrade-from", "", "directory with the previous release's template files: link the hosts to them first, then import the new ones over them")
	fs.BoolVar(&o.shared, "shared", false, "also run a host linked to the official \"Linux by Zabbix agent\" template and then to ours")
	fs.StringVar(&o.screenshots, "screenshots", "", "write PNG screenshots of every template dashboard page (first version, agent 2 host) to this directory, with headless chromium")
	fs.BoolVar(&o.hostNoise, "host-noise", false, "meanwhile, keep changing the host's CLOSE_WAIT count on its loopback (proves the run does not see it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	o.versions = strings.Split(*versions, ",")
	o.require = os.Getenv("TCPSTATUS_REQUIRE_AGENT") == "1"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := preflight(&o); err != nil {
		if o.require {
			return fmt.Errorf("TCPSTATUS_REQUIRE_AGENT=1 and %w", err)
		}
		return fmt.Errorf("%w: %v", errSkip, err)
	}
	if !inOwnNetns() {
		return runParent(ctx, args, &o)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if o.work == "" {
		w, err := os.MkdirTemp("", "tcpstatus-e2e.")
		if err != nil {
			return err
		}
		o.work = w
	}
	if err := os.Chmod(o.work, 0o755); err != nil {
		return err
	}
	ps := &procs{pgidLog: filepath.Join(o.work, "pgids")}
	defer func() {
		ps.stopAll(0)
		if o.keep {
			logf("work directory kept: %s", o.work)
		} else {
			os.RemoveAll(o.work)
		}
	}()
	logf("work directory %s", o.work)
	return runAll(ctx, &o, ps)
}

// runParent runs the test in a network namespace of its own (netns.go)
// and, with -host-noise, changes the host's socket counts meanwhile.
func runParent(ctx context.Context, args []string, o *options) error {
	if !o.hostNoise {
		return runInNetns(args, o.serve)
	}
	nctx, cancel := context.WithCancel(ctx)
	type result struct {
		rounds, sockets int
		err             error
	}
	noise := make(chan result, 1)
	go func() {
		r, s, err := hostNoise(nctx)
		noise <- result{r, s, err}
	}()
	err := runInNetns(args, o.serve)
	cancel()
	n := <-noise
	logf("host noise: %d rounds, %d CLOSE_WAIT sockets made and closed on the host's loopback (%d-%d at a time)", n.rounds, n.sockets, noiseMin, noiseMax)
	if err == nil && n.err != nil {
		err = fmt.Errorf("host noise: %w", n.err)
	}
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// layoutFor maps a version to where its files are.
func layoutFor(o *options, version string) layout {
	if version == "6.0" {
		return newLayout(version, "")
	}
	return newLayout(version, filepath.Join(o.cache, "e2e-"+version))
}

// preflight checks what the run needs before starting anything.
func preflight(o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	var missing []string
	for _, v := range o.versions {
		missing = append(missing, layoutFor(o, v).missing()...)
	}
	need := []string{filepath.Join(pgBin, "initdb")}
	if !o.importOnly && !o.exportOff {
		need = append(need, filepath.Join(o.bin, "zabbix-agent2-plugin-tcpstatus"), filepath.Join(o.bin, "tcpstatus-discovery"), o.userParams)
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, c := range []string{"psql", "php", "cp"} {
		if _, err := lookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s (run scripts/install-deps.sh, scripts/test.d/80-e2e.sh installs the rest; make build)", strings.Join(missing, ", "))
	}
	return nil
}
