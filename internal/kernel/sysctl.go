package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Limit is one TCP limit read from a sysctl file.
type Limit struct {
	// Name is the output name: the sysctl's last component, with _min/_max
	// (ip_local_port_range) or _min/_pressure/_max (tcp_mem) for the fields
	// of a multi-value sysctl.
	Name  string
	Value int64
}

// Sysctl describes one sysctl file ReadLimits reads.
type Sysctl struct {
	// Path is the file under the proc root, e.g. "sys/net/ipv4/tcp_mem".
	Path string
	// Names are the output names of its whitespace-separated fields.
	Names []string
}

// Key returns the sysctl's dotted name, e.g. "net.ipv4.tcp_mem", as
// sysctl(8) spells it.
func (s Sysctl) Key() string {
	return strings.ReplaceAll(strings.TrimPrefix(s.Path, "sys/"), "/", ".")
}

// LimitSysctls returns the sysctls ReadLimits reads, in output order (a
// copy). Paths are fixed here; nothing outside this table decides what is
// read.
func LimitSysctls() []Sysctl {
	out := make([]Sysctl, len(limitSysctls))
	for i, s := range limitSysctls {
		out[i] = Sysctl{s.Path, slices.Clone(s.Names)}
	}
	return out
}

var limitSysctls = []Sysctl{
	{"sys/net/ipv4/tcp_max_tw_buckets", []string{"tcp_max_tw_buckets"}},
	{"sys/net/ipv4/tcp_max_orphans", []string{"tcp_max_orphans"}},
	{"sys/net/ipv4/tcp_max_syn_backlog", []string{"tcp_max_syn_backlog"}},
	{"sys/net/ipv4/tcp_syncookies", []string{"tcp_syncookies"}},
	{"sys/net/ipv4/tcp_fin_timeout", []string{"tcp_fin_timeout"}},
	{"sys/net/ipv4/tcp_tw_reuse", []string{"tcp_tw_reuse"}},
	{"sys/net/ipv4/tcp_keepalive_time", []string{"tcp_keepalive_time"}},
	{"sys/net/ipv4/tcp_keepalive_intvl", []string{"tcp_keepalive_intvl"}},
	{"sys/net/ipv4/tcp_keepalive_probes", []string{"tcp_keepalive_probes"}},
	{"sys/net/ipv4/ip_local_port_range", []string{"ip_local_port_range_min", "ip_local_port_range_max"}},
	{"sys/net/ipv4/tcp_mem", []string{"tcp_mem_min", "tcp_mem_pressure", "tcp_mem_max"}},
	{"sys/net/core/somaxconn", []string{"somaxconn"}},
	// Connection tracking, only while nf_conntrack is loaded: the entries of
	// this network namespace and the table's limit.
	{"sys/net/netfilter/nf_conntrack_count", []string{"nf_conntrack_count"}},
	{"sys/net/netfilter/nf_conntrack_max", []string{"nf_conntrack_max"}},
}

// ReadLimits reads the sysctls of LimitSysctls() under procRoot
// (<procRoot>/sys/net/...). A sysctl this kernel lacks is left out; a file
// that exists but cannot be read or parsed is an error. When procRoot has no
// sys/net directory at all, that is an error too, so a wrong root does not
// pass for a kernel without any of them.
//
// Most of these sysctls are per network namespace; /proc/sys/net shows the
// namespace of the thread that opens the file, whatever procRoot is.
func ReadLimits(procRoot string) ([]Limit, error) {
	out := make([]Limit, 0, 16)
	for _, s := range limitSysctls {
		path := filepath.Join(procRoot, filepath.FromSlash(s.Path))
		b, err := readSmallFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		fields := strings.Fields(string(b))
		if len(fields) != len(s.Names) {
			return nil, fmt.Errorf("%w: %s: expected %d values, got %q", ErrMalformed, path, len(s.Names), strings.TrimSpace(string(b)))
		}
		for i, f := range fields {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: value %q is not an integer", ErrMalformed, path, f)
			}
			out = append(out, Limit{Name: s.Names[i], Value: v})
		}
	}
	if len(out) == 0 {
		dir := filepath.Join(procRoot, "sys", "net")
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("no sysctls under %s: %w", procRoot, err)
		}
	}
	return out, nil
}
