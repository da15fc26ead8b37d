package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// LocalPorts is the port range connect() picks local ports from
// (net.ipv4.ip_local_port_range, which IPv6 shares) and the ports of it
// that net.ipv4.ip_local_reserved_ports keeps out of automatic assignment.
type LocalPorts struct {
	Min, Max uint16
	// Reserved holds the reserved port numbers inside [Min, Max], ascending.
	Reserved []uint16
}

// Size is the number of ports of the range, reserved ones included.
func (l LocalPorts) Size() int { return int(l.Max) - int(l.Min) + 1 }

// ReadLocalPorts reads ip_local_port_range and ip_local_reserved_ports
// under procRoot (<procRoot>/sys/net/ipv4/...). Both are per network
// namespace: /proc/sys/net shows the namespace of the thread that opens the
// file. A missing ip_local_reserved_ports (kernels before 2.6.35) reserves
// nothing.
func ReadLocalPorts(procRoot string) (LocalPorts, error) {
	dir := filepath.Join(procRoot, "sys", "net", "ipv4")
	path := filepath.Join(dir, "ip_local_port_range")
	b, err := readSmallFile(path)
	if err != nil {
		return LocalPorts{}, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return LocalPorts{}, fmt.Errorf("%w: %s: expected 2 values, got %q", ErrMalformed, path, strings.TrimSpace(string(b)))
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo == 0 || lo > hi {
		return LocalPorts{}, fmt.Errorf("%w: %s: not a port range: %q", ErrMalformed, path, strings.TrimSpace(string(b)))
	}
	lp := LocalPorts{Min: uint16(lo), Max: uint16(hi)}
	path = filepath.Join(dir, "ip_local_reserved_ports")
	b, err = readSmallFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return lp, nil
		}
		return LocalPorts{}, err
	}
	lp.Reserved, err = parseReservedPorts(string(b), lp.Min, lp.Max)
	if err != nil {
		return LocalPorts{}, fmt.Errorf("%w: %s: %v", ErrMalformed, path, err)
	}
	return lp, nil
}

// parseReservedPorts parses the kernel's list of ports and ranges
// ("8080,9000-9100", empty for none) and returns the ports inside
// [lo, hi], ascending and each once.
func parseReservedPorts(s string, lo, hi uint16) ([]uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	in := make([]bool, int(hi)-int(lo)+1)
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(item, "-")
		first, err := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", item)
		}
		last := first
		if isRange {
			if last, err = strconv.ParseUint(strings.TrimSpace(b), 10, 16); err != nil || last < first {
				return nil, fmt.Errorf("bad port range %q", item)
			}
		}
		for p := max(first, uint64(lo)); p <= min(last, uint64(hi)); p++ {
			in[p-uint64(lo)] = true
		}
	}
	var out []uint16
	for i, r := range in {
		if r {
			out = append(out, lo+uint16(i))
		}
	}
	return out, nil
}
