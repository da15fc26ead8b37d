package disks

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// fixture opens the fixture roots of a scenario under testdata/discovery.
func fixture(t *testing.T, scenario string) FS {
	t.Helper()
	root := filepath.Join("..", "..", "testdata", "discovery", scenario)
	f, err := NewFS(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err != nil {
		t.Fatalf("NewFS(%s): %v", root, err)
	}
	return f
}

func TestDevicesFixture(t *testing.T) {
	got, err := fixture(t, "disks").Devices()
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Name: "cciss/c0d0", Type: "disk", Model: "LOGICAL VOLUME", Rotational: "1", InDiskstats: true},
		{Name: "cciss/c0d0p1", Type: "partition", Model: "LOGICAL VOLUME", Rotational: "1", InDiskstats: true},
		{Name: "dm-0", Type: "disk", DMName: "vg0-root", Rotational: "0", InDiskstats: true},
		{Name: "loop0", Type: "disk", Rotational: "1", InDiskstats: true},
		{Name: "nvme0n1", Type: "disk", Model: "Samsung SSD 970 EVO Plus 500GB", Serial: "S4EVNX0N123456", Rotational: "0", InDiskstats: true},
		{Name: "nvme0n1p1", Type: "partition", Model: "Samsung SSD 970 EVO Plus 500GB", Serial: "S4EVNX0N123456", Rotational: "0", InDiskstats: true},
		{Name: "sda", Type: "disk", Model: "ST1000DM010-2EP1", Serial: "Z9A1B2C3D4E5F", Rotational: "1", InDiskstats: true},
		{Name: "sda1", Type: "partition", Model: "ST1000DM010-2EP1", Serial: "Z9A1B2C3D4E5F", Rotational: "1", InDiskstats: true},
		// sda2's uevent has no DEVTYPE: the partition attribute tells.
		{Name: "sda2", Type: "partition", Model: "ST1000DM010-2EP1", Serial: "Z9A1B2C3D4E5F", Rotational: "1", InDiskstats: true},
		{Name: "sr0", Type: "disk", Model: "QEMU DVD-ROM", Rotational: "1", InDiskstats: true},
		{Name: "vda", Type: "disk", Serial: "1816638593338064", Rotational: "1", InDiskstats: true},
		// In sysfs only.
		{Name: "zram1", Type: "disk", Rotational: "0"},
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("Devices() mismatch\nwant %+v\n got %+v", want, got)
	}
}

func TestDevicesEmptyAndPartial(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		want     []Device
	}{
		{"no-disks", []Device{}},
		// No sysfs at all: the diskstats names, sysfs fields empty.
		{"no-sysfs", []Device{{Name: "nvme0n1", InDiskstats: true}, {Name: "sda", InDiskstats: true}}},
	} {
		t.Run("+"+tc.scenario, func(t *testing.T) {
			got, err := fixture(t, tc.scenario).Devices()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.want, got) {
				t.Errorf("want %+v\n got %+v", tc.want, got)
			}
		})
	}
}

func TestStatsFixture(t *testing.T) {
	f := fixture(t, "disks")
	for _, tc := range []struct {
		name string
		want Stats
	}{
		{"nvme0n1", Stats{HasDiscard: true, HasFlush: true}},
		{"cciss/c0d0", Stats{HasDiscard: true, HasFlush: true}},
		{"cciss!c0d0", Stats{HasDiscard: true, HasFlush: true}},
		{"sr0", Stats{}},
	} {
		t.Run("+"+tc.name, func(t *testing.T) {
			got, err := f.Stats(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got.HasDiscard != tc.want.HasDiscard || got.HasFlush != tc.want.HasFlush {
				t.Errorf("discard/flush = %v/%v, want %v/%v", got.HasDiscard, got.HasFlush, tc.want.HasDiscard, tc.want.HasFlush)
			}
		})
	}
	st, err := f.Stats("nvme0n1")
	if err != nil {
		t.Fatal(err)
	}
	// 259 0 nvme0n1 987654 1234 45678901 123456 765432 4321 87654321 234567 3 345678 358023 555 0 123456 99 44444 5555
	want := []uint64{987654, 1234, 45678901, 123456, 765432, 4321, 87654321, 234567, 3, 345678, 358023, 555, 0, 123456, 99, 44444, 5555}
	s := st.IOStats
	got := []uint64{s.ReadIOs, s.ReadMerges, s.ReadSectors, s.ReadTicks, s.WriteIOs, s.WriteMerges, s.WriteSectors, s.WriteTicks,
		s.IOsInProgress, s.IOsTotalTicks, s.WeightedIOTicks, s.DiscardIOs, s.DiscardMerges, s.DiscardSectors, s.DiscardTicks,
		s.FlushRequestsCompleted, s.TimeSpentFlushing}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("nvme0n1 counters\nwant %v\n got %v", want, got)
	}
}

