package metrics

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/disks"
)

var paramDevice = Param{Name: "device", Description: "block device name as disk.discovery returns it, e.g. sda, nvme0n1p1, dm-0", Required: true}

// deviceNameRe is what a device name may look like; the kernel's names fit
// (cciss/c0d0 is also accepted as cciss!c0d0, its sysfs spelling).
var deviceNameRe = regexp.MustCompile(`^[A-Za-z0-9._:+!/-]{1,64}$`)

var errDiskTable = &ItemError{msg: "Cannot obtain block device statistics."}

// diskMetrics declares the disk keys.
func (e *Exporter) diskMetrics() []Metric {
	return []Metric{
		{
			Key:         "disk.discovery",
			Description: "Discovery of block devices with their type, device-mapper name, model, serial and rotational flag.",
			Handler:     e.diskDiscovery,
		},
		{
			Key:         "disk.get",
			Description: "JSON object with the raw /proc/diskstats counters of a block device.",
			Params:      []Param{paramDevice},
			Handler:     e.diskGet,
		},
		{
			Key: "disk.get.all",
			Description: "JSON array of every block device disk.discovery lists, with its discovery fields and " +
				"the counters disk.get returns, from one read of /proc/diskstats.",
			Handler: e.diskGetAll,
		},
	}
}

// lldDisk is the JSON form of one discovered block device.
type lldDisk struct {
	Name       string `json:"{#DEVNAME}"`
	Type       string `json:"{#DEVTYPE}"`
	DMName     string `json:"{#DMNAME}"`
	Model      string `json:"{#MODEL}"`
	Serial     string `json:"{#SERIAL}"`
	Rotational string `json:"{#ROTATIONAL}"`
}

// diskDiscovery: disk.discovery → LLD JSON array of every block device.
func (e *Exporter) diskDiscovery(context.Context, Params) (string, error) {
	fs, err := disks.NewFS(e.cfg.ProcRoot, e.cfg.SysRoot)
	if err != nil {
		return "", operatorError(err, errDiskTable)
	}
	devs, err := fs.Devices()
	if err != nil {
		return "", operatorError(err, errDiskTable)
	}
	out := make([]lldDisk, len(devs))
	for i, d := range devs {
		out[i] = lldDisk{Name: d.Name, Type: d.Type, DMName: d.DMName, Model: d.Model, Serial: d.Serial, Rotational: d.Rotational}
	}
	return marshalLLD(out)
}

// diskGet: disk.get[<device>] → JSON object of the device's counters. The
// name is only compared with the names /proc/diskstats lists.
func (e *Exporter) diskGet(_ context.Context, p Params) (string, error) {
	name := p.Get(0)
	if !deviceNameRe.MatchString(name) {
		return "", invalidParam(0, "device name must be 1 to 64 characters of A-Z a-z 0-9 . _ : + - / !, got %q", clip(name))
	}
	fs, err := disks.NewFS(e.cfg.ProcRoot, e.cfg.SysRoot)
	if err != nil {
		return "", operatorError(err, errDiskTable)
	}
	st, err := fs.Stats(name)
	if errors.Is(err, disks.ErrUnknownDevice) {
		return "", invalidParam(0, "unknown device %q", clip(name))
	}
	if err != nil {
		return "", operatorError(err, errDiskTable)
	}
	return string(appendDiskStats(nil, &st)), nil
}

// diskDescriptionTTL is how long disk.get.all reuses a device's sysfs
// description (disks.Known): the counters are read every time, the model,
// serial and type at most this long after a change that keeps the device's
// name and numbers. disk.discovery always describes afresh.
const diskDescriptionTTL = 10 * time.Minute

// diskGetAll: disk.get.all → JSON array, sorted by device name, of
// {"devname":...,"devtype":...,"dmname":...,"model":...,"serial":...,
// "rotational":..., + the fields of disk.get}: the rows of disk.discovery
// (its macros without {# }, lower case) with the counters, from one read of
// /proc/diskstats. A device only sysfs knows has no counter fields.
func (e *Exporter) diskGetAll(context.Context, Params) (string, error) {
	fs, err := disks.NewFS(e.cfg.ProcRoot, e.cfg.SysRoot)
	if err != nil {
		return "", operatorError(err, errDiskTable)
	}
	all, err := fs.WithKnown(e.disks).All()
	if err != nil {
		return "", operatorError(err, errDiskTable)
	}
	b := make([]byte, 0, 64+512*len(all))
	b = append(b, '[')
	for i := range all {
		d := &all[i]
		if i > 0 {
			b = append(b, ',')
		}
		for j, f := range [...]struct{ name, v string }{
			{"devname", d.Name}, {"devtype", d.Type}, {"dmname", d.DMName},
			{"model", d.Model}, {"serial", d.Serial}, {"rotational", d.Rotational},
		} {
			if j == 0 {
				b = append(b, `{"`...)
			} else {
				b = append(b, `,"`...)
			}
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = appendJSONString(b, f.v)
		}
		if d.InDiskstats {
			b = appendDiskFields(append(b, ','), &d.Stats)
		}
		b = append(b, '}')
	}
	return string(append(b, ']')), nil
}

// appendDiskStats appends the JSON object of st to b; the discard and flush
// counters only when the kernel has them.
func appendDiskStats(b []byte, st *disks.Stats) []byte {
	return append(appendDiskFields(append(b, '{'), st), '}')
}

// appendDiskFields appends the fields of st without braces.
func appendDiskFields(b []byte, st *disks.Stats) []byte {
	s := &st.IOStats
	fields := []struct {
		name string
		v    uint64
	}{
		{"read_ios", s.ReadIOs}, {"read_merges", s.ReadMerges}, {"read_sectors", s.ReadSectors}, {"read_ticks_ms", s.ReadTicks},
		{"write_ios", s.WriteIOs}, {"write_merges", s.WriteMerges}, {"write_sectors", s.WriteSectors}, {"write_ticks_ms", s.WriteTicks},
		{"in_flight", s.IOsInProgress}, {"io_ticks_ms", s.IOsTotalTicks}, {"time_in_queue_ms", s.WeightedIOTicks},
		{"discard_ios", s.DiscardIOs}, {"discard_merges", s.DiscardMerges}, {"discard_sectors", s.DiscardSectors}, {"discard_ticks_ms", s.DiscardTicks},
		{"flush_ios", s.FlushRequestsCompleted}, {"flush_ticks_ms", s.TimeSpentFlushing},
	}
	n := 11
	if st.HasDiscard {
		n = 15
	}
	if st.HasFlush {
		n = 17
	}
	for i, f := range fields[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, f.v, 10)
	}
	return b
}
