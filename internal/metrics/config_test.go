package metrics

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := []struct {
		name string
		opts map[string]string
		glob time.Duration
		want Config
	}{
		{"+defaults", nil, 0, DefaultConfig()},
		{"+global timeout", nil, 5 * time.Second, func() Config { c := DefaultConfig(); c.Timeout = 5 * time.Second; return c }()},
		{"+all options", map[string]string{"ProcRoot": dir, "SysRoot": dir + "/", "Source": "Proc", "CacheTTL": "0.5", "Timeout": "10"}, 3 * time.Second,
			Config{ProcRoot: dir, SysRoot: dir, Source: SourceProc, CacheTTL: 500 * time.Millisecond, Timeout: 10 * time.Second}},
		{"+ttl zero", map[string]string{"CacheTTL": "0"}, 0, func() Config { c := DefaultConfig(); c.CacheTTL = 0; return c }()},
		{"+ttl plain decimals", map[string]string{"CacheTTL": " 060.0 ", "Timeout": "007"}, 0,
			func() Config { c := DefaultConfig(); c.CacheTTL, c.Timeout = time.Minute, 7*time.Second; return c }()},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig(c.opts, c.glob)
			if err != nil || got != c.want {
				t.Fatalf("ParseConfig = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	bad := []struct {
		name string
		opts map[string]string
		want string
	}{
		{"-unknown", map[string]string{"ProcRot": "/proc"}, "unknown option Plugins.TCPStatus.ProcRot; known options: ProcRoot, SysRoot, Source, CacheTTL, Timeout"},
		{"-relative root", map[string]string{"ProcRoot": "proc"}, `invalid option Plugins.TCPStatus.ProcRoot: expected an absolute path, got "proc"`},
		{"-missing root", map[string]string{"SysRoot": dir + "/nope"}, `invalid option Plugins.TCPStatus.SysRoot: cannot use "` + dir + `/nope": no such file or directory`},
		{"-long missing root", map[string]string{"SysRoot": dir + "/" + strings.Repeat("d", 200)}, `cannot use "` + dir + "/" + strings.Repeat("d", 200) + `": no such file or directory`},
		{"-root control character", map[string]string{"ProcRoot": "/pr\x00oc"}, `invalid option Plugins.TCPStatus.ProcRoot: cannot use "/pr\x00oc": invalid argument`},
		{"-root invisible", map[string]string{"SysRoot": "/sys\u200b"}, `invalid option Plugins.TCPStatus.SysRoot: cannot use "/sys<U+200B>": no such file or directory`},
		{"-file root", map[string]string{"ProcRoot": file}, "is not a directory"},
		{"-source", map[string]string{"Source": "ebpf"}, `invalid option Plugins.TCPStatus.Source: expected auto, netlink or proc, got "ebpf"`},
		{"-ttl", map[string]string{"CacheTTL": "61"}, `invalid option Plugins.TCPStatus.CacheTTL: expected seconds from 0 to 60, got "61"`},
		{"-ttl nan", map[string]string{"CacheTTL": "NaN"}, `CacheTTL: expected seconds from 0 to 60, got "NaN"`},
		{"-ttl hex float", map[string]string{"CacheTTL": "0x1p4"}, `got "0x1p4"`},
		{"-ttl underscore", map[string]string{"CacheTTL": "1_0"}, `got "1_0"`},
		{"-ttl exponent", map[string]string{"CacheTTL": "1e1"}, `got "1e1"`},
		{"-ttl sign", map[string]string{"CacheTTL": "+1"}, `got "+1"`},
		{"-ttl negative", map[string]string{"CacheTTL": "-0"}, `got "-0"`},
		{"-ttl inf", map[string]string{"CacheTTL": "Inf"}, `got "Inf"`},
		{"-ttl bare point", map[string]string{"CacheTTL": "1."}, `got "1."`},
		{"-ttl huge", map[string]string{"CacheTTL": "99999999999999999999"}, `got "99999999999999999999"`},
		{"-ttl tiny over", map[string]string{"CacheTTL": "60.000000001"}, `got "60.000000001"`},
		{"-timeout hex", map[string]string{"Timeout": "0x5"}, `Timeout: expected seconds from 1 to 30, got "0x5"`},
		{"-timeout", map[string]string{"Timeout": "0"}, `invalid option Plugins.TCPStatus.Timeout: expected seconds from 1 to 30, got "0"`},
		{"-source invisible", map[string]string{"Source": "\u200bproc"}, `Source: expected auto, netlink or proc, got "<U+200B>proc"`},
		{"-nested", map[string]string{"Sessions.A.Uri": "x"}, "unknown option Plugins.TCPStatus.Sessions.A.Uri"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(c.opts, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseConfig error = %v, want %q", err, c.want)
			}
			// A value error names its option for callers that word it
			// their own way (tcpstatus-discovery names its flags).
			var oe *OptionError
			if errors.As(err, &oe) != !strings.HasPrefix(c.name, "-unknown") && !strings.HasPrefix(c.name, "-nested") {
				t.Errorf("OptionError %v for %v", oe, err)
			}
			if oe != nil && (c.opts[oe.Option] == "" || !strings.Contains(err.Error(), oe.Err.Error())) {
				t.Errorf("OptionError %+v does not name the option or its cause", oe)
			}
		})
	}
}

func TestNetDir(t *testing.T) {
	if got := DefaultConfig().NetDir(); got != "/proc/net" {
		t.Errorf("default NetDir = %s", got)
	}
	host := t.TempDir()
	c := DefaultConfig()
	c.ProcRoot = host
	if got := c.NetDir(); got != filepath.Join(host, "net") {
		t.Errorf("fixture root NetDir = %s", got)
	}
	if err := os.MkdirAll(filepath.Join(host, "1", "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := c.NetDir(); got != filepath.Join(host, "1", "net") {
		t.Errorf("host root NetDir = %s, want the init process's namespace", got)
	}
}