func TestStatsUnknown(t *testing.T) {
	f := fixture(t, "disks")
	for _, name := range []string{"sdz", "", "../diskstats", "sda ", "cciss"} {
		_, err := f.Stats(name)
		if !errors.Is(err, ErrUnknownDevice) {
			t.Errorf("Stats(%q) = %v, want ErrUnknownDevice", name, err)
		}
	}
}

func TestNewFSMissingRoot(t *testing.T) {
	if _, err := NewFS(filepath.Join(t.TempDir(), "nope"), "/sys"); err == nil {
		t.Error("NewFS with a missing procfs root: no error")
	}
}

func TestStatsMissingDiskstats(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFS(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stats("sda"); err == nil || errors.Is(err, ErrUnknownDevice) {
		t.Errorf("Stats without diskstats = %v, want a read error", err)
	}
	if _, err := f.Devices(); err == nil {
		t.Error("Devices without diskstats: no error")
	}
}

func TestParseVPD80(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"+valid", append([]byte{0, 0x80, 0, 8}, "  ABC123"...), "ABC123"},
		{"+length past the end", append([]byte{0, 0x80, 0, 40}, "XYZ"...), "XYZ"},
		{"+binary dropped", append([]byte{0, 0x80, 0, 5}, 'A', 0, 1, 'B', 0xff), "AB"},
		{"-other page", append([]byte{0, 0x83, 0, 3}, "ABC"...), ""},
		{"-short", []byte{0, 0x80}, ""},
		{"-empty", nil, ""},
	} {
		if got := parseVPD80(tc.in); got != tc.want {
			t.Errorf("%s: parseVPD80(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// readDiskstats parses /proc/diskstats independently of procfs: name → the
// counter columns.
func readDiskstats(t *testing.T) map[string][]uint64 {
	t.Helper()
	fh, err := os.Open("/proc/diskstats")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	out := map[string][]uint64{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var v []uint64
		for _, s := range f[3:] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("diskstats line %q: %v", sc.Text(), err)
			}
			v = append(v, n)
		}
		out[f[2]] = v
	}
	return out
}

func counters(s Stats) []uint64 {
	v := []uint64{s.ReadIOs, s.ReadMerges, s.ReadSectors, s.ReadTicks, s.WriteIOs, s.WriteMerges, s.WriteSectors, s.WriteTicks,
		s.IOsInProgress, s.IOsTotalTicks, s.WeightedIOTicks}
	if s.HasDiscard {
		v = append(v, s.DiscardIOs, s.DiscardMerges, s.DiscardSectors, s.DiscardTicks)
	}
	if s.HasFlush {
		v = append(v, s.FlushRequestsCompleted, s.TimeSpentFlushing)
	}
	return v
}

// TestIntegrationLive compares Devices and Stats with the machine's own
// /proc/diskstats and /sys/block, read independently.
func TestIntegrationLive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	f, err := NewFS("", "")
	if err != nil {
		t.Fatal(err)
	}
	before := readDiskstats(t)
	devs, err := f.Devices()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Device{}
	for _, d := range devs {
		byName[d.Name] = d
	}
	for name := range before {
		if d, ok := byName[name]; !ok || !d.InDiskstats {
			t.Errorf("diskstats device %s: missing from Devices() (%+v)", name, d)
		}
	}
	disks, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range disks {
		name := strings.ReplaceAll(e.Name(), "!", "/")
		d, ok := byName[name]
		if !ok || d.Type != TypeDisk {
			t.Errorf("/sys/block/%s: Devices() has %+v, want a disk", e.Name(), d)
			continue
		}
		rot, _ := os.ReadFile(filepath.Join("/sys/block", e.Name(), "queue", "rotational"))
		if got := strings.TrimSpace(string(rot)); got != d.Rotational {
			t.Errorf("%s: Rotational = %q, sysfs says %q", name, d.Rotational, got)
		}
		if dm, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dm", "name")); err == nil && strings.TrimSpace(string(dm)) != d.DMName {
			t.Errorf("%s: DMName = %q, sysfs says %q", name, d.DMName, dm)
		}
	}
	for _, d := range devs {
		if d.Type == TypePartition {
			if _, err := os.Stat(filepath.Join("/sys/class/block", strings.ReplaceAll(d.Name, "/", "!"), "partition")); err != nil {
				t.Errorf("%s: a partition without a partition attribute: %v", d.Name, err)
			}
		}
	}
	stats := map[string]Stats{}
	for name := range before {
		st, err := f.Stats(name)
		if err != nil {
			t.Fatalf("Stats(%s): %v", name, err)
		}
		stats[name] = st
	}
	after := readDiskstats(t)
	for name, st := range stats {
		got, lo, hi := counters(st), before[name], after[name]
		if len(got) != len(lo) {
			t.Errorf("%s: %d counters, diskstats has %d", name, len(got), len(lo))
			continue
		}
		for i := range got {
			// in_flight (index 8) is a gauge; every other column only grows.
			if i != 8 && (got[i] < lo[i] || got[i] > hi[i]) {
				t.Errorf("%s column %d = %d, not within the reads before and after (%d..%d)", name, i+4, got[i], lo[i], hi[i])
			}
		}
	}
}

