package disks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKnownReusesDescriptions changes a copy of the disks fixture under a
// Known: a model changed in sysfs shows only once the description is older
// than the ttl, or at once when the device's numbers in /proc/diskstats
// change; the counters are read every time; Devices (discovery) always
// describes afresh.
func TestKnownReusesDescriptions(t *testing.T) {
	root := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join("..", "..", "testdata", "discovery", "disks")+"/.", root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	f, err := NewFS(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	k := NewKnown(10 * time.Minute)
	k.now = func() time.Time { return now }
	f = f.WithKnown(k)
	sda := func() DeviceStats {
		t.Helper()
		all, err := f.All()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range all {
			if d.Name == "sda" {
				return d
			}
		}
		t.Fatal("no sda")
		return DeviceStats{}
	}
	model := filepath.Join(root, "sys", "class", "block", "sda", "device", "model")
	diskstats := filepath.Join(root, "proc", "diskstats")
	write := func(path, from, to string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), from) {
			t.Fatalf("%s has no %q", path, from)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	first := sda()
	if first.Model != "ST1000DM010-2EP1" {
		t.Fatalf("model %q", first.Model)
	}
	write(model, "ST1000DM010-2EP1", "NEW-MODEL")
	write(diskstats, "   8       0 sda 1843022 ", "   8       0 sda 1843023 ")
	if d := sda(); d.Model != "ST1000DM010-2EP1" || d.Stats.ReadIOs != first.Stats.ReadIOs+1 {
		t.Errorf("within the ttl: model %q (want the known one), reads %d (want %d: counters are read every time)", d.Model, d.Stats.ReadIOs, first.Stats.ReadIOs+1)
	}
	devs, err := f.Devices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Name == "sda" && d.Model != "NEW-MODEL" {
			t.Errorf("Devices: model %q, want a fresh description", d.Model)
		}
	}
	// Devices renewed the description: All takes the new one.
	if d := sda(); d.Model != "NEW-MODEL" {
		t.Errorf("after Devices: model %q, want NEW-MODEL", d.Model)
	}
	write(model, "NEW-MODEL", "NEWER-MODEL")
	now = now.Add(10 * time.Minute)
	if d := sda(); d.Model != "NEWER-MODEL" {
		t.Errorf("after the ttl: model %q, want NEWER-MODEL", d.Model)
	}
	// Another device under the same name: new numbers, described at once.
	write(model, "NEWER-MODEL", "OTHER-DISK")
	write(diskstats, "   8       0 sda ", "  65       0 sda ")
	if d := sda(); d.Model != "OTHER-DISK" {
		t.Errorf("new device numbers: model %q, want OTHER-DISK", d.Model)
	}
}

// BenchmarkAll reads every block device of this machine with its
// counters, as disk.get.all does: describing each in sysfs every time,
// and with the descriptions known.
//
//	go test -run '^$' -bench All ./internal/disks/
func BenchmarkAll(b *testing.B) {
	f, err := NewFS("", "")
	if err != nil {
		b.Skip(err)
	}
	for _, c := range []struct {
		name string
		fs   FS
	}{{"describe", f}, {"known", f.WithKnown(NewKnown(time.Hour))}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fs.All(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
