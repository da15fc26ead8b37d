package disks

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs/blockdevice"
)

// Default mount points.
const (
	DefaultProcRoot = "/proc"
	DefaultSysRoot  = "/sys"
)

// Device types as sysfs reports them in the DEVTYPE line of uevent.
const (
	TypeDisk      = "disk"
	TypePartition = "partition"
)

// ErrUnknownDevice is returned by Stats for a name /proc/diskstats does not
// list.
var ErrUnknownDevice = errors.New("unknown block device")

// maxAttrSize bounds the bytes read from one sysfs attribute (sysfs serves at
// most one page).
const maxAttrSize = 4096

// Device is one block device.
type Device struct {
	// Name is the kernel name as /proc/diskstats prints it ("sda1",
	// "nvme0n1", "dm-0", "cciss/c0d0"). Sysfs spells a '/' in a name as '!'
	// ("cciss!c0d0"); Name always uses '/'.
	Name string
	// Type is "disk" or "partition" (DEVTYPE in the uevent attribute), or
	// empty when sysfs does not say.
	Type string
	// DMName is the device-mapper name (/sys/class/block/dm-N/dm/name), empty
	// for other devices.
	DMName string
	// Model is the device model (device/model); a partition has its disk's.
	Model string
	// Serial is the serial number (device/serial, serial or the SCSI VPD page
	// 0x80 in device/vpd_pg80); a partition has its disk's.
	Serial string
	// Rotational is "1" for rotating media, "0" for solid state
	// (queue/rotational; a partition has its disk's), empty when unknown.
	Rotational string
	// InDiskstats reports whether /proc/diskstats lists the device, i.e.
	// whether Stats can read its counters.
	InDiskstats bool
}

// Stats holds the raw /proc/diskstats counters of one device.
type Stats struct {
	blockdevice.IOStats
	// HasDiscard is true when the kernel reports the discard counters
	// (Linux 4.18 and later).
	HasDiscard bool
	// HasFlush is true when the kernel reports the flush counters (Linux 5.5
	// and later).
	HasFlush bool
}

// FS reads block device information below a procfs and a sysfs root.
type FS struct {
	procRoot string
	sysRoot  string
	bd       blockdevice.FS
	known    *Known // sysfs descriptions to reuse, or nil
}

// NewFS returns an FS over the given procfs and sysfs mount points (empty
// means the default). Both must be directories.
func NewFS(procRoot, sysRoot string) (FS, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if sysRoot == "" {
		sysRoot = DefaultSysRoot
	}
	bd, err := blockdevice.NewFS(procRoot, sysRoot)
	if err != nil {
		return FS{}, fmt.Errorf("open block device roots %s, %s: %w", procRoot, sysRoot, err)
	}
	return FS{procRoot: procRoot, sysRoot: sysRoot, bd: bd}, nil
}

// diskstats reads and parses <proc>/diskstats.
func (f FS) diskstats() ([]blockdevice.Diskstats, error) {
	ds, err := f.bd.ProcDiskstats()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(f.procRoot, "diskstats"), err)
	}
	return ds, nil
}

// Stats returns the counters of the device called name in /proc/diskstats
// ('!' is taken as '/', the sysfs spelling). The name is only compared with
// the parsed list. An unlisted name gives an error wrapping
// ErrUnknownDevice.
func (f FS) Stats(name string) (Stats, error) {
	ds, err := f.diskstats()
	if err != nil {
		return Stats{}, err
	}
	want := strings.ReplaceAll(name, "!", "/")
	for _, d := range ds {
		if d.DeviceName == want {
			return statsOf(d), nil
		}
	}
	return Stats{}, fmt.Errorf("%q: %w", name, ErrUnknownDevice)
}

// Devices returns every block device /proc/diskstats or sysfs knows, sorted
// by name. Missing sysfs directories leave the sysfs fields empty; an
// unreadable /proc/diskstats is an error. Every device is described in
// sysfs afresh (WithKnown's descriptions are renewed, not used).
func (f FS) Devices() ([]Device, error) {
	devs, _, err := f.devices(false)
	return devs, err
}

// DeviceStats is one block device with its counters.
type DeviceStats struct {
	Device
	// Stats holds the counters when Device.InDiskstats is set.
	Stats Stats
}

// All returns what Devices returns, each device with its counters, from one
// read of /proc/diskstats; with WithKnown, the descriptions it holds.
func (f FS) All() ([]DeviceStats, error) {
	devs, stats, err := f.devices(true)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceStats, len(devs))
	for i, d := range devs {
		out[i] = DeviceStats{Device: d}
		if d.InDiskstats {
			out[i].Stats = stats[d.Name]
		}
	}
	return out, nil
}

// WithKnown returns f reusing, for devices /proc/diskstats lists, the
// sysfs descriptions k holds (and keeping those it makes in k).
func (f FS) WithKnown(k *Known) FS {
	f.known = k
	return f
}

// Known holds the sysfs descriptions (type, device-mapper name, model,
// serial, rotational) of block devices for a while: they cost a dozen
// sysfs reads per device and change only when a device does. A
// description is reused only for the same name with the same device
// numbers in /proc/diskstats, and for at most its ttl, so a replaced disk
// is described again at once when its numbers change and within ttl when
// they do not. Safe for concurrent use.
type Known struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]knownDevice
}

type knownDevice struct {
	dev Device
	num [2]uint32 // major, minor
	at  time.Time
}

// NewKnown returns an empty Known whose descriptions last ttl.
func NewKnown(ttl time.Duration) *Known {
	return &Known{ttl: ttl, now: time.Now, m: map[string]knownDevice{}}
}

