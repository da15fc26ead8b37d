package metrics

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults of the plugin options.
const (
	DefaultProcRoot = "/proc"
	DefaultSysRoot  = "/sys"
	DefaultCacheTTL = time.Second
	DefaultTimeout  = 3 * time.Second

	maxCacheTTL = 60 * time.Second
	maxTimeout  = 30 * time.Second
)

// SourceKind selects where socket tables are read from.
type SourceKind string

// Source kinds.
const (
	SourceAuto    SourceKind = "auto"    // netlink, falling back to /proc when refused
	SourceNetlink SourceKind = "netlink" // netlink sock_diag only
	SourceProc    SourceKind = "proc"    // /proc/net/tcp{,6} only
)

// Config holds the plugin options (Plugins.TCPStatus.<Option> in the agent
// configuration; the same names as flags of the discovery helper).
type Config struct {
	// ProcRoot is where procfs is mounted. With a root other than /proc (a
	// host's /proc bind-mounted into a container), the socket tables are read
	// from <ProcRoot>/1/net: <ProcRoot>/net follows the reader's own network
	// namespace.
	ProcRoot string
	// SysRoot is where sysfs is mounted (disk discovery).
	SysRoot string
	// Source is auto, netlink or proc. Auto uses netlink unless ProcRoot is
	// set to another root, which only the /proc parser can read.
	Source SourceKind
	// CacheTTL is how long one socket-table read serves further requests,
	// counted from the start of the read.
	CacheTTL time.Duration
	// Timeout bounds one request when the agent does not send its own (6.0).
	Timeout time.Duration
}

// DefaultConfig returns the configuration used when no option is set.
func DefaultConfig() Config {
	return Config{
		ProcRoot: DefaultProcRoot,
		SysRoot:  DefaultSysRoot,
		Source:   SourceAuto,
		CacheTTL: DefaultCacheTTL,
		Timeout:  DefaultTimeout,
	}
}

// Option is one plugin option: its name (Plugins.TCPStatus.<Name>) and
// what it means.
type Option struct{ Name, Help string }

// Options returns the accepted options with their meaning, for help texts
// and error messages.
func Options() []Option { return slices.Clone(options) }

var options = []Option{
	{"ProcRoot", "procfs mount point; another root than /proc reads the host tables under <ProcRoot>/1/net (default /proc)"},
	{"SysRoot", "sysfs mount point, for disk discovery (default /sys)"},
	{"Source", "socket table source: auto, netlink or proc (default auto)"},
	{"CacheTTL", "seconds from the start of a socket table read during which it serves further requests, 0 to 60, fractions allowed (default 1)"},
	{"Timeout", "seconds a request may take when the agent sends no timeout, 1 to 30 (default: the agent's Timeout)"},
}

// ParseConfig builds a Config from option values by name (the agent's
// Plugins.TCPStatus.* lines, System excluded). globalTimeout, when positive,
// is the agent's Timeout and the default of the Timeout option. Every error
// names the option and what it accepts.
func ParseConfig(opts map[string]string, globalTimeout time.Duration) (Config, error) {
	c := DefaultConfig()
	if globalTimeout > 0 {
		c.Timeout = min(globalTimeout, maxTimeout)
	}
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v := strings.TrimSpace(opts[name])
		var err error
		switch name {
		case "ProcRoot":
			c.ProcRoot, err = parseRoot(v)
		case "SysRoot":
			c.SysRoot, err = parseRoot(v)
		case "Source":
			c.Source = SourceKind(strings.ToLower(v))
			if !slices.Contains([]SourceKind{SourceAuto, SourceNetlink, SourceProc}, c.Source) {
				err = fmt.Errorf("expected auto, netlink or proc, got %s", Quote(v))
			}
		case "CacheTTL":
			c.CacheTTL, err = ParseSeconds(v, 0, maxCacheTTL)
		case "Timeout":
			c.Timeout, err = ParseSeconds(v, time.Second, maxTimeout)
		default:
			known := make([]string, len(options))
			for i, o := range options {
				known[i] = o.Name
			}
			return Config{}, fmt.Errorf("unknown option Plugins.TCPStatus.%s; known options: %s", name, strings.Join(known, ", "))
		}
		if err != nil {
			return Config{}, &OptionError{Option: name, Err: err}
		}
	}
	return c, nil
}

// OptionError is an option with a value ParseConfig refuses.
type OptionError struct {
	Option string // the name, e.g. "Source"
	Err    error  // what is wrong with the value
}

// Error is "invalid option Plugins.TCPStatus.<Option>: <Err>".
func (e *OptionError) Error() string {
	return "invalid option Plugins.TCPStatus." + e.Option + ": " + e.Err.Error()
}

func (e *OptionError) Unwrap() error { return e.Err }

func parseRoot(v string) (string, error) {
	if !filepath.IsAbs(v) {
		return "", fmt.Errorf("expected an absolute path, got %s", QuotePath(v))
	}
	st, err := os.Stat(v)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is shown quoted instead
		}
		return "", fmt.Errorf("cannot use %s: %v", QuotePath(v), err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a directory", QuotePath(v))
	}
	return filepath.Clean(v), nil
}

// plainDecimal is how Zabbix configuration files write numbers: digits,
// optionally a fraction; no sign, exponent, hexadecimal, underscore, Inf or
// NaN.
var plainDecimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// ParseSeconds parses a plain decimal number of seconds from lo to hi.
func ParseSeconds(v string, lo, hi time.Duration) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	d := time.Duration(f * float64(time.Second))
	if !plainDecimal.MatchString(v) || err != nil || f > hi.Seconds() || d < lo || d > hi {
		return 0, fmt.Errorf("expected seconds from %g to %g, got %s", lo.Seconds(), hi.Seconds(), Quote(v))
	}
	return d, nil
}

// NetDir is the directory holding the socket tables and network counters
// (tcp, tcp6, udp, sockstat, snmp, netstat).
func (c Config) NetDir() string {
	if c.ProcRoot == DefaultProcRoot {
		return filepath.Join(c.ProcRoot, "net")
	}
	host := filepath.Join(c.ProcRoot, "1", "net")
	if st, err := os.Stat(host); err == nil && st.IsDir() {
		return host
	}
	return filepath.Join(c.ProcRoot, "net")
}
