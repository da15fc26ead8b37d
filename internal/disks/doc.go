// Package disks lists block devices and reads their I/O counters.
//
// Devices come from /proc/diskstats (the names the kernel counts I/O under)
// and from sysfs (/sys/class/block, /sys/block), which adds the device type,
// the device-mapper name, the model, the serial number and whether the media
// rotates. Counters come from /proc/diskstats only, parsed by procfs'
// blockdevice package. A device is always looked up by name in the parsed
// list; no path is ever built from a name a caller passes in.
//
//	fs, err := disks.NewFS("/proc", "/sys")
//	devs, err := fs.Devices()        // every block device, sorted by name
//	st, err := fs.Stats("nvme0n1")   // raw counters of one device
//	all, err := fs.All()             // every device with its counters, one read
//
// Kernel documentation: Documentation/admin-guide/iostats.rst (diskstats
// fields) and Documentation/ABI/stable/sysfs-block (sysfs attributes).
package disks