// knownMax bounds Known: past it, the descriptions are all dropped (a host
// with more block devices only describes them every time).
const knownMax = 4096

func (k *Known) get(name string, num [2]uint32) (Device, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[name]
	if !ok || e.num != num || k.now().Sub(e.at) >= k.ttl {
		return Device{}, false
	}
	return e.dev, true
}

func (k *Known) put(d Device, num [2]uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) >= knownMax {
		clear(k.m)
	}
	k.m[d.Name] = knownDevice{dev: d, num: num, at: k.now()}
}

// devices reads /proc/diskstats once and sysfs, and returns the devices
// sorted by name and the counters of those /proc/diskstats lists. With
// reuse, the descriptions f.known holds are taken; without, every device
// is described (and f.known updated).
func (f FS) devices(reuse bool) ([]Device, map[string]Stats, error) {
	ds, err := f.diskstats()
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*Device{}
	stats := map[string]Stats{}
	nums := map[string][2]uint32{}
	for _, d := range ds {
		if !safeName(d.DeviceName) {
			continue
		}
		byName[d.DeviceName] = &Device{Name: d.DeviceName, InDiskstats: true}
		stats[d.DeviceName] = statsOf(d)
		nums[d.DeviceName] = [2]uint32{d.MajorNumber, d.MinorNumber}
	}
	entries, err := f.sysEntries()
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := strings.ReplaceAll(e, "!", "/")
		if byName[name] == nil {
			byName[name] = &Device{Name: name}
		}
	}
	out := make([]Device, 0, len(byName))
	for _, d := range byName {
		num, listed := nums[d.Name]
		if k := f.known; k != nil && listed {
			if kd, ok := k.get(d.Name, num); ok && reuse {
				out = append(out, kd)
				continue
			}
			f.describe(d)
			k.put(*d, num)
		} else {
			f.describe(d)
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, stats, nil
}

// statsOf takes the counters of one /proc/diskstats line.
func statsOf(d blockdevice.Diskstats) Stats {
	return Stats{IOStats: d.IOStats, HasDiscard: d.IoStatsCount >= 18, HasFlush: d.IoStatsCount >= 20}
}

// safeName rejects names that cannot be a single sysfs directory entry once
// '/' is spelled '!'.
func safeName(name string) bool {
	e := strings.ReplaceAll(name, "/", "!")
	return e != "" && e != "." && e != ".." && !strings.ContainsAny(e, "\x00")
}

// sysEntries lists the directory entries of <sys>/class/block, or of
// <sys>/block when the class directory is missing (only whole disks then).
// Hidden names are skipped.
func (f FS) sysEntries() ([]string, error) {
	var names []string
	for _, dir := range []string{filepath.Join(f.sysRoot, "class", "block"), filepath.Join(f.sysRoot, "block")} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		return names, nil
	}
	return nil, nil
}

// describe fills the sysfs fields of d. Unreadable attributes stay empty.
func (f FS) describe(d *Device) {
	entry := strings.ReplaceAll(d.Name, "/", "!")
	dir := filepath.Join(f.sysRoot, "class", "block", entry)
	if _, err := os.Stat(dir); err != nil {
		dir = filepath.Join(f.sysRoot, "block", entry)
		if _, err := os.Stat(dir); err != nil {
			return
		}
	}
	d.Type = ueventValue(filepath.Join(dir, "uevent"), "DEVTYPE")
	if d.Type == "" {
		if exists(filepath.Join(dir, "partition")) {
			d.Type = TypePartition
		} else if exists(filepath.Join(f.sysRoot, "block", entry)) {
			d.Type = TypeDisk
		}
	}
	d.DMName = readAttr(filepath.Join(dir, "dm", "name"))

	// A partition's directory sits inside its disk's.
	disk := dir
	if d.Type == TypePartition {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			disk = filepath.Dir(real)
		}
	}
	d.Rotational = readAttr(filepath.Join(disk, "queue", "rotational"))
	if d.Rotational != "0" && d.Rotational != "1" {
		d.Rotational = ""
	}
	d.Model = readAttr(filepath.Join(disk, "device", "model"))
	d.Serial = firstNonEmpty(
		func() string { return readAttr(filepath.Join(disk, "device", "serial")) },
		func() string { return readAttr(filepath.Join(disk, "serial")) },
		func() string { return vpdSerial(filepath.Join(disk, "device", "vpd_pg80")) },
	)
}

func firstNonEmpty(fns ...func() string) string {
	for _, fn := range fns {
		if s := fn(); s != "" {
			return s
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// readRaw reads at most maxAttrSize bytes of a file; errors give nil.
func readRaw(path string) []byte {
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxAttrSize))
	if err != nil {
		return nil
	}
	return b
}

// readAttr reads a text attribute: white space trimmed, non-printable bytes
// dropped; empty when unreadable.
func readAttr(path string) string {
	return clean(readRaw(path))
}

// clean keeps printable ASCII, trimmed.
func clean(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			out = append(out, c)
		} else if c == '\t' || c == '\n' {
			out = append(out, ' ')
		}
	}
	return strings.TrimSpace(string(out))
}

// ueventValue returns the value of KEY=value in a uevent file.
func ueventValue(path, key string) string {
	for line := range strings.SplitSeq(string(readRaw(path)), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return clean([]byte(v))
		}
	}
	return ""
}

// vpdSerial extracts the unit serial number from a SCSI VPD page 0x80 (SPC:
// byte 1 page code, bytes 2-3 page length, then the ASCII serial).
func vpdSerial(path string) string {
	return parseVPD80(readRaw(path))
}

func parseVPD80(b []byte) string {
	if len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if n > len(b)-4 {
		n = len(b) - 4
	}
	return clean(b[4 : 4+n])
}
