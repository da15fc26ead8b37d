package metrics

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// diskExporter builds an exporter reading the scenario's fixture tree.
func diskExporter(t testing.TB, scenario string) *Exporter {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ProcRoot = filepath.Join(fixtureRoot(scenario), "proc")
	cfg.SysRoot = filepath.Join(fixtureRoot(scenario), "sys")
	e, err := newExporter(cfg, NopLogger{}, &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDiskDiscovery(t *testing.T) {
	v, err := diskExporter(t, "disks").Export(context.Background(), "disk.discovery", nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := decodeLLD(t, v)
	byName := map[string]lldRow{}
	var names []string
	for _, r := range rows {
		if len(r) != 6 {
			t.Errorf("row %v: want 6 macros", r)
		}
		byName[r["{#DEVNAME}"]] = r
		names = append(names, r["{#DEVNAME}"])
	}
	wantNames := []string{"cciss/c0d0", "cciss/c0d0p1", "dm-0", "loop0", "nvme0n1", "nvme0n1p1", "sda", "sda1", "sda2", "sr0", "vda", "zram1"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("devices %v, want %v", names, wantNames)
	}
	for _, want := range []lldRow{
		{"{#DEVNAME}": "dm-0", "{#DEVTYPE}": "disk", "{#DMNAME}": "vg0-root", "{#MODEL}": "", "{#SERIAL}": "", "{#ROTATIONAL}": "0"},
		{"{#DEVNAME}": "nvme0n1p1", "{#DEVTYPE}": "partition", "{#DMNAME}": "", "{#MODEL}": "Samsung SSD 970 EVO Plus 500GB", "{#SERIAL}": "S4EVNX0N123456", "{#ROTATIONAL}": "0"},
		{"{#DEVNAME}": "cciss/c0d0", "{#DEVTYPE}": "disk", "{#DMNAME}": "", "{#MODEL}": "LOGICAL VOLUME", "{#SERIAL}": "", "{#ROTATIONAL}": "1"},
		{"{#DEVNAME}": "sr0", "{#DEVTYPE}": "disk", "{#DMNAME}": "", "{#MODEL}": "QEMU DVD-ROM", "{#SERIAL}": "", "{#ROTATIONAL}": "1"},
	} {
		if got := byName[want["{#DEVNAME}"]]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", want["{#DEVNAME}"], got, want)
		}
	}
	if !strings.HasPrefix(v, `[{"{#DEVNAME}":"cciss/c0d0","{#DEVTYPE}":"disk","{#DMNAME}":"","{#MODEL}":"LOGICAL VOLUME","{#SERIAL}":"","{#ROTATIONAL}":"1"},`) {
		t.Errorf("macro order or text: %s", v)
	}
}

func TestDiskDiscoveryNoDisks(t *testing.T) {
	v, err := diskExporter(t, "no-disks").Export(context.Background(), "disk.discovery", nil)
	if err != nil || v != "[]" {
		t.Errorf("disk.discovery with no disks = %q, %v; want []", v, err)
	}
}

func TestDiskGet(t *testing.T) {
	e := diskExporter(t, "disks")
	cases := []struct {
		name, dev, want string
	}{
		{"+flush counters", "nvme0n1", `{"read_ios":987654,"read_merges":1234,"read_sectors":45678901,"read_ticks_ms":123456,` +
			`"write_ios":765432,"write_merges":4321,"write_sectors":87654321,"write_ticks_ms":234567,"in_flight":3,"io_ticks_ms":345678,` +
			`"time_in_queue_ms":358023,"discard_ios":555,"discard_merges":0,"discard_sectors":123456,"discard_ticks_ms":99,"flush_ios":44444,"flush_ticks_ms":5555}`},
		{"+old kernel: 11 counters", "sr0", `{"read_ios":108,"read_merges":0,"read_sectors":8460,"read_ticks_ms":49,` +
			`"write_ios":0,"write_merges":0,"write_sectors":0,"write_ticks_ms":0,"in_flight":0,"io_ticks_ms":92,"time_in_queue_ms":49}`},
		{"+slash name", "cciss/c0d0", `{"read_ios":4000,"read_merges":100,"read_sectors":320000,"read_ticks_ms":2000,` +
			`"write_ios":5000,"write_merges":200,"write_sectors":400000,"write_ticks_ms":3000,"in_flight":1,"io_ticks_ms":4500,` +
			`"time_in_queue_ms":5000,"discard_ios":0,"discard_merges":0,"discard_sectors":0,"discard_ticks_ms":0,"flush_ios":0,"flush_ticks_ms":0}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.Export(context.Background(), "disk.get", []string{c.dev})
			if err != nil || got != c.want {
				t.Fatalf("disk.get[%s]\n got %s, %v\nwant %s", c.dev, got, err, c.want)
			}
		})
	}
	bang, err := e.Export(context.Background(), "disk.get", []string{"cciss!c0d0"})
	if err != nil || bang != cases[2].want {
		t.Errorf("disk.get[cciss!c0d0] = %s, %v; want the cciss/c0d0 counters", bang, err)
	}
}

func TestDiskGetErrors(t *testing.T) {
	e := diskExporter(t, "disks")
	malformed := func(name string) string {
		return "Invalid first parameter: device name must be 1 to 64 characters of A-Z a-z 0-9 . _ : + - / !, got " + strconv.Quote(name) + "."
	}
	long := strings.Repeat("a", 65)
	cases := []struct {
		name   string
		params []string
		want   string
	}{
		{"-missing", nil, "Invalid first parameter: device is required."},
		{"-unknown", []string{"x"}, `Invalid first parameter: unknown device "x".`},
		{"-unknown dotdot", []string{"../../etc/passwd"}, `Invalid first parameter: unknown device "../../etc/passwd".`},
		{"-space", []string{"sd a"}, malformed("sd a")},
		{"-quote", []string{`sda"`}, malformed(`sda"`)},
		{"-nul", []string{"sda\x00"}, malformed("sda\x00")},
		{"-utf8", []string{"sdä"}, malformed("sdä")},
		{"-too long", []string{long}, malformed(long[:64] + "...")},
		{"-two params", []string{"sda", "x"}, "Too many parameters."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Export(context.Background(), "disk.get", c.params)
			if err == nil || err.Error() != c.want {
				t.Errorf("disk.get%q: %v, want %q", c.params, err, c.want)
			}
		})
	}
	// No diskstats at all: a read error, not "unknown device".
	cfg := DefaultConfig()
	cfg.ProcRoot, cfg.SysRoot = t.TempDir(), t.TempDir()
	e, err := newExporter(cfg, NopLogger{}, &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	for k, params := range map[string][]string{"disk.get": {"sda"}, "disk.discovery": nil} {
		_, err := e.Export(context.Background(), k, params)
		if err == nil || !strings.HasPrefix(err.Error(), "Cannot obtain block device statistics. ") {
			t.Errorf("%s without diskstats: %v", k, err)
		}
	}
}

func TestGoldenDisks(t *testing.T) {
	t.Run("disks", func(t *testing.T) {
		checkGolden(t, "disks", []goldenCase{
			{key: "disk.discovery"},
			{key: "disk.get", params: []string{"sda"}},
			{key: "disk.get", params: []string{"sda2"}},
			{key: "disk.get", params: []string{"nvme0n1p1"}},
			{key: "disk.get", params: []string{"dm-0"}},
			{key: "disk.get", params: []string{"sr0"}},
			{key: "disk.get", params: []string{"cciss/c0d0p1"}},
			{key: "disk.get", params: []string{"zram1"}},
			{key: "disk.get", params: []string{"sd a"}},
			{key: "disk.get.all"},
		})
	})
	t.Run("no-disks", func(t *testing.T) {
		checkGolden(t, "no-disks", []goldenCase{{key: "disk.discovery"}, {key: "disk.get", params: []string{"sda"}}, {key: "disk.get.all"}})
	})
	t.Run("no-sysfs", func(t *testing.T) {
		checkGolden(t, "no-sysfs", []goldenCase{{key: "disk.discovery"}, {key: "disk.get", params: []string{"nvme0n1"}}, {key: "disk.get.all"}})
	})
}

// TestIntegrationDiskLive compares disk.discovery and disk.get with the
// machine's /proc/diskstats and /sys/block, read here independently.
func TestIntegrationDiskLive(t *testing.T) {
	e, err := newExporter(DefaultConfig(), NopLogger{}, &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	readStats := func() map[string][]uint64 {
		fh, err := os.Open("/proc/diskstats")
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		out := map[string][]uint64{}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			for _, s := range f[3:] {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				out[f[2]] = append(out[f[2]], n)
			}
		}
		return out
	}
	before := readStats()
	v, err := e.Export(context.Background(), "disk.discovery", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]lldRow{}
	for _, r := range decodeLLD(t, v) {
		found[r["{#DEVNAME}"]] = r
	}
	for name := range before {
		if _, ok := found[name]; !ok {
			t.Errorf("%s is in /proc/diskstats, not in disk.discovery", name)
		}
	}
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		name := strings.ReplaceAll(d.Name(), "!", "/")
		if r := found[name]; r["{#DEVTYPE}"] != "disk" {
			t.Errorf("/sys/block/%s: disk.discovery row %v, want DEVTYPE disk", d.Name(), r)
		}
	}
	got := map[string]map[string]uint64{}
	for name := range before {
		v, err := e.Export(context.Background(), "disk.get", []string{name})
		if err != nil {
			t.Fatalf("disk.get[%s]: %v", name, err)
		}
		var m map[string]uint64
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatal(err)
		}
		got[name] = m
	}
	after := readStats()
	names := []string{"read_ios", "read_merges", "read_sectors", "read_ticks_ms", "write_ios", "write_merges", "write_sectors",
		"write_ticks_ms", "in_flight", "io_ticks_ms", "time_in_queue_ms", "discard_ios", "discard_merges", "discard_sectors",
		"discard_ticks_ms", "flush_ios", "flush_ticks_ms"}
	for dev, m := range got {
		if len(m) != len(before[dev]) {
			t.Errorf("disk.get[%s] has %d fields, diskstats %d columns", dev, len(m), len(before[dev]))
			continue
		}
		for i, lo := range before[dev] {
			v, hi := m[names[i]], after[dev][i]
			if names[i] != "in_flight" && (v < lo || v > hi) {
				t.Errorf("disk.get[%s] %s = %d, diskstats read %d before and %d after", dev, names[i], v, lo, hi)
			}
		}
	}
}

// checkDiskGetAll checks disk.get.all against disk.discovery and disk.get
// of the same exporter: the same devices in the same order, each row's
// discovery fields equal to the discovery macros, its counters equal to
// disk.get's (within the moves of a live system: between lo and hi, which
// read the counters before and after) and no counter fields for a device
// disk.get does not know.
func checkDiskGetAll(t *testing.T, e *Exporter, moving bool) {
	t.Helper()
	ctx := context.Background()
	disc, err := e.Export(ctx, "disk.discovery", nil)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]map[string]uint64{}
	rows := decodeLLD(t, disc)
	for _, r := range rows {
		if v, err := e.Export(ctx, "disk.get", []string{r["{#DEVNAME}"]}); err == nil {
			var m map[string]uint64
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				t.Fatal(err)
			}
			before[r["{#DEVNAME}"]] = m
		}
	}
	v, err := e.Export(ctx, "disk.get.all", nil)
	if err != nil {
		t.Fatal(err)
	}
	var all []map[string]any
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&all); err != nil {
		t.Fatalf("disk.get.all is not a JSON array: %v\n%s", err, v)
	}
	if len(all) != len(rows) {
		t.Fatalf("disk.get.all lists %d devices, disk.discovery %d", len(all), len(rows))
	}
	for i, r := range rows {
		got := all[i]
		name := r["{#DEVNAME}"]
		for _, f := range []string{"devname", "devtype", "dmname", "model", "serial", "rotational"} {
			if got[f] != r["{#"+strings.ToUpper(f)+"}"] {
				t.Errorf("%s: %s = %v, disk.discovery has %q", name, f, got[f], r["{#"+strings.ToUpper(f)+"}"])
			}
		}
		lo, ok := before[name]
		if !ok {
			if len(got) != 6 {
				t.Errorf("%s: disk.get does not know it, disk.get.all gives %v", name, got)
			}
			continue
		}
		if len(got) != 6+len(lo) {
			t.Errorf("%s: %d fields, want 6 + the %d of disk.get", name, len(got), len(lo))
		}
		var hi map[string]uint64
		if moving {
			v, err := e.Export(ctx, "disk.get", []string{name})
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(v), &hi); err != nil {
				t.Fatal(err)
			}
		}
		for f, want := range lo {
			n, err := strconv.ParseUint(string(got[f].(json.Number)), 10, 64)
			switch {
			case err != nil:
				t.Errorf("%s: %s = %v", name, f, got[f])
			case !moving && n != want:
				t.Errorf("%s: %s = %d, disk.get %d", name, f, n, want)
			case moving && f != "in_flight" && (n < want || n > hi[f]):
				t.Errorf("%s: %s = %d, disk.get %d before and %d after", name, f, n, want, hi[f])
			}
		}
	}
}

func TestDiskGetAll(t *testing.T) {
	for _, scenario := range []string{"disks", "no-disks", "no-sysfs"} {
		t.Run(scenario, func(t *testing.T) { checkDiskGetAll(t, diskExporter(t, scenario), false) })
	}
	t.Run("live", func(t *testing.T) {
		e, err := newExporter(DefaultConfig(), NopLogger{}, &fakeSource{})
		if err != nil {
			t.Fatal(err)
		}
		checkDiskGetAll(t, e, true)
	})
	_, err := diskExporter(t, "disks").Export(context.Background(), "disk.get.all", []string{"sda"})
	if err == nil || err.Error() != "Too many parameters." {
		t.Errorf("disk.get.all[sda]: %v, want Too many parameters.", err)
	}
}
