package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/version"
)

// Exit statuses.
const (
	exitOK          = 0
	exitUnsupported = 1 // the key failed: ZBX_NOTSUPPORTED on stdout
	exitUsage       = 2
)

// defaultTimeout bounds one answer; it stays below the classic agent's
// default Timeout (3 s), which kills a UserParameter command that overruns.
const defaultTimeout = 2500 * time.Millisecond

// notSupported prefixes the reason a key failed, as zabbix_get and the
// agents print it.
const notSupported = "ZBX_NOTSUPPORTED: "

// options are the command-line flags.
type options struct {
	procfs, sysfs, source string
	timeout               time.Duration
	verbose, version      bool
}

// newFlagSet declares the flags, node_exporter style (--path.procfs, ...).
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("tcpstatus-discovery", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.procfs, "path.procfs", metrics.DefaultProcRoot, "procfs mount point; another root than /proc reads the socket tables of <root>/1/net with the /proc parser")
	fs.StringVar(&o.sysfs, "path.sysfs", metrics.DefaultSysRoot, "sysfs mount point, for disk discovery")
	fs.StringVar(&o.source, "source", string(metrics.SourceAuto), "socket table source: auto, netlink or proc")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "time allowed for one answer, 1s to 30s; keep it below the agent's Timeout")
	fs.BoolVar(&o.verbose, "verbose", false, "log to standard error (never use it from a UserParameter: the agent adds standard error to the value)")
	fs.BoolVar(&o.version, "V", false, "print the version and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// parseArgs parses flags placed before or after the one key argument.
func parseArgs(args []string) (options, string, error) {
	var o options
	fs := newFlagSet(&o)
	var keys []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, "", err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		keys = append(keys, args[0])
		args = args[1:]
	}
	if o.version {
		return o, "", nil
	}
	switch len(keys) {
	case 0:
		return o, "", errors.New("no item key given")
	case 1:
		return o, keys[0], nil
	}
	return o, "", fmt.Errorf("one item key expected, got %d (quote a key with parameters: 'tcp.status[timewait,80]')", len(keys))
}

// run is the whole command: it parses args, answers the key and returns the
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, key, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\nRun tcpstatus-discovery --help for usage.\n", err)
		return exitUsage
	}
	if o.version {
		fmt.Fprintf(stdout, "tcpstatus-discovery %s\n", version.String())
		return exitOK
	}
	cfg, err := metrics.ParseConfig(map[string]string{
		"ProcRoot": o.procfs,
		"SysRoot":  o.sysfs,
		"Source":   o.source,
		"Timeout":  strconv.FormatFloat(o.timeout.Seconds(), 'f', -1, 64),
	}, 0)
	if err != nil {
		// Name the flag, not the plugin option.
		msg := err.Error()
		for opt, flagName := range map[string]string{"ProcRoot": "--path.procfs", "SysRoot": "--path.sysfs", "Source": "--source", "Timeout": "--timeout"} {
			msg = strings.ReplaceAll(msg, "option Plugins.TCPStatus."+opt, flagName)
		}
		fmt.Fprintf(stderr, "Error: %s\n", msg)
		return exitUsage
	}
	var log metrics.Logger = metrics.NopLogger{}
	if o.verbose {
		log = stderrLogger{stderr}
	}
	e, err := metrics.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	name, params, err := parseKey(key)
	if err != nil {
		fmt.Fprintf(stdout, "%s%v\n", notSupported, err)
		return exitUnsupported
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	v, err := e.Export(ctx, name, params)
	if err != nil {
		fmt.Fprintf(stdout, "%s%v\n", notSupported, err)
		return exitUnsupported
	}
	fmt.Fprintln(stdout, v)
	return exitOK
}

// usage prints the help text with the plugin's key list.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: tcpstatus-discovery [flags] '<item key>'

Prints what the Zabbix agent 2 plugin TCPStatus returns for the key, using
the same code, for the classic agent's UserParameter lines and for people.
On success: the value, exit status 0. When the key fails:
"ZBX_NOTSUPPORTED: <reason>" on standard output, exit status 1.

Flags:
`)
	var o options
	fs := newFlagSet(&o)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "V" {
			return
		}
		name := "--" + f.Name
		if f.Name == "version" {
			name = "-V, --version"
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  %s\n        %s%s\n", name, f.Usage, def)
	})
	fmt.Fprint(w, "  -h, --help\n        print this help and exit\n\nKeys:\n")
	if e, err := metrics.New(metrics.DefaultConfig(), nil); err == nil {
		for _, m := range e.Metrics() {
			fmt.Fprintf(w, "  %s\n        %s\n", m.Synopsis(), m.Description)
		}
	}
}

// stderrLogger writes log lines to standard error (--verbose).
type stderrLogger struct{ w io.Writer }

func (l stderrLogger) Infof(format string, args ...any) { l.printf("info", format, args...) }
func (l stderrLogger) Warningf(format string, args ...any) {
	l.printf("warning", format, args...)
}
func (l stderrLogger) Debugf(format string, args ...any) { l.printf("debug", format, args...) }
func (l stderrLogger) printf(level, format string, args ...any) {
	fmt.Fprintf(l.w, "%s: %s\n", level, fmt.Sprintf(format, args...))
}