// TestAllMatchesDevicesAndStats checks that All lists what Devices lists,
// each device listed by /proc/diskstats with what Stats gives for it, over
// the fixtures and the machine's own /proc and /sys.
func TestAllMatchesDevicesAndStats(t *testing.T) {
	check := func(t *testing.T, f FS) {
		all, err := f.All()
		if err != nil {
			t.Fatal(err)
		}
		devs, err := f.Devices()
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(devs) {
			t.Fatalf("All lists %d devices, Devices %d", len(all), len(devs))
		}
		counted := 0
		for i, d := range all {
			if !reflect.DeepEqual(d.Device, devs[i]) {
				t.Errorf("device %d: All %+v, Devices %+v", i, d.Device, devs[i])
			}
			if !d.InDiskstats {
				if d.Stats != (Stats{}) {
					t.Errorf("%s: not in diskstats but has counters %+v", d.Name, d.Stats)
				}
				continue
			}
			counted++
			st, err := f.Stats(d.Name)
			if err != nil {
				t.Errorf("%s: %v", d.Name, err)
				continue
			}
			// The live counters move between the two reads: compare what
			// cannot move (the fields the kernel has), and that nothing
			// went backwards.
			if st.HasDiscard != d.Stats.HasDiscard || st.HasFlush != d.Stats.HasFlush || st.ReadIOs < d.Stats.ReadIOs || st.WriteIOs < d.Stats.WriteIOs {
				t.Errorf("%s: All %+v, Stats %+v", d.Name, d.Stats, st)
			}
		}
		if counted == 0 {
			t.Errorf("no device with counters")
		}
	}
	for _, scenario := range []string{"disks", "no-sysfs"} {
		t.Run("+"+scenario, func(t *testing.T) {
			f := fixture(t, scenario)
			check(t, f)
			// Fixtures do not move: every counter equals Stats'.
			all, _ := f.All()
			for _, d := range all {
				if st, err := f.Stats(d.Name); err == nil && st != d.Stats {
					t.Errorf("%s: All %+v, Stats %+v", d.Name, d.Stats, st)
				}
			}
		})
	}
	t.Run("+live", func(t *testing.T) {
		f, err := NewFS("", "")
		if err != nil {
			t.Skip(err)
		}
		check(t, f)
	})
}
