package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/version"
	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
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
	timeout               timeoutFlag
	verbose, version      bool
}

// timeoutFlag is --timeout: a duration (2.5s, 1500ms) or a plain number of
// seconds (2.5), kept as the operator wrote it for error messages.
type timeoutFlag struct {
	text string
	d    time.Duration
}

func (f *timeoutFlag) String() string { return f.text }

// Set records the value; parseArgs checks it, so that its error shows the
// operator's text.
func (f *timeoutFlag) Set(v string) error {
	f.text = v
	return nil
}

// check parses the value and bounds it to 1s..30s.
func (f *timeoutFlag) check() error {
	v := strings.TrimSpace(f.text)
	d, err := time.ParseDuration(v)
	if err != nil {
		d, err = metrics.ParseSeconds(v, time.Second, 30*time.Second)
	}
	if err != nil || d < time.Second || d > 30*time.Second {
		return fmt.Errorf("invalid --timeout: expected a duration from 1s to 30s (e.g. 2.5s), got %s", metrics.Quote(f.text))
	}
	f.d = d
	return nil
}

// newFlagSet declares the flags, node_exporter style (--path.procfs, ...).
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("tcpstatus-discovery", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.procfs, "path.procfs", metrics.DefaultProcRoot, "procfs mount point; another root than /proc reads the socket tables of <root>/1/net with the /proc parser")
	fs.StringVar(&o.sysfs, "path.sysfs", metrics.DefaultSysRoot, "sysfs mount point, for disk discovery")
	fs.StringVar(&o.source, "source", string(metrics.SourceAuto), "socket table source: auto, netlink or proc")
	o.timeout = timeoutFlag{text: defaultTimeout.String(), d: defaultTimeout}
	fs.Var(&o.timeout, "timeout", "time allowed for one answer, 1s to 30s (a duration, or seconds); keep it below the agent's Timeout")
	fs.BoolVar(&o.verbose, "verbose", false, "log to standard error (never use it from a UserParameter: the agent adds standard error to the value)")
	fs.BoolVar(&o.version, "V", false, "print the version and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// checkFlagNames refuses an unknown flag, or a bad value of a boolean one,
// before the flag package would, so that the error shows the operator's
// text through metrics.Quote. It stops at "--".
func checkFlagNames(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		if name == "h" || name == "help" {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || name == "" || name[0] == '-' {
			return fmt.Errorf("unknown flag %s", metrics.Quote(a))
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			if _, err := strconv.ParseBool(value); hasValue && err != nil {
				return fmt.Errorf("invalid value %s for flag -%s: expected true or false", metrics.Quote(value), name)
			}
		} else if !hasValue {
			i++ // the next argument is the value
		}
	}
	return nil
}

// parseArgs parses flags placed before or after the positional arguments:
// the item key, optionally followed by its parameters one per argument.
// After "--" every argument is positional.
func parseArgs(args []string) (options, string, []string, error) {
	var o options
	fs := newFlagSet(&o)
	if err := checkFlagNames(fs, args); err != nil {
		return o, "", nil, err
	}
	var pos, rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return o, "", nil, err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	pos = append(pos, rest...)
	if o.version {
		if len(pos) > 0 {
			return o, "", nil, fmt.Errorf("-V/--version takes no arguments, got %s", metrics.Quote(pos[0]))
		}
		return o, "", nil, nil
	}
	if err := o.timeout.check(); err != nil {
		return o, "", nil, err
	}
	if len(pos) == 0 {
		return o, "", nil, errors.New("no item key given")
	}
	key, params := pos[0], pos[1:]
	if len(params) > 0 && strings.ContainsRune(key, '[') {
		return o, "", nil, fmt.Errorf("parameters given both in the key and as arguments (quote a key with parameters: 'tcp.status[timewait,80]', or give them as arguments: tcp.status timewait 80)")
	}
	// The classic agent hands on every parameter its UserParameter line
	// names, $1 to $9, whether the key has it or not: trailing empty ones
	// are absent ones.
	for len(params) > 0 && params[len(params)-1] == "" {
		params = params[:len(params)-1]
	}
	return o, key, params, nil
}

// run is the whole command: it parses args, answers the key and returns the
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, key, args, err := parseArgs(args)
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
	}, 0)
	if oe := (*metrics.OptionError)(nil); errors.As(err, &oe) {
		// Name the flag, not the plugin option.
		flagName := map[string]string{"ProcRoot": "--path.procfs", "SysRoot": "--path.sysfs", "Source": "--source"}[oe.Option]
		fmt.Fprintf(stderr, "Error: invalid %s: %v\n", flagName, oe.Err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	cfg.Timeout = o.timeout.d
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
	if len(args) > 0 {
		params = args // parseArgs made sure the key has no [...]
	}
	if err != nil {
		fmt.Fprintf(stdout, "%s%v\n", notSupported, err)
		return exitUnsupported
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	v, err := export(ctx, e.Export, name, params)
	if err != nil {
		fmt.Fprintf(stdout, "%s%v\n", notSupported, err)
		return exitUnsupported
	}
	fmt.Fprintln(stdout, v)
	return exitOK
}

// export answers the key with answer. A panic in it is answered as the
// plugin's agentproto.Serve answers one: an item error, the command goes on
// to print it.
func export(ctx context.Context, answer func(context.Context, string, []string) (string, error), key string, params []string) (v string, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = "", errors.New(zbx.InternalText)
		}
	}()
	return answer(ctx, key, params)
}

// usage prints the help text with the plugin's key list.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: tcpstatus-discovery [flags] '<item key>'
       tcpstatus-discovery [flags] [--] <key name> [<parameter>...]

Prints what the Zabbix agent 2 plugin TCPStatus returns for the key, using
the same code, for the classic agent's UserParameter lines and for people.
The key is parsed as Zabbix agent 2 parses it ('tcp.status[timewait,80]'),
or its parameters follow the bare key name one per argument, as they are
(trailing empty ones are dropped; after -- none is taken for a flag).
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
