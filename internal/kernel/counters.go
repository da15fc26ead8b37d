package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// ErrMalformed is wrapped by every error about a kernel file whose content
// cannot be parsed (as opposed to a file that cannot be read).
var ErrMalformed = errors.New("malformed kernel file")

// maxFileSize bounds the read of one counter or sysctl file. The largest,
// /proc/net/netstat, is about 10 KiB on 6.x kernels.
const maxFileSize = 1 << 20

// NetFS reads the network counters of one network namespace from a
// directory laid out like /proc: the files are read from <root>/net.
type NetFS struct {
	root string
	proc procfs.FS
}

// NewNetFS returns a NetFS reading <root>/net/... . root is normally /proc
// (the process's namespace), /proc/1 (the host's, from a container given the
// host's /proc) or /proc/thread-self (the calling thread's, for a thread in
// another network namespace; such a NetFS must be used from that thread).
func NewNetFS(root string) (NetFS, error) {
	p, err := procfs.NewFS(root)
	if err != nil {
		return NetFS{}, fmt.Errorf("open proc root %s: %w", root, err)
	}
	return NetFS{root: root, proc: p}, nil
}

// path returns the path of a file in the net directory.
func (nfs NetFS) path(name string) string { return filepath.Join(nfs.root, "net", name) }

// Counter is one named value of a section of /proc/net/snmp or
// /proc/net/netstat.
type Counter struct {
	// Name is the kernel's name, e.g. "CurrEstab" or "ListenOverflows".
	Name string
	// Value is the decimal integer exactly as the kernel printed it: counters
	// are unsigned longs (up to 2^64-1), Tcp MaxConn is signed (-1: no
	// limit). Keeping the text avoids rounding or wrapping any of them.
	Value string
}

// Int64 returns the value as an int64, or an error when it does not fit.
func (c Counter) Int64() (int64, error) { return strconv.ParseInt(c.Value, 10, 64) }

// Section is one "Prefix:" pair of lines of /proc/net/snmp or netstat, its
// counters in the kernel's order.
type Section struct {
	Name     string // "Tcp", "TcpExt", ...
	Counters []Counter
}

// Get returns the value of the counter named name.
func (s Section) Get(name string) (string, bool) {
	for _, c := range s.Counters {
		if c.Name == name {
			return c.Value, true
		}
	}
	return "", false
}

// Sections are the sections of one counter file in file order.
type Sections []Section

// Section returns the section named name ("Tcp", "TcpExt").
func (ss Sections) Section(name string) (Section, bool) {
	for _, s := range ss {
		if s.Name == name {
			return s, true
		}
	}
	return Section{}, false
}

// SNMP reads <root>/net/snmp (sections Ip, Icmp, IcmpMsg, Tcp, Udp, ...).
func (nfs NetFS) SNMP() (Sections, error) { return readCounters(nfs.path("snmp")) }

// Netstat reads <root>/net/netstat (sections TcpExt, IpExt, MPTcpExt, ...).
func (nfs NetFS) Netstat() (Sections, error) { return readCounters(nfs.path("netstat")) }

func readCounters(path string) (Sections, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	ss, err := ParseCounters(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return ss, nil
}

// ParseCounters parses the format of /proc/net/snmp and /proc/net/netstat:
// for each section a line "Prefix: Name1 Name2 ..." followed by a line
// "Prefix: value1 value2 ...".
//
// The column sets differ between kernel versions (6.18 has 15 Tcp and 135
// TcpExt columns; older kernels fewer, newer ones more), so the parser keeps
// every name/value pair under the kernel's name instead of mapping them to
// fixed struct fields as procfs' ProcSnmp and ProcNetstat do: those drop the
// columns they do not know, hold values as float64 (inexact above 2^53) and
// only read the per-process copies (/proc/<pid>/net/...).
//
// A names line without its values line, a values line of another section,
// a different number of names and values, or a value that is not an integer
// is an error wrapping ErrMalformed and naming the line.
func ParseCounters(r io.Reader) (Sections, error) {
	var (
		out   Sections
		names []string // pending names line
		head  string   // its prefix
		hline int
		n     int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxFileSize)
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		prefix, rest, ok := strings.Cut(line, ":")
		if !ok || prefix == "" || strings.ContainsAny(prefix, " \t") {
			return nil, fmt.Errorf("%w: line %d: no section prefix in %q", ErrMalformed, n, line)
		}
		fields := strings.Fields(rest)
		if names == nil {
			if len(fields) == 0 {
				return nil, fmt.Errorf("%w: line %d: section %s has no names", ErrMalformed, n, prefix)
			}
			if _, dup := out.Section(prefix); dup {
				return nil, fmt.Errorf("%w: line %d: section %s appears twice", ErrMalformed, n, prefix)
			}
			names, head, hline = fields, prefix, n
			continue
		}
		if prefix != head {
			return nil, fmt.Errorf("%w: line %d: values line of section %s follows the names of section %s (line %d)",
				ErrMalformed, n, prefix, head, hline)
		}
		if len(fields) != len(names) {
			return nil, fmt.Errorf("%w: line %d: section %s has %d names but %d values",
				ErrMalformed, n, head, len(names), len(fields))
		}
		sec := Section{Name: head, Counters: make([]Counter, len(names))}
		for i, v := range fields {
			if !isInteger(v) {
				return nil, fmt.Errorf("%w: line %d: section %s: value %q of %s is not an integer",
					ErrMalformed, n, head, v, names[i])
			}
			sec.Counters[i] = Counter{Name: names[i], Value: v}
		}
		out = append(out, sec)
		names = nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %w", ErrMalformed, n+1, err)
	}
	if names != nil {
		return nil, fmt.Errorf("%w: line %d: section %s has a names line but no values line", ErrMalformed, hline, head)
	}
	return out, nil
}

// isInteger reports whether v is a decimal integer that fits an int64 or a
// uint64, the two types the kernel prints these counters from.
func isInteger(v string) bool {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return true
	}
	_, err := strconv.ParseUint(v, 10, 64)
	return err == nil
}

// readSmallFile reads a whole proc file, refusing one larger than
// maxFileSize. Errors keep the *fs.PathError, so errors.Is(err,
// fs.ErrNotExist) works.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, path, maxFileSize)
	}
	return b, nil
}
