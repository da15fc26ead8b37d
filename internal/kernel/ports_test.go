package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func writeLocalPorts(t *testing.T, rng, reserved string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "net", "ipv4")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ip_local_port_range"), []byte(rng), 0o644); err != nil {
		t.Fatal(err)
	}
	if reserved != "-" {
		if err := os.WriteFile(filepath.Join(dir, "ip_local_reserved_ports"), []byte(reserved), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadLocalPorts(t *testing.T) {
	for _, c := range []struct {
		rng, reserved string
		want          LocalPorts
		bad           bool
	}{
		{"32768\t60999\n", "\n", LocalPorts{Min: 32768, Max: 60999}, false},
		{"32768\t60999\n", "-", LocalPorts{Min: 32768, Max: 60999}, false},
		{"40000 40009\n", "80,8080,39990-40002,40005,40009-50000\n",
			LocalPorts{Min: 40000, Max: 40009, Reserved: []uint16{40000, 40001, 40002, 40005, 40009}}, false},
		{"1024 65535\n", "65535\n", LocalPorts{Min: 1024, Max: 65535, Reserved: []uint16{65535}}, false},
		{"40000\n", "", LocalPorts{}, true},
		{"5 4\n", "", LocalPorts{}, true},
		{"1 70000\n", "", LocalPorts{}, true},
		{"40000 40009\n", "40001-40000\n", LocalPorts{}, true},
		{"40000 40009\n", "x\n", LocalPorts{}, true},
	} {
		got, err := ReadLocalPorts(writeLocalPorts(t, c.rng, c.reserved))
		if c.bad {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%q %q: %v, %v; want ErrMalformed", c.rng, c.reserved, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q %q: %+v, %v; want %+v", c.rng, c.reserved, got, err, c.want)
		}
	}
	if _, err := ReadLocalPorts(t.TempDir()); err == nil {
		t.Error("no error without the sysctl")
	}
}

// TestReadLocalPortsHost reads this machine's sysctls and checks them
// against their own text.
func TestReadLocalPortsHost(t *testing.T) {
	lp, err := ReadLocalPorts("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if lp.Min == 0 || lp.Max < lp.Min {
		t.Fatalf("range %+v", lp)
	}
	for _, p := range lp.Reserved {
		if p < lp.Min || p > lp.Max {
			t.Errorf("reserved port %d outside the range %d-%d", p, lp.Min, lp.Max)
		}
	}
}
